"""kernels/int8_gemm.cu: every version vs int8_gemm_ref on ragged and even shapes (CPU tier; GPU when present); the
reference agrees with Lab 03's requantize(int_linear(...)); bounds/race checks; __dp4a words and tiling in the traffic.
Version 4 (float epilogue, per-token x per-channel scales) vs int8_gemm_scaled_ref, and against Lab 07's W8A8 fake
quantization: the integer kernel computes what the float simulation simulates."""
import numpy as np
import pytest
import torch

from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.int8_gemm import VERSIONS, int8_gemm, int8_gemm_ref, int8_gemm_scaled, int8_gemm_scaled_ref
from tinyml_lib.quantization.linear import fake_quantize, linear_quantize
from tinyml_lib.quantization.integer import int_linear, quantize_multiplier, requantize

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA device (CuPy missing or cupy.is_available() False)")
SHAPES = [(1, 1, 4), (37, 45, 70), (64, 64, 128), (5, 130, 33), (17, 16, 3)]


def problem(m, n, k, seed=0):
    """Random int8 codes, folded bias and per-channel multipliers scaled so that most outputs land inside int8."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    bias = rng.integers(-20_000, 20_000, n).astype(np.int32)
    mult = rng.uniform(0.5, 2.0, n) * 40 / (5_500 * np.sqrt(k))
    m0, shift = (t.numpy().astype(np.int32) for t in quantize_multiplier(torch.from_numpy(mult)))
    return x, w, bias, m0, shift, int(rng.integers(-20, 20))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matches_ref_cpu(version, m, n, k):
    args = problem(m, n, k)
    np.testing.assert_array_equal(int8_gemm(*args, version=version), int8_gemm_ref(*args))


def test_ref_is_the_labs_integer_linear_layer():
    x, w, bias, m0, shift, zy = problem(23, 19, 50, seed=3)
    acc = int_linear(torch.from_numpy(x).int(), torch.from_numpy(w).int(), torch.from_numpy(bias))
    want = requantize(acc, torch.from_numpy(m0).long(), torch.from_numpy(shift).long(), zy)
    np.testing.assert_array_equal(int8_gemm_ref(x, w, bias, m0, shift, zy), want.numpy().astype(np.int8))
    assert 0.02 < np.mean(np.abs(want.numpy()) < 127) and np.mean(np.abs(want.numpy()) >= 127) < 0.2  # not all clamped


def test_other_tile_and_saturation():
    x, w, bias, m0, shift, zy = problem(40, 33, 100, seed=1)
    np.testing.assert_array_equal(int8_gemm(x, w, bias, m0, shift, zy, version=3, tile=8),
                                  int8_gemm_ref(x, w, bias, m0, shift, zy))
    big = np.full(33, -25, np.int32)  # multipliers 2^6 and more: almost everything saturates at -128 or 127
    y = int8_gemm(x, w, bias, m0, big, zy)
    np.testing.assert_array_equal(y, int8_gemm_ref(x, w, bias, m0, big, zy))
    assert np.mean((y == 127) | (y == -128)) > 0.9


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("check", ["bounds", "race"])
def test_clean_under_checks(version, check):
    args = problem(21, 35, 70, seed=2)
    np.testing.assert_array_equal(int8_gemm(*args, version=version, check=check), int8_gemm_ref(*args))


def test_dp4a_words_and_tiles_cut_loads():
    m = n = 64
    k = 128
    args = problem(m, n, k)
    loads = {v: int8_gemm(*args, version=v, counters=True)[1] for v in VERSIONS}
    epilogue = 12 * m * n  # bias, m0 and shift per output
    assert loads[1].bytes_loaded == 2 * m * n * k + epilogue      # one byte of each operand per MAC
    assert loads[2].bytes_loaded == 2 * m * n * k + epilogue      # the same bytes, a quarter of the loads
    assert loads[3].bytes_loaded == 2 * m * n * k // 16 + epilogue  # TILE = 16: each staged word reused 16 times
    assert all(s.bytes_stored == m * n for s in loads.values())


def test_rejects_bad_input():
    x, w, bias, m0, shift, zy = problem(4, 5, 8)
    with pytest.raises(ValueError, match="version"):
        int8_gemm(x, w, bias, m0, shift, zy, version=9)
    with pytest.raises(ValueError, match="expected w"):
        int8_gemm(x, w[:, :4], bias, m0, shift, zy)
    with pytest.raises(ValueError, match="shift"):
        int8_gemm(x, w, bias, m0, np.full(5, 40, np.int32), zy)


def scaled_problem(m, n, k, seed=0):
    """int8 codes, positive float32 scales per token and per channel, a float32 bias."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-127, 128, (m, k), dtype=np.int8), rng.uniform(1e-3, 0.1, m).astype(np.float32),
            rng.integers(-127, 128, (n, k), dtype=np.int8), rng.uniform(1e-4, 0.01, n).astype(np.float32),
            rng.standard_normal(n).astype(np.float32))


def assert_scaled_close(got, want):
    # Exact int32 sums; float32 epilogue, where a compiler may fuse the multiply-add (one rounding less).
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * float(np.abs(want).max()))


