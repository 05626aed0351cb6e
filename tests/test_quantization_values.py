"""Value tests of the quantization libraries of Labs 03 and 03b (and the Deep-Compression/OBD helpers of Lab 02)
against references that do not come from the code under test: PyTorch's own float dtypes, NumPy's integer views,
published constants (OCP FP8/MX, IEEE 754, Banner et al.'s ACIQ optima, CLRS's Huffman example) and small cases worked
by hand (the arithmetic is in the comments). Fast: tiny tensors only, no model downloads.
"""

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinyml_lib.low_bit.binary import binarize_bwn, pack_signs, ternarize_twn, xnor_popcount_matmul
from tinyml_lib.low_bit.clipping import aciq_expected_mse, kl_optimal_clip, mse_optimal_clip, quantize_clipped
from tinyml_lib.low_bit.qat import fake_quant_ste
from tinyml_lib.pruning import obd_saliency
from tinyml_lib.pruning.compression import compressed_bits, huffman_lengths
from tinyml_lib.quantization.formats import (FORMATS, decode_fixed_point, decode_float, encode_fixed_point,
                                             encode_float, float_max)
from tinyml_lib.quantization.integer import (exact_int_conv2d, fold_batchnorm, fold_bias, int_cnn_forward, int_conv2d,
                                             int_linear, integerize_cnn, quantize_multiplier, requantize)
from tinyml_lib.quantization.kmeans import codebook_gradient, kmeans_quantize, kmeans_size_bits
from tinyml_lib.quantization.linear import (dequantize, fake_quantize, linear_quantize, quant_range, quantize,
                                            scale_zero_point)

# torch's own dtypes for the formats; (bits, unsigned integer view dtype, signed integer view dtype)
TORCH_FLOAT = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp8_e4m3": torch.float8_e4m3fn,
               "fp8_e5m2": torch.float8_e5m2}
INT_VIEW = {8: torch.uint8, 16: torch.int16}


def assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1.3e-6, atol: float = 1e-5) -> None:
    """Same dtype and shape, values within tolerance (torch.testing's first call costs seconds of imports)."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    assert torch.allclose(got, want, rtol=rtol, atol=atol), f"got {got}, want {want}"


def torch_decode(codes: np.ndarray, name: str) -> np.ndarray:
    """Values of bit patterns according to torch's dtype (reinterpreting the bits, no arithmetic of ours)."""
    dtype = TORCH_FLOAT[name]
    bits = dtype.itemsize * 8
    signed = np.where(codes >= 2 ** (bits - 1), codes - 2 ** bits, codes) if bits == 16 else codes
    raw = torch.tensor(signed, dtype=INT_VIEW[bits])
    return raw.view(dtype).double().numpy()


def torch_encode(x: np.ndarray, name: str) -> np.ndarray:
    """Bit patterns torch produces when it rounds float32 values to the dtype (round to nearest even)."""
    dtype = TORCH_FLOAT[name]
    bits = dtype.itemsize * 8
    raw = torch.from_numpy(x.astype(np.float32)).to(dtype).view(INT_VIEW[bits]).long().numpy()
    return np.mod(raw, 2 ** bits)


# ml_dtypes' types (a test dependency): the OCP conversions for BF16, FP8 (non-saturating) and FP4 E2M1
ML_DTYPES = {"bf16": ml_dtypes.bfloat16, "fp8_e4m3": ml_dtypes.float8_e4m3fn, "fp8_e5m2": ml_dtypes.float8_e5m2,
             "fp4_e2m1": ml_dtypes.float4_e2m1fn}


def ml_dtypes_decode(codes: np.ndarray, name: str) -> np.ndarray:
    """Values of bit patterns according to ml_dtypes (FP4 codes sit in the low 4 bits of a byte)."""
    view = np.uint16 if name == "bf16" else np.uint8
    with np.errstate(invalid="ignore"):                  # widening a signalling NaN sets the invalid flag
        return np.asarray(codes).astype(view).view(ML_DTYPES[name]).astype(np.float64)


def ml_dtypes_encode(x: np.ndarray, name: str) -> np.ndarray:
    """Bit patterns ml_dtypes produces when it converts x (float32 or float64) to the type."""
    view = np.uint16 if name == "bf16" else np.uint8
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(x).astype(ML_DTYPES[name]).view(view).astype(np.int64)


# ------------------------------------------------------------------------------------------------ formats: decode
@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp16", "bf16"])
def test_decode_float_matches_torch_dtype_on_every_code(name):
    fmt = FORMATS[name]
    codes = np.arange(2 ** fmt.bits, dtype=np.int64)          # all 256 (8-bit) or all 65536 (16-bit) codes
    got, want = decode_float(codes, fmt), torch_decode(codes, name)
    assert got.shape == codes.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))   # NaN exactly where torch has NaN
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok], want[ok])              # bit-exact, including +-inf and signed zeros
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))


def test_decode_float_fp32_matches_numpy_view():
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.integers(0, 2 ** 32, 20000), [0, 1, 0x007FFFFF, 0x00800000, 0x7F7FFFFF,
                                                              0x7F800000, 0xFF800000, 0x7FC00000, 0x80000000]])
    with np.errstate(invalid="ignore"):
        want = codes.astype(np.uint32).view(np.float32).astype(np.float64)
    got = decode_float(codes, FORMATS["fp32"])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok], want[ok])


def test_decode_float_fp4_e2m1_matches_ocp_mx_table():
    # OCP MX v1.0 spec, FP4 E2M1 element values for codes 0b0000..0b0111: 0, 0.5, 1, 1.5, 2, 3, 4, 6; bit 3 = sign.
    table = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    got = decode_float(np.arange(16), FORMATS["fp4_e2m1"])
    np.testing.assert_array_equal(got[:8], table)
    np.testing.assert_array_equal(got[8:], [-v for v in table])
    assert np.signbit(got[8])                                       # code 0b1000 is -0


def test_decode_float_hand_worked_e4m3_codes():
    # E4M3, bias 7: 0x38 = 0 0111 000 -> 2^0 = 1; 0x7E = 0 1111 110 -> 1.75 * 2^8 = 448 (largest);
    # 0x01 = subnormal 1/8 * 2^-6 = 2^-9; 0xC4 = 1 1000 100 -> -(1.5 * 2^1) = -3; 0x7F = NaN (only NaN, no INF)
    got = decode_float([0x38, 0x7E, 0x01, 0xC4], FORMATS["fp8_e4m3"])
    np.testing.assert_array_equal(got, [1.0, 448.0, 2.0 ** -9, -3.0])
    assert np.isnan(decode_float(0x7F, FORMATS["fp8_e4m3"]))
    assert np.isnan(decode_float(0xFF, FORMATS["fp8_e4m3"]))
    assert decode_float(0x78, FORMATS["fp8_e4m3"]) == 256.0        # exponent 1111 with mantissa 000 is a number


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "bf16", "fp4_e2m1"])
def test_decode_float_matches_ml_dtypes_on_every_code(name):
    fmt = FORMATS[name]
    codes = np.arange(2 ** fmt.bits, dtype=np.int64)
    want = ml_dtypes_decode(codes, name)
    got = decode_float(codes, fmt)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok], want[ok])
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))

# ------------------------------------------------------------------------------------------------ formats: encode
def _in_range_samples(name: str, rng) -> np.ndarray:
    """float32 values within +-max: every finite value of the format, every midpoint between neighbours (the ties),
    points a quarter of the way between them, and log-uniform random values (normals and subnormals)."""
    fmt = FORMATS[name]
    vals = torch_decode(np.arange(2 ** fmt.bits), name)
    top = float(torch.finfo(TORCH_FLOAT[name]).max)
    pos = np.unique(vals[np.isfinite(vals) & (vals >= 0) & (vals <= top)])     # ascending, from 0 to max
    if len(pos) > 4000:                                                         # 16-bit: a sample of neighbours
        idx = np.sort(rng.choice(len(pos) - 1, 4000, replace=False))
        lo, hi = pos[idx], pos[idx + 1]
        pos_sample = np.concatenate([pos[idx], [pos[-1]]])
    else:
        lo, hi = pos[:-1], pos[1:]
        pos_sample = pos
    mid = (lo + hi) / 2                                                         # exact ties
    quarter = lo + (hi - lo) / 4
    three_q = lo + 3 * (hi - lo) / 4
    tiny = float(torch.finfo(TORCH_FLOAT[name]).smallest_normal)
    rand = np.exp(rng.uniform(np.log(tiny / 64), np.log(top), 3000))
    x = np.concatenate([pos_sample, mid, quarter, three_q, rand])
    x = x[x <= top].astype(np.float32)
    assert np.all(x.astype(np.float64) <= top)
    return np.concatenate([x, -x])


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp16", "bf16"])
def test_encode_float_matches_torch_rounding_in_range(name):
    x = _in_range_samples(name, np.random.default_rng(1))
    got = encode_float(x.astype(np.float64), FORMATS[name])
    want = torch_encode(x, name)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} mismatches, e.g. x={x[bad[:5]]}: got {got[bad[:5]]}, torch {want[bad[:5]]}"


def test_encode_float_hand_worked_ties_e4m3():
    # E4M3 near 1: neighbours 1.0 (0x38, mantissa 000) and 1.125 (0x39, mantissa 001); the tie 1.0625 goes to the
    # even mantissa 000 -> 0x38; the tie 1.1875 between 1.125 (001) and 1.25 (0x3A, 010) goes to 010 -> 0x3A.
    # 2^-10 is half the smallest subnormal 2^-9: a tie between 0 and 0x01 -> 0 (even).  -3 -> 0xC4.
    got = encode_float([1.0625, 1.1875, 2.0 ** -10, 1.5 * 2.0 ** -10, -3.0], FORMATS["fp8_e4m3"])
    np.testing.assert_array_equal(got, [0x38, 0x3A, 0x00, 0x01, 0xC4])


# Overflow, saturation and NaN, bit-exact against three references. The rules (the lab's §1): round to nearest even
# with no upper limit on the exponent; a rounded value beyond the largest finite one becomes +-INF (IEEE formats) or
# NaN (E4M3, OCP's non-saturating conversion), FP4 saturates; saturate=True ("satfinite") gives +-largest for overflow
# and +-INF. References: ml_dtypes for BF16, FP8 and FP4 (non-saturating OCP conversions); torch for FP16, BF16 and
# E5M2 (IEEE overflow) and for E4M3 satfinite (torch.float8_e4m3fn saturates); NumPy for FP16 and FP32.
# satfinite of x = the non-saturating conversion of x clipped to +-max (whatever lies beyond rounds to max anyway).
EVERY_FP16_VALUE = np.arange(2 ** 16).astype(np.uint16).view(np.float16).astype(np.float32)   # INF, NaNs included


def _clip_to_max(x: np.ndarray, name: str) -> np.ndarray:
    top = {"fp16": 65504.0, "bf16": float(ml_dtypes.finfo(ml_dtypes.bfloat16).max), "fp8_e4m3": 448.0,
           "fp8_e5m2": 57344.0, "fp4_e2m1": 6.0}[name]                 # OCP FP8/MX and IEEE binary16 maxima
    return np.clip(x, np.float32(-top), np.float32(top))


def _random_float32(n: int, seed: int) -> np.ndarray:
    """n uniformly random float32 bit patterns (every binade, subnormals, INF and NaN payloads alike)."""
    return np.random.default_rng(seed).integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)


def _edges(name: str) -> np.ndarray:
    """float32 inputs at a 16-bit format's edges: every finite value, every midpoint of neighbours (the ties), the
    float32 neighbours of each midpoint, max + half a step (the overflow tie) and its neighbours, +-INF, +-0."""
    vals = torch_decode(np.arange(2 ** 16), name).astype(np.float32)
    v = np.unique(np.abs(vals[np.isfinite(vals)]))
    mid = ((v[:-1].astype(np.float64) + v[1:]) / 2).astype(np.float32)
    tie = np.float32(v[-1] + (v[-1] - v[-2]) / 2)
    zero, inf = np.float32(0), np.float32(np.inf)
    x = np.concatenate([v, mid, np.nextafter(mid, zero), np.nextafter(mid, inf),
                        [tie, np.nextafter(tie, zero), np.nextafter(tie, inf), inf]]).astype(np.float32)
    return np.concatenate([x, -x])


def _is_signalling_nan(x: np.ndarray) -> np.ndarray:
    return np.isnan(x) & ((x.view(np.uint32) & 0x00400000) == 0)


def _assert_codes(x: np.ndarray, got: np.ndarray, want: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(got != want)
    first = bad[:4]
    assert bad.size == 0, (f"{what}: {bad.size} mismatches, e.g. x bits {[hex(b) for b in x[first].view(np.uint32)]}"
                           f" = {x[first]}: got {[hex(g) for g in got[first]]}, want {[hex(w) for w in want[first]]}")


@pytest.mark.parametrize("saturate", [False, True])
@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "bf16", "fp4_e2m1"])
def test_encode_float_every_fp16_value_matches_ml_dtypes(name, saturate):
    # Exhaustive: all 65536 FP16 bit patterns (every FP8/FP4 rounding case, overflow, INF, NaN) as float32 inputs.
    x = EVERY_FP16_VALUE
    if name == "fp4_e2m1":
        x = x[~np.isnan(x)]                          # FP4 has no NaN: encode_float raises (ml_dtypes gives a zero)
    want = ml_dtypes_encode(_clip_to_max(x, name) if saturate else x, name)
    _assert_codes(x, encode_float(x, FORMATS[name], saturate=saturate), want, f"{name} saturate={saturate}")


def test_encode_float_fp4_saturates_without_being_asked():
    # FP4 E2M1 has no INF and no NaN: like ml_dtypes.float4_e2m1fn, overflow and +-INF go to +-6 in both modes.
    x = np.array([6.5, 7.0, 1e30, np.inf, -7.0, -np.inf])      # 7 is the tie between 6 and the missing 8
    for saturate in (False, True):
        np.testing.assert_array_equal(encode_float(x, FORMATS["fp4_e2m1"], saturate=saturate),
                                      [0x7, 0x7, 0x7, 0x7, 0xF, 0xF])