@pytest.mark.parametrize("m,n,k", SHAPES + [(16, 576, 576)])
def test_scaled_matches_ref_cpu(m, n, k):
    args = scaled_problem(m, n, k)
    assert_scaled_close(int8_gemm_scaled(*args), int8_gemm_scaled_ref(*args))


def test_scaled_without_bias_and_other_tile():
    x, sx, w, sw, _ = scaled_problem(40, 33, 101, seed=1)
    assert_scaled_close(int8_gemm_scaled(x, sx, w, sw, tile=8), int8_gemm_scaled_ref(x, sx, w, sw))
    assert_scaled_close(int8_gemm_scaled_ref(x, sx, w, sw), sx[:, None] * sw * (x.astype(np.float64) @ w.T.astype(np.float64)))


@pytest.mark.parametrize("check", ["bounds", "race"])
def test_scaled_clean_under_checks(check):
    args = scaled_problem(21, 35, 70, seed=2)
    assert_scaled_close(int8_gemm_scaled(*args, check=check), int8_gemm_scaled_ref(*args))


def test_scaled_traffic():
    m = n = 64
    k = 128
    _, stats = int8_gemm_scaled(*scaled_problem(m, n, k), counters=True)
    assert stats.bytes_loaded == 2 * m * n * k // 16 + 12 * m * n  # tiles as in v3; sx, sw and bias per output
    assert stats.bytes_stored == 4 * m * n                           # one float32 per output


@pytest.mark.parametrize("per_token", [False, True])
def test_scaled_is_the_w8a8_simulation(per_token):
    # Lab 07's W8A8: symmetric int8 weights per output channel, activations per tensor (or per token); a few
    # outlier input channels, as in an LLM. The float product of the fake-quantized tensors is the kernel's output.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 96, generator=g) * torch.where(torch.arange(96) % 31 == 0, 40.0, 1.0)
    w = torch.randn(80, 96, generator=g) * 0.05
    x_axis = 0 if per_token else None
    (xq, sx, _), (wq, sw, _) = linear_quantize(x, 8, True, x_axis), linear_quantize(w, 8, True, axis=0)
    want = fake_quantize(x, 8, True, x_axis) @ fake_quantize(w, 8, True, axis=0).T
    got = int8_gemm_scaled(xq.to(torch.int8).numpy(), sx.expand(16, 1).flatten().contiguous().numpy(),
                           wq.to(torch.int8).numpy(), sw.reshape(80).numpy())
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_scaled_rejects_bad_input():
    x, sx, w, sw, bias = scaled_problem(4, 5, 8)
    with pytest.raises(ValueError, match="int8 x"):
        int8_gemm_scaled(x.astype(np.int32), sx, w, sw, bias)
    with pytest.raises(ValueError, match="int8 x"):
        int8_gemm_scaled(x, sx, w[:, :4], sw, bias)
    with pytest.raises(ValueError, match="float32 sx"):
        int8_gemm_scaled(x, sx[:3], w, sw, bias)
    with pytest.raises(ValueError, match="float32 sx"):
        int8_gemm_scaled(x, sx, w, sw.astype(np.float64), bias)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matches_ref_gpu(version, m, n, k):
    import cupy
    x, w, bias, m0, shift, zy = problem(m, n, k)
    got = int8_gemm(*(cupy.asarray(t) for t in (x, w, bias, m0, shift)), zy, version=version)
    np.testing.assert_array_equal(cupy.asnumpy(got), int8_gemm_ref(x, w, bias, m0, shift, zy))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("m,n,k", SHAPES + [(16, 576, 576)])
def test_scaled_matches_ref_gpu(m, n, k):
    import cupy
    args = scaled_problem(m, n, k)
    assert_scaled_close(cupy.asnumpy(int8_gemm_scaled(*(cupy.asarray(t) for t in args))), int8_gemm_scaled_ref(*args))


def test_references_on_hand_worked_values():
    # Requantization: m0 = 2^30 (0.5 in Q31), shift 0 -> round half up of acc / 2: 5, -5, 7, -7 -> 3, -2, 4, -3.
    one = lambda v: np.array([v], np.int32)
    x = np.array([[5], [-5], [7], [-7]], np.int8)
    assert int8_gemm_ref(x, np.array([[1]], np.int8), one(0), one(2**30), one(0), 0).tolist() == [[3], [-2], [4], [-3]]
    m0, n = quantize_multiplier(torch.tensor(0.3, dtype=torch.float64))
    assert (int(m0), int(n)) == (1288490189, 1)   # 0.3 = 0.6 * 2^-1, 0.6 * 2^31 rounded
    y = int8_gemm_ref(np.array([[10]], np.int8), np.array([[5]], np.int8), one(0), one(int(m0)), one(int(n)), 3)
    assert y.tolist() == [[18]]                   # round(50 * 0.3) + 3
    got = int8_gemm_scaled_ref(np.array([[1, 2, 3, 4]], np.int8), np.array([0.5], np.float32), np.ones((1, 4), np.int8),
                               np.array([0.25], np.float32), np.array([1.0], np.float32))
    assert got.tolist() == [[2.25]]               # 0.5 * 0.25 * 10 + 1