def test_encode_float_e4m3_satfinite_matches_torch_float8_e4m3fn():
    # torch.float8_e4m3fn saturates (overflow and +-INF -> +-448) and keeps NaN's sign: our saturate=True, bit-exact.
    x = np.concatenate([EVERY_FP16_VALUE, _random_float32(200_000, 2)])
    _assert_codes(x, encode_float(x, FORMATS["fp8_e4m3"], saturate=True), torch_encode(x, "fp8_e4m3"), "E4M3 satfinite")


def test_torch_float8_e4m3fn_saturates_and_ml_dtypes_does_not():
    # The lab's prose says which library does which; if a release changes that, this says so.
    x = np.array([464.0, 464.01, 1000.0, np.inf, -np.inf], dtype=np.float32)
    np.testing.assert_array_equal(torch_encode(x, "fp8_e4m3"), [0x7E, 0x7E, 0x7E, 0x7E, 0xFE])
    np.testing.assert_array_equal(ml_dtypes_encode(x, "fp8_e4m3"), [0x7E, 0x7F, 0x7F, 0x7F, 0xFF])
    np.testing.assert_array_equal(encode_float(x, FORMATS["fp8_e4m3"]), [0x7E, 0x7F, 0x7F, 0x7F, 0xFF])
    np.testing.assert_array_equal(encode_float(x, FORMATS["fp8_e4m3"], saturate=True), [0x7E, 0x7E, 0x7E, 0x7E, 0xFE])


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_encode_float_16_bit_formats_on_a_million_float32_values(name):
    # Every edge of the format plus 2^20 random float32 bit patterns, both modes, against NumPy / ml_dtypes and torch.
    x = np.concatenate([_edges(name), _random_float32(2 ** 20, 3)])
    fmt, nan = FORMATS[name], np.isnan(x)
    default, sat = encode_float(x, fmt), encode_float(x, fmt, saturate=True)
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "fp16":
            # NumPy's float16 cast (software) does not quiet a signalling NaN; the float64 cast before ours does, as
            # IEEE 754 asks (torch agrees with us there): compare NumPy on every other input.
            quiet = ~_is_signalling_nan(x)
            numpy_codes = x.astype(np.float16).view(np.uint16).astype(np.int64)
            _assert_codes(x[quiet], default[quiet], numpy_codes[quiet], "fp16 against NumPy")
            _assert_codes(x, default, torch_encode(x, "fp16"), "fp16 against torch, NaN payloads included")
            sat_codes = _clip_to_max(x, name).astype(np.float16).view(np.uint16).astype(np.int64)
            _assert_codes(x[quiet], sat[quiet], sat_codes[quiet], "fp16 satfinite against NumPy")
        else:
            # torch's CPU BF16 conversion gives 0xFFFF for every NaN; ml_dtypes gives 0x7FC0/0xFFC0 (sign kept, as
            # torch keeps it for FP16): we follow ml_dtypes, so torch is compared on the numbers only.
            _assert_codes(x, default, ml_dtypes_encode(x, name), "bf16 against ml_dtypes, NaN included")
            _assert_codes(x[~nan], default[~nan], torch_encode(x[~nan], "bf16"), "bf16 against torch")
            _assert_codes(x, sat, ml_dtypes_encode(_clip_to_max(x, name), name), "bf16 satfinite against ml_dtypes")


def test_encode_float_e5m2_against_torch_and_ml_dtypes_nan():
    # torch's E5M2 gives 0x7F/0xFF for every NaN, ml_dtypes the quiet NaN 0x7E/0xFE: we follow ml_dtypes (the test
    # above, on every FP16 value), and torch on every number, INF included.
    x = np.concatenate([EVERY_FP16_VALUE, _random_float32(200_000, 4)])
    ok = ~np.isnan(x)
    _assert_codes(x[ok], encode_float(x[ok], FORMATS["fp8_e5m2"]), torch_encode(x[ok], "fp8_e5m2"), "E5M2 vs torch")
    np.testing.assert_array_equal(torch_encode(np.float32([np.nan, -np.nan]), "fp8_e5m2"), [0x7F, 0xFF])
    np.testing.assert_array_equal(encode_float([np.nan, -np.nan], FORMATS["fp8_e5m2"]), [0x7E, 0xFE])


def test_encode_float_fp32_is_exact_for_float32_inputs():
    x = np.concatenate([_random_float32(2 ** 20, 5), np.float32([np.inf, -np.inf, 0.0, -0.0])])
    quiet = ~_is_signalling_nan(x)
    got = encode_float(x, FORMATS["fp32"])
    _assert_codes(x[quiet], got[quiet], x[quiet].view(np.uint32).astype(np.int64), "fp32 identity")
    # A signalling NaN arrives quiet (the float64 cast sets the quiet bit), sign and the rest of the payload kept.
    snan = ~quiet
    assert snan.sum() > 100
    np.testing.assert_array_equal(got[snan], x[snan].view(np.uint32).astype(np.int64) | 0x00400000)


@pytest.mark.parametrize("name,numpy_dtype,uint", [("fp16", np.float16, np.uint16), ("fp32", np.float32, np.uint32)])
def test_encode_float_of_float64_inputs_rounds_once_like_numpy(name, numpy_dtype, uint):
    # NumPy casts float64 straight to float16/float32 (one rounding); so do we. Inputs: random values over the whole
    # range and beyond, the ties away from zero of each one's rounded value, and points 2^-20 of a half step either
    # side of those ties (a float32 detour would round them onto the tie, then to even).
    rng = np.random.default_rng(6)
    x = rng.standard_normal(200_000) * np.exp2(rng.integers(-160, 140, 200_000))
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = x.astype(numpy_dtype)
        vals, half = rounded.astype(np.float64), np.abs(np.spacing(rounded).astype(np.float64)) / 2
        ties = np.concatenate([vals + np.sign(vals) * half * f for f in (1.0, 1 + 2.0 ** -20, 1 - 2.0 ** -20)])
        x = np.concatenate([x, ties[np.isfinite(ties)], [np.inf, -np.inf, 0.0, -0.0, np.nan, -np.nan]])
        want = x.astype(numpy_dtype).view(uint).astype(np.int64)
    got = encode_float(x, FORMATS[name])
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, f"{bad.size} mismatches, e.g. x={x[bad[:4]]}: got {got[bad[:4]]}, NumPy {want[bad[:4]]}"


def test_encode_float_of_float64_inputs_is_not_rounded_through_float32():
    # torch and ml_dtypes convert float64 to FP8/BF16 through float32 and can round twice; encode_float rounds once:
    # 464 + 2^-20 is above E4M3's overflow tie 464 (NaN; through float32 it is 464 itself -> 448), and
    # 1 + 2^-8 + 2^-40 is above BF16's tie 1 + 2^-8 (-> 1 + 2^-7 = 0x3F81; through float32 -> 1.0 = 0x3F80).
    assert encode_float(464 + 2.0 ** -20, FORMATS["fp8_e4m3"]) == 0x7F
    assert ml_dtypes_encode(np.array([464 + 2.0 ** -20]), "fp8_e4m3")[0] == 0x7E
    assert encode_float(1 + 2.0 ** -8 + 2.0 ** -40, FORMATS["bf16"]) == 0x3F81
    assert ml_dtypes_encode(np.array([1 + 2.0 ** -8 + 2.0 ** -40]), "bf16")[0] == 0x3F80


def test_encode_float_overflow_hand_worked():
    # The issue's cases. E5M2's top binade steps by 8192: 61440 = 57344 + 4096 is the tie with the missing 65536,
    # which is even (57344 = 1.11b x 2^15 is odd) -> INF 0x7C; 61439 -> 57344 (0x7B). FP16 steps by 32 up there:
    # 65520 -> INF (0x7C00), 65519 -> 65504 (0x7BFF). BF16: 3.4e38 is above (2 - 2^-8) 2^127 = 3.3961776e38 -> INF.
    e5m2, fp16, bf16 = FORMATS["fp8_e5m2"], FORMATS["fp16"], FORMATS["bf16"]
    np.testing.assert_array_equal(encode_float([61439.0, 61440.0, -61440.0], e5m2), [0x7B, 0x7C, 0xFC])
    np.testing.assert_array_equal(encode_float([61439.0, 61440.0, -np.inf], e5m2, saturate=True), [0x7B, 0x7B, 0xFB])
    np.testing.assert_array_equal(encode_float([65519.0, 65520.0, np.inf], fp16), [0x7BFF, 0x7C00, 0x7C00])
    np.testing.assert_array_equal(encode_float([65519.0, 65520.0, np.inf], fp16, saturate=True), [0x7BFF] * 3)
    np.testing.assert_array_equal(encode_float([3.39e38, 3.4e38, -3.4e38], bf16), [0x7F7F, 0x7F80, 0xFF80])
    np.testing.assert_array_equal(encode_float([3.39e38, 3.4e38, -3.4e38], bf16, saturate=True),
                                  [0x7F7F, 0x7F7F, 0xFF7F])
    # E4M3 (no INF): 464 = 448 + 16 is the tie with the missing 480 (mantissa 111, odd) -> 448; above -> NaN.
    np.testing.assert_array_equal(encode_float([464.0, 465.0, -1e9, np.inf], FORMATS["fp8_e4m3"]),
                                  [0x7E, 0x7F, 0xFF, 0x7F])


def test_encode_float_nan_keeps_its_sign_and_the_payload_where_the_reference_does():
    # float32 NaNs (quiet): 0x7FC00000, -0x7FC00000, 0x7FE00000 (payload 0x200000), 0xFFFFFFFF, 0x7FC02001.
    # FP16 (NumPy, torch): sign | 0x7C00 | payload >> 13, so 0x7FE00000 -> 0x7F00, 0x7FC02001 -> 0x7E01; FP32 keeps
    # all of it. BF16 and FP8: the quiet NaN of that sign (ml_dtypes; torch's BF16 gives 0xFFFF for every NaN, its
    # E5M2 0x7F/0xFF). saturate=True leaves NaN alone.
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7FE00000, 0xFFFFFFFF, 0x7FC02001], dtype=np.uint32).view(np.float32)
    want = {"fp32": [0x7FC00000, 0xFFC00000, 0x7FE00000, 0xFFFFFFFF, 0x7FC02001],
            "fp16": [0x7E00, 0xFE00, 0x7F00, 0xFFFF, 0x7E01], "bf16": [0x7FC0, 0xFFC0, 0x7FC0, 0xFFC0, 0x7FC0],
            "fp8_e5m2": [0x7E, 0xFE, 0x7E, 0xFE, 0x7E], "fp8_e4m3": [0x7F, 0xFF, 0x7F, 0xFF, 0x7F]}
    for name, codes in want.items():
        for saturate in (False, True):
            np.testing.assert_array_equal(encode_float(nans, FORMATS[name], saturate=saturate), codes, f"{name}")
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(nans.astype(np.float16).view(np.uint16), want["fp16"])
        for name in ("bf16", "fp8_e5m2", "fp8_e4m3"):
            np.testing.assert_array_equal(ml_dtypes_encode(nans, name), want[name], name)
    # A float64 signalling NaN is quieted (IEEE 754; NumPy's software float16 cast gives 0x7C01 here, torch 0x7E00).
    snan = np.array([0x7FF0000000000001], dtype=np.uint64).view(np.float64)
    assert encode_float(snan, FORMATS["fp16"])[0] == 0x7E00
    assert encode_float(snan, FORMATS["fp32"])[0] == 0x7FC00000


def test_encode_float_bad_input():
    with pytest.raises(ValueError, match="no NaN"):
        encode_float([1.0, np.nan], FORMATS["fp4_e2m1"])
    with pytest.raises(TypeError, match="saturate"):
        encode_float(1.0, FORMATS["fp8_e4m3"], saturate="yes")

# ------------------------------------------------------------------------------------------------ formats: maxima
def test_float_max_published_values():
    # OCP FP8: E4M3 448, E5M2 57344; IEEE binary16 65504; OCP MX FP4 E2M1 6; FP32/BF16 from torch.finfo.
    assert float_max(FORMATS["fp8_e4m3"]) == 448.0
    assert float_max(FORMATS["fp8_e5m2"]) == 57344.0
    assert float_max(FORMATS["fp16"]) == 65504.0
    assert float_max(FORMATS["fp4_e2m1"]) == 6.0
    assert float_max(FORMATS["fp32"]) == float(torch.finfo(torch.float32).max)
    assert float_max(FORMATS["bf16"]) == float(torch.finfo(torch.bfloat16).max)


# ------------------------------------------------------------------------------------------------ fixed point
def test_decode_fixed_point_int8_matches_numpy_view():
    codes = np.arange(256)
    np.testing.assert_array_equal(decode_fixed_point(codes, 8), codes.astype(np.uint8).view(np.int8))
    np.testing.assert_array_equal(decode_fixed_point(codes, 8, signed=False), codes)


def test_decode_fixed_point_hand_worked():
    # Q4.4 (8 bits, 4 fraction bits): 0x18 = 24 / 16 = 1.5; 0xE8 = (232 - 256) / 16 = -1.5; 0x80 = -128 / 16 = -8;
    # 0x7F = 127 / 16 = 7.9375; unsigned 0xE8 = 232 / 16 = 14.5
    np.testing.assert_array_equal(decode_fixed_point([0x18, 0xE8, 0x80, 0x7F], 8, 4), [1.5, -1.5, -8.0, 7.9375])
    assert decode_fixed_point(0xE8, 8, 4, signed=False) == 14.5


def test_encode_fixed_point_hand_worked():
    # Q4.4: 1.5 -> 24 = 0x18; -1.5 -> -24 -> 256 - 24 = 0xE8; 1.53 * 16 = 24.48 -> 24;
    # saturation: 100 -> 127 (0x7F), -100 -> -128 (0x80)
    np.testing.assert_array_equal(encode_fixed_point([1.5, -1.5, 1.53, 100.0, -100.0], 8, 4),
                                  [0x18, 0xE8, 0x18, 0x7F, 0x80])
    # round half to even on integers: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2 (0xFE)
    np.testing.assert_array_equal(encode_fixed_point([0.5, 1.5, 2.5, -0.5, -1.5], 8), [0, 2, 2, 0, 0xFE])
    # unsigned 8-bit saturates at 0 and 255
    np.testing.assert_array_equal(encode_fixed_point([300.0, -3.0, 7.0], 8, signed=False), [255, 0, 7])


# ------------------------------------------------------------------------------------------------ linear
def test_quant_range_literals():
    assert quant_range(8) == (-128, 127)
    assert quant_range(8, symmetric=True) == (-127, 127)
    assert quant_range(4) == (-8, 7)


def test_scale_zero_point_asymmetric_hand_worked():
    # [-1, 3], 8 bits: S = 4 / 255 = 0.0156862745; Z = round(-128 - (-1) / S) = round(-128 + 63.75) = -64
    s, z = scale_zero_point(-1.0, 3.0, 8)
    assert s.dtype == torch.float32 and z.dtype == torch.int32
    assert float(s) == pytest.approx(4 / 255, rel=1e-6)
    assert int(z) == -64
    # 4 bits: S = 4 / 15; Z = round(-8 + 3.75) = round(-4.25) = -4
    s, z = scale_zero_point(-1.0, 3.0, 4)
    assert float(s) == pytest.approx(4 / 15, rel=1e-6) and int(z) == -4
    # the range is widened to contain 0: [2, 6] -> [0, 6]: S = 6 / 255, Z = round(-128 - 0) = -128
    s, z = scale_zero_point(2.0, 6.0, 8)
    assert float(s) == pytest.approx(6 / 255, rel=1e-6) and int(z) == -128
    # zero-width range: S = 1
    s, _ = scale_zero_point(0.0, 0.0, 8)
    assert float(s) == 1.0


def test_scale_zero_point_symmetric_hand_worked():
    # [-1, 3] symmetric 8 bits: S = max(1, 3) / 127, Z = 0; [-5, 2]: S = 5 / 127
    s, z = scale_zero_point(torch.tensor([-1.0, -5.0]), torch.tensor([3.0, 2.0]), 8, symmetric=True)
    assert_close(s, torch.tensor([3 / 127, 5 / 127]))
    assert z.tolist() == [0, 0]


def test_quantize_dequantize_hand_worked():
    # S = 0.5, Z = 3: r = 1.0 -> round(2) + 3 = 5; 0.25 -> round(0.5) = 0 (half to even) + 3 = 3;
    # 0.75 -> round(1.5) = 2 + 3 = 5; -1.3 -> round(-2.6) = -3 + 3 = 0; 100 -> clamp 127; -100 -> -200 + 3 -> -128
    s, z = torch.tensor(0.5), torch.tensor(3, dtype=torch.int32)
    q = quantize(torch.tensor([1.0, 0.25, 0.75, -1.3, 100.0, -100.0]), s, z)
    assert q.dtype == torch.int32
    assert q.tolist() == [5, 3, 5, 0, 127, -128]
    # dequantize: S (q - Z): 5 -> 1.0, 3 -> 0.0, 0 -> -1.5, 127 -> 62
    assert_close(dequantize(torch.tensor([5, 3, 0, 127], dtype=torch.int32), s, z),
                               torch.tensor([1.0, 0.0, -1.5, 62.0]))
    # symmetric clamps at -127, not -128
    assert quantize(torch.tensor([-100.0]), s, torch.tensor(0, dtype=torch.int32), 8, True).tolist() == [-127]


def test_linear_quantize_per_channel_and_group_hand_worked():
    r = torch.tensor([[-1.0, 0.6, 0.25, 1.0], [0.0, 4.0, -2.2, 1.0]])
    # per channel (axis 0), symmetric 8 bits: row 0 S = 1/127, row 1 S = 4/127, shape (2, 1)
    q, s, z = linear_quantize(r, 8, symmetric=True, axis=0)
    assert s.shape == (2, 1)
    assert_close(s.flatten(), torch.tensor([1 / 127, 4 / 127]))
    assert z.flatten().tolist() == [0, 0]
    # row 0: -127, 0.6 * 127 = 76.2 -> 76, 31.75 -> 32, 127; row 1: 0, 127, -2.2 * 31.75 = -69.85 -> -70, 31.75 -> 32
    assert q.tolist() == [[-127, 76, 32, 127], [0, 127, -70, 32]]
    # per group of 2 along the last axis, symmetric 4 bits (q_max 7): the groups' max|r| are 1, 1, 4, 2.2
    q, s, z = linear_quantize(r, 4, symmetric=True, group_size=2)
    assert s.shape == r.shape
    assert_close(s, torch.tensor([[1 / 7, 1 / 7, 1 / 7, 1 / 7], [4 / 7, 4 / 7, 2.2 / 7, 2.2 / 7]]))
    # -7, 4.2 -> 4, 1.75 -> 2, 7;  0, 7, -7, 7 / 2.2 = 3.18 -> 3
    assert q.tolist() == [[-7, 4, 2, 7], [0, 7, -7, 3]]
    # per tensor, asymmetric 8 bits: [-2.2, 4]: S = 6.2 / 255, Z = round(-128 + 2.2 / S) = round(-37.516) = -38
    _, s, z = linear_quantize(r, 8)
    assert s.dim() == 0 and float(s) == pytest.approx(6.2 / 255, rel=1e-6) and int(z) == -38


def test_fake_quantize_error_at_most_half_a_step():
    torch.manual_seed(0)
    r = torch.randn(6, 32)
    for kw in ({}, {"symmetric": True}, {"axis": 0}, {"group_size": 8}):
        _, s, _ = linear_quantize(r, 4, **kw)
        err = (fake_quantize(r, 4, **kw) - r).abs()
        assert (err <= s / 2 + 1e-6).all(), kw


def test_quantize_clipped_hand_worked():
    # alpha = 1, 2 bits: 4 bins of width 0.5 over [-1, 1], centres -0.75, -0.25, 0.25, 0.75;
    # 0 sits at the left edge of bin 2 -> 0.25; +-5 are clipped into the end bins -> +-0.75
    x = torch.tensor([-0.9, -0.3, 0.0, 0.49, 0.51, 5.0, -5.0])
    assert_close(quantize_clipped(x, 1.0, 2), torch.tensor([-0.75, -0.25, 0.25, 0.25, 0.75, 0.75, -0.75]))


def test_aciq_expected_mse_literal_and_published_optima():
    # b = 1, alpha = 2, N = 2: 2 e^-2 + 4 / (3 * 16) = 0.2706705664 + 0.0833333333 = 0.3540038997
    assert float(aciq_expected_mse(torch.tensor(2.0, dtype=torch.float64), 1.0, 2)) == pytest.approx(0.3540038997)
    # Banner et al. (NeurIPS 2019), Laplace(0, b): alpha* = 2.83 b, 3.89 b, 5.03 b for 2, 3, 4 bits
    alphas = torch.linspace(0.5, 10.0, 9501, dtype=torch.float64)
    for n_bits, published in ((2, 2.83), (3, 3.89), (4, 5.03)):
        best = float(alphas[aciq_expected_mse(alphas, 1.0, n_bits).argmin()])
        assert best == pytest.approx(published, abs=0.01)
        best_b2 = float(alphas[aciq_expected_mse(alphas, 0.5, n_bits).argmin()])   # scales with b
        assert best_b2 == pytest.approx(published * 0.5, abs=0.01)


def test_mse_optimal_clip_hand_worked():
    # x = +-0.75, 2 bits: alpha = 1 has a bin centre at +-0.75 (error 0); alpha = 2 (step 1) maps 0.75 to the
    # centre 0.5 (error 0.0625) -> 1.0 wins, whatever the order of the candidates
    x = torch.tensor([0.75, -0.75])
    assert mse_optimal_clip(x, 2, torch.tensor([1.0, 2.0])) == 1.0
    assert mse_optimal_clip(x, 2, torch.tensor([2.0, 1.0])) == 1.0
    # x = [10, -10, 0.1]: alpha = 1 clips 10 to 0.75 (mean error (2 * 85.5625 + 0.0225) / 3 = 57.05);
    # alpha = 16 (step 8): 10 -> 12, -10 -> -12, 0.1 -> 4: mean (4 + 4 + 15.21) / 3 = 7.74 -> 16 wins
    assert mse_optimal_clip(torch.tensor([10.0, -10.0, 0.1]), 2, torch.tensor([1.0, 16.0])) == 16.0


def test_kl_optimal_clip_hand_worked():
    # |x| over [0, 4] in 4 bins of width 1: histogram [3, 1, 1, 1] (zeros are left out); L = 2 levels.
    #  i=2: P = [3, 1+1+1] = [.5, .5], Q = [3, 1] -> [.75, .25]: KL = .5 ln(2/3) + .5 ln 2 = 0.1438
    #  i=3: P = [3, 1, 2] = [1/2, 1/6, 1/3]; groups [0,1), [1,3): Q = [3, 1, 1] -> [.6, .2, .2]:
    #       KL = .5 ln(5/6) + 1/6 ln(5/6) + 1/3 ln(5/3) = 0.0487   <- smallest
    #  i=4: P = [3, 1, 1, 1]; groups [0,2), [2,4): Q = [2, 2, 1, 1]: KL = .5 ln 1.5 + 1/6 ln .5 = 0.0872
    # -> i* = 3, T = 3 * 4 / 4 = 3.0  (dropping the clipped tail instead gives i=2, KL 0, T = 2)
    x = torch.tensor([0.5, -0.5, 0.25, 1.5, -2.5, 4.0, 0.0, 0.0])
    assert kl_optimal_clip(x, n_levels=2, n_bins=4) == pytest.approx(3.0)
    # empty bins: |x| = [3.5, 4.5, 5] over [0, 5] in 5 bins: histogram [0, 0, 0, 1, 2]; L = 2
    #  i=2: P = [0, 3], group masses [0, 0] -> Q = 0 where P > 0: skipped;  i=3: masses [0, 0]: skipped
    #  i=4: P = [0, 0, 0, 3]; groups [0,2), [2,4): masses [0, 1], spread over the bins with P > 0 only (bin 3)
    #       -> Q = [0, 0, 0, 1] = P: KL = 0   <- smallest
    #  i=5: P = [0, 0, 0, 1, 2]; groups [0,2), [2,5): Q = [0, 0, 0, 1.5, 1.5]: KL = 1/3 ln(2/3) + 2/3 ln(4/3) = 0.0566
    # -> T = 4 * 5 / 5 = 4.0  (spreading Q over the empty bin 2 as well would give KL ln 2 at i=4 and T = 5)
    assert kl_optimal_clip(torch.tensor([3.5, -4.5, 5.0]), n_levels=2, n_bins=5) == pytest.approx(4.0)


def test_kl_optimal_clip_clips_a_heavy_tail_more_with_fewer_levels():
    # +-Exponential(1) quantiles (a Laplace sample, max |x| = ln(20000) = 9.90): the threshold lies inside the data's
    # range, is a whole number of bins (max / 2048 each), and 8 levels clip harder than 128 levels
    u = (torch.arange(1, 10001, dtype=torch.float64) - 0.5) / 10000
    e = -torch.log1p(-u)
    x = torch.cat([e, -e])
    top = float(x.abs().max())
    t128, t8 = kl_optimal_clip(x, 128, 2048), kl_optimal_clip(x, 8, 2048)
    assert 1.0 < t8 < t128 < top
    for t in (t8, t128):
        assert t * 2048 / top == pytest.approx(round(t * 2048 / top))


# ------------------------------------------------------------------------------------------------ binary / ternary
def test_binarize_bwn_hand_worked():
    # alpha = mean |w| = (0.5 + 1.5 + 0 + 2.0) / 4 = 1.0; signs: sign(0) = +1
    alpha, signs = binarize_bwn(torch.tensor([0.5, -1.5, 0.0, 2.0]))
    assert float(alpha) == 1.0
    assert signs.tolist() == [1.0, -1.0, 1.0, 1.0]
    alpha, _ = binarize_bwn(torch.tensor([[3.0, -1.0], [0.0, -4.0]]))   # (3 + 1 + 0 + 4) / 4 = 2
    assert float(alpha) == 2.0


def test_ternarize_twn_hand_worked_li_et_al():
    # Li et al. 2016: delta = 0.7 E|w|; w = [0.1, -1.0, 0.5, 2.4]: E|w| = 4.0 / 4 = 1.0, delta = 0.7;
    # |w| > 0.7: -1.0 and 2.4 -> ternary [0, -1, 0, 1], r_t = (1.0 + 2.4) / 2 = 1.7
    delta, r_t, t = ternarize_twn(torch.tensor([0.1, -1.0, 0.5, 2.4]))
    assert float(delta) == pytest.approx(0.7)
    assert float(r_t) == pytest.approx(1.7)
    assert t.tolist() == [0.0, -1.0, 0.0, 1.0]
    # strict threshold: factor 0.5, E|w| = (0.5 + 1 + 0.1 + 2.4) / 4 = 1.0, delta = 0.5; |w| = 0.5 is NOT kept
    delta, r_t, t = ternarize_twn(torch.tensor([0.5, -1.0, 0.1, 2.4]), factor=0.5)
    assert float(delta) == 0.5
    assert t.tolist() == [0.0, -1.0, 0.0, 1.0]
    assert float(r_t) == pytest.approx(1.7)


def test_pack_signs_and_xnor_popcount_against_numpy():
    # [+1, -1, 0 (-> +1), -2 (-> -1)]: bits 1, 0, 1, 0 little-endian -> 0b0101 = 5
    assert pack_signs(np.array([[1.0, -1.0, 0.0, -2.0]])).tolist() == [[5]]
    rng = np.random.default_rng(0)
    a = rng.choice([-1.0, 1.0], size=(3, 40))                # K = 40: two words, 24 padding bits
    b = rng.choice([-1.0, 1.0], size=(5, 40))
    got = xnor_popcount_matmul(pack_signs(a), pack_signs(b), 40)
    np.testing.assert_array_equal(got, (a @ b.T).astype(np.int32))


# ------------------------------------------------------------------------------------------------ integer
def test_quantize_multiplier_hand_worked():
    # 0.25 = 0.5 * 2^-1 -> m0 = 0.5 * 2^31 = 2^30, n = 1; 0.75 = 0.75 * 2^0 -> m0 = 1610612736, n = 0;
    # 3 = 0.75 * 2^2 -> n = -2; 1 - 2^-40 rounds to m0 = 2^31, renormalised to (2^30, n = -1)
    m0, n = quantize_multiplier(torch.tensor([0.25, 0.75, 3.0, 1 - 2.0 ** -40], dtype=torch.float64))
    assert m0.tolist() == [2 ** 30, 1610612736, 1610612736, 2 ** 30]
    assert n.tolist() == [1, 0, -2, -1]
    m0, n = quantize_multiplier(0.1)        # 0.1 = 0.8 * 2^-3: m0 = round(0.8 * 2^31) = 1717986918, n = 3
    assert (int(m0), int(n)) == (1717986918, 3)


def test_requantize_hand_worked():
    # m = 0.25 (m0 = 2^30, n = 1), Z_Y = 0: 100 -> 25; 2 -> 0.5 -> 1 (half up); -2 -> -0.5 -> 0 (half up);
    # -3 -> -0.75 -> -1; 7 -> 1.75 -> 2; 1000 -> 250 -> clamp 127; -1000 -> -128
    acc = torch.tensor([100, 2, -2, -3, 7, 1000, -1000], dtype=torch.int32)
    m0, n = torch.tensor(2 ** 30, dtype=torch.int64), torch.tensor(1, dtype=torch.int64)
    q = requantize(acc, m0, n, 0)
    assert q.dtype == torch.int32
    assert q.tolist() == [25, 1, 0, -1, 2, 127, -128]
    # with Z_Y = 10: 25 + 10 = 35; 4-bit output clamps to [-8, 7]
    assert requantize(torch.tensor([100], dtype=torch.int32), m0, n, 10).tolist() == [35]
    assert requantize(torch.tensor([100, -100], dtype=torch.int32), m0, n, 0, n_bits=4).tolist() == [7, -8]
    # m = 3 (m0 = 0.75 * 2^31, n = -2): 5 * 3 = 15
    assert requantize(torch.tensor([5], dtype=torch.int32), torch.tensor(1610612736), torch.tensor(-2), 0).tolist() == [15]


def test_requantize_per_channel_broadcast():
    # acc (1, 2, 1, 1); channel 0 times 0.25, channel 1 times 0.75: 40 -> 10, 40 -> 30
    acc = torch.tensor([40, 40], dtype=torch.int32).view(1, 2, 1, 1)
    m0 = torch.tensor([2 ** 30, 1610612736]).view(2, 1, 1)
    n = torch.tensor([1, 0]).view(2, 1, 1)
    assert requantize(acc, m0, n, 0).flatten().tolist() == [10, 30]


def test_fold_bias_and_int_linear_hand_worked():
    q_w = torch.tensor([[1, 2, 3], [-1, 0, 4]], dtype=torch.int32)
    q_b = torch.tensor([10, -5], dtype=torch.int32)
    # row sums 6 and 3; Z_X = 3: 10 - 3 * 6 = -8, -5 - 3 * 3 = -14
    q_bias = fold_bias(q_b, q_w, 3)
    assert q_bias.tolist() == [-8, -14]
    # q_X = [4, 3, 5]: sum q_W (q_X - Z_X) + q_b with q_X - Z_X = [1, 0, 2]: row 0: 1 + 0 + 6 + 10 = 17;
    # row 1: -1 + 0 + 8 - 5 = 2
    q_x = torch.tensor([[4, 3, 5]], dtype=torch.int32)
    acc = int_linear(q_x, q_w, q_bias)
    assert acc.dtype == torch.int32 and acc.tolist() == [[17, 2]]


def test_exact_int_conv2d_against_float64_conv_including_channel_chunks():
    g = torch.Generator().manual_seed(0)
    # 256 channels of +-127 codes, 3x3: bound 9 * 128 * 127 per channel -> chunks of 114 channels (the chunked path)
    q_x = torch.randint(-128, 128, (2, 256, 4, 4), generator=g, dtype=torch.int32)
    q_w = torch.randint(-127, 128, (3, 256, 3, 3), generator=g, dtype=torch.int32)
    got = exact_int_conv2d(q_x, q_w, stride=1)
    want = F.conv2d(q_x.double(), q_w.double())               # float64 holds these sums exactly
    assert got.dtype == torch.int32
    assert torch.equal(got.double(), want)
    got2 = exact_int_conv2d(q_x[:, :4], q_w[:, :4], stride=2)  # one chunk, stride 2
    assert torch.equal(got2.double(), F.conv2d(q_x[:, :4].double(), q_w[:, :4].double(), stride=2))
    # worst case beyond float32's 2^24: 256 channels * 9 taps * (-127) * (-127) = 2304 * 16129 = 37,161,216 (odd
    # partial sums above 2^24 are not float32 numbers, so one float32 convolution would be off)
    full = torch.full((1, 256, 3, 3), -127, dtype=torch.int32)
    assert exact_int_conv2d(full, full).flatten().tolist() == [37_161_216]


def test_int_conv2d_pads_with_the_zero_point():
    # padding with code Z_X is padding (q_X - Z_X) with 0: compare with a float64 conv of the centred codes
    g = torch.Generator().manual_seed(1)
    q_x = torch.randint(-128, 128, (1, 3, 5, 5), generator=g, dtype=torch.int32)
    q_w = torch.randint(-127, 128, (4, 3, 3, 3), generator=g, dtype=torch.int32)
    q_b = torch.randint(-1000, 1000, (4,), generator=g, dtype=torch.int32)
    z_x = -7
    got = int_conv2d(q_x, q_w, fold_bias(q_b, q_w, z_x), z_x, stride=1, padding=1)
    want = F.conv2d((q_x - z_x).double(), q_w.double(), q_b.double(), padding=1)
    assert torch.equal(got.double(), want)
    got2 = int_conv2d(q_x, q_w, fold_bias(q_b, q_w, z_x), z_x, stride=2, padding=1)
    want2 = F.conv2d((q_x - z_x).double(), q_w.double(), q_b.double(), stride=2, padding=1)
    assert got2.shape == (1, 4, 3, 3) and torch.equal(got2.double(), want2)


def test_fold_batchnorm_matches_conv_then_bn():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(2, 3, 3, bias=True), nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
        bn.weight.copy_(torch.tensor([2.0, -1.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    ref = nn.Sequential(conv, bn).eval()
    x = torch.randn(2, 2, 6, 6)
    w, b = fold_batchnorm(conv, bn)
    assert_close(F.conv2d(x, w, b), ref(x).detach(), rtol=1e-5, atol=1e-5)


def test_integer_cnn_tracks_the_float_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(6, 3)).eval()
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        want = model(x)
    layers, s_in = integerize_cnn(model, x, 8)
    got = int_cnn_forward(layers, s_in, x)
    spread = float(want.max() - want.min())
    assert float((got - want).abs().max()) < 0.05 * spread
    assert (got.argmax(1) == want.argmax(1)).float().mean() >= 0.9


# ------------------------------------------------------------------------------------------------ qat
def test_fake_quant_ste_value_and_straight_through_gradient():
    # S = 0.5, Z = 0, 4 bits (q in [-8, 7]): 0.26 -> round(0.52) = 1 -> 0.5; -0.74 -> round(-1.48) = -1 -> -0.5;
    # 1.0 -> 2 -> 1.0; 100 -> clamp 7 -> 3.5.  Gradient: identity everywhere (clamped values too)
    x = torch.tensor([0.26, -0.74, 1.0, 100.0], requires_grad=True)
    y = fake_quant_ste(x, torch.tensor(0.5), torch.tensor(0, dtype=torch.int32), 4)
    assert_close(y.detach(), torch.tensor([0.5, -0.5, 1.0, 3.5]))
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert_close(x.grad, torch.tensor([1.0, 2.0, 3.0, 4.0]))


# ------------------------------------------------------------------------------------------------ k-means
def test_kmeans_size_bits_hand_worked():
    # 1000 weights * 4 bits + 16 centroids * 32 bits = 4000 + 512 = 4512; 2 bits, fp16 codebook: 2000 + 4 * 16
    assert kmeans_size_bits(1000, 4) == 4512
    assert kmeans_size_bits(1000, 2, codebook_bits=16) == 2064


def test_codebook_gradient_hand_worked():
    # clusters [0, 2, 0, 1]: c0 = 0.1 + 0.3 = 0.4, c1 = 0.4, c2 = 0.2, c3 (empty) = 0
    g = codebook_gradient(torch.tensor([[0.1, 0.2], [0.3, 0.4]]), torch.tensor([[0, 2], [0, 1]]), 4)
    assert_close(g, torch.tensor([0.4, 0.4, 0.2, 0.0]))


def test_kmeans_quantize_hand_worked():
    # 1 bit: centroids start at min 0 and max 1; {0, 0.1} -> 0.05, {0.9, 1.0} -> 0.95
    codebook, idx = kmeans_quantize(torch.tensor([[0.0, 0.1], [0.9, 1.0]]), 1)
    assert_close(codebook, torch.tensor([0.05, 0.95]))
    assert idx.tolist() == [[0, 0], [1, 1]]
    # one round from the linear start [0, 1] on w = [0, .4, .45, .56, 1, 1, 1, 1]: assign -> {0, .4, .45} and
    # {.56, 1, 1, 1, 1}; update -> c = [0.85 / 3, 4.56 / 5] = [0.28333, 0.912]; the returned indices are assigned
    # to these centroids: .56 is now nearer 0.28333 (0.2767 < 0.352) -> [0, 0, 0, 0, 1, 1, 1, 1]
    w = torch.tensor([0.0, 0.4, 0.45, 0.56, 1.0, 1.0, 1.0, 1.0])
    codebook, idx = kmeans_quantize(w, 1, n_iter=1)
    assert_close(codebook, torch.tensor([0.85 / 3, 0.912]))
    assert idx.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    # converged (20 rounds): c = [(0 + .4 + .45 + .56) / 4, 1] = [0.3525, 1]
    codebook, idx = kmeans_quantize(w, 1)
    assert_close(codebook, torch.tensor([0.3525, 1.0]))


def test_kmeans_quantize_linear_start_and_three_groups():
    # n_iter = 0 is the linear start itself: [1, 5] at 2 bits -> 1, 1 + 4/3, 1 + 8/3, 5; 1 -> 0, 5 -> 3
    codebook, idx = kmeans_quantize(torch.tensor([1.0, 5.0]), 2, 0)
    assert_close(codebook, torch.tensor([1.0, 7 / 3, 11 / 3, 5.0]))
    assert idx.tolist() == [0, 3]
    # 1 bit from [0, 3.1]: {0, .1, .2, 1, 1.1, 1.2} below the midpoint 1.55, {3, 3.1} above -> [0.6, 3.05]; the new
    # midpoint 1.825 splits the same way, so it stays there
    w = torch.tensor([0.0, 0.1, 0.2, 1.0, 1.1, 1.2, 3.0, 3.1])
    codebook, idx = kmeans_quantize(w, 1, n_iter=10)
    assert_close(codebook, torch.tensor([0.6, 3.05]))
    assert idx.dtype == torch.int64 and idx.tolist() == [0] * 6 + [1] * 2


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_kmeans_quantize_beats_linear_levels_on_gaussian_weights(bits):
    g = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    codebook, idx = kmeans_quantize(g, bits)
    assert codebook.dtype == torch.float32 and codebook.shape == (2 ** bits,) and idx.shape == g.shape
    err = ((codebook[idx] - g) ** 2).mean()
    assert err < ((fake_quantize(g, bits) - g) ** 2).mean(), "k-means beats linear quantization"
    assert torch.equal(idx, (g.flatten()[:, None] - codebook[None]).abs().argmin(1).reshape(g.shape)), "nearest centroid"
    cb0, idx0 = kmeans_quantize(g, bits, 0)
    assert err < ((cb0[idx0] - g) ** 2).mean(), "Lloyd rounds lower the error of the linear start"


def test_kmeans_quantize_rejects_bad_input():
    with pytest.raises(TypeError, match="float tensor"):
        kmeans_quantize(torch.arange(4), 1)
    with pytest.raises(TypeError, match="float tensor"):
        kmeans_quantize([0.0, 1.0], 1)
    with pytest.raises(ValueError, match="n_bits"):
        kmeans_quantize(torch.ones(4), 9)


# ------------------------------------------------------------------------------------------------ Lab 02 helpers
def test_huffman_lengths_clrs_example():
    # CLRS (3rd ed.) Fig. 16.5: a:45 b:13 c:12 d:16 e:9 f:5 -> code lengths 1, 3, 3, 3, 4, 4
    assert huffman_lengths(torch.tensor([45, 13, 12, 16, 9, 5])).tolist() == [1, 3, 3, 3, 4, 4]
    assert huffman_lengths(torch.tensor([0, 7, 0])).tolist() == [0, 1, 0]


def test_compressed_bits_hand_worked():
    # w = [0, 0, 0, 1.5, 1.5, 0, -2], max_run = 2. EIE stream: two zeros counted (run 2), third zero is a filler
    # (rel 2); 1.5 (rel 0); 1.5 (rel 0); one zero; -2 (rel 1) -> rel = [2, 0, 0, 1].
    # cluster symbols: indices [1, 1, 0] + the filler symbol 2 -> counts [1, 2, 1] -> Huffman lengths [2, 1, 2]:
    # 1*2 + 2*1 + 1*2 = 6 bits; rel counts [2, 1, 1] -> lengths [1, 2, 2]: 2 + 2 + 2 = 6 bits;
    # codebook 2 * 32 = 64 -> 6 + 6 + 64 = 76
    w = torch.tensor([0.0, 0.0, 0.0, 1.5, 1.5, 0.0, -2.0])
    assert compressed_bits(w, torch.tensor([1, 1, 0]), 2, max_run=2) == 76


def test_obd_saliency_hand_worked():
    # L = 3 w0^2 + w0 w1 + 0.5 w1^2 + w2^3: h00 = 6, h11 = 1, h22 = 6 w2 = 12 at w2 = 2 (the off-diagonal is ignored)
    # at w = [1, 2, 2]: s = 0.5 * [6 * 1, 1 * 4, 12 * 4] = [3, 2, 24]
    loss = lambda w: 3 * w[0] ** 2 + w[0] * w[1] + 0.5 * w[1] ** 2 + w[2] ** 3
    s = obd_saliency(loss, torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64))
    assert_close(s, torch.tensor([3.0, 2.0, 24.0], dtype=torch.float64))
