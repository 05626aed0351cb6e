"""Plausible wrong answers for Lab 03's exercises (part 1; part 2's are in lab03b_low_bit.py): each must lose points
(tests/test_labs.py runs them)."""

MUTANTS = {
    "decode_fixed_point": {
        "sign-magnitude instead of two's complement": """
            top = code >= 2 ** (n_bits - 1)
            value = np.where(top & signed, -(code - 2 ** (n_bits - 1)), code)
            return value.astype(np.float64) / 2.0 ** frac_bits
        """,
        "off by one: subtracts 2^(n-1)": """
            value = code - (code >= 2 ** (n_bits - 1)) * 2 ** (n_bits - 1) if signed else code
            return value.astype(np.float64) / 2.0 ** frac_bits
        """,
        "ignores the fraction bits": """
            value = code - (code >= 2 ** (n_bits - 1)) * 2 ** n_bits if signed else code
            return value.astype(np.float64)
        """,
    },
    "encode_fixed_point": {
        "truncates instead of rounding": """
            q_min, q_max = (-(2 ** (n_bits - 1)), 2 ** (n_bits - 1) - 1) if signed else (0, 2 ** n_bits - 1)
            q = np.clip(np.trunc(x * 2.0 ** frac_bits), q_min, q_max).astype(np.int64)
            return np.mod(q, 2 ** n_bits)
        """,
        "wraps around instead of saturating": """
            q = np.rint(x * 2.0 ** frac_bits).astype(np.int64)
            return np.mod(q, 2 ** n_bits)
        """,
        "rounds half away from zero": """
            q_min, q_max = (-(2 ** (n_bits - 1)), 2 ** (n_bits - 1) - 1) if signed else (0, 2 ** n_bits - 1)
            q = np.clip(np.sign(x) * np.floor(np.abs(x) * 2.0 ** frac_bits + 0.5), q_min, q_max).astype(np.int64)
            return np.mod(q, 2 ** n_bits)
        """,
    },
    "decode_float": {
        "no subnormals (implicit 1 always)": """
            sign = np.where((code >> (E + M)) & 1, -1.0, 1.0)
            e = (code >> M) & (2 ** E - 1)
            m = (code & (2 ** M - 1)).astype(np.float64)
            value = sign * np.ldexp(1.0 + m / 2 ** M, e - fmt.bias)
            if fmt.special == "ieee":
                value = np.where(e == 2 ** E - 1, np.where(m == 0, sign * np.inf, np.nan), value)
            elif fmt.special == "fn":
                value = np.where((e == 2 ** E - 1) & (m == 2 ** M - 1), np.nan, value)
            return value
        """,
        "E4M3 treated as IEEE (INF and NaNs at exponent 1111)": """
            sign = np.where((code >> (E + M)) & 1, -1.0, 1.0)
            e = (code >> M) & (2 ** E - 1)
            m = (code & (2 ** M - 1)).astype(np.float64)
            frac = np.where(e == 0, m / 2 ** M, 1.0 + m / 2 ** M)
            value = sign * np.ldexp(frac, np.maximum(e, 1) - fmt.bias)
            if fmt.special != "none":
                value = np.where(e == 2 ** E - 1, np.where(m == 0, sign * np.inf, np.nan), value)
            return value
        """,
        "bias 2^(E-1) instead of 2^(E-1) - 1": """
            sign = np.where((code >> (E + M)) & 1, -1.0, 1.0)
            e = (code >> M) & (2 ** E - 1)
            m = (code & (2 ** M - 1)).astype(np.float64)
            frac = np.where(e == 0, m / 2 ** M, 1.0 + m / 2 ** M)
            value = sign * np.ldexp(frac, np.maximum(e, 1) - fmt.bias - 1)
            if fmt.special == "ieee":
                value = np.where(e == 2 ** E - 1, np.where(m == 0, sign * np.inf, np.nan), value)
            elif fmt.special == "fn":
                value = np.where((e == 2 ** E - 1) & (m == 2 ** M - 1), np.nan, value)
            return value
        """,
    },
    "float_max": {
        "E4M3 as IEEE: 240": "return (2.0 - 2.0 ** -M) * 2.0 ** (2 ** E - 2 - fmt.bias)",
        "E4M3 forgets the NaN code: 480": """
            if fmt.special == "ieee":
                return (2.0 - 2.0 ** -M) * 2.0 ** (2 ** E - 2 - fmt.bias)
            return (2.0 - 2.0 ** -M) * 2.0 ** (2 ** E - 1 - fmt.bias)
        """,
        "mantissa all ones read as 2": "return 2.0 * 2.0 ** (2 ** E - 2 - fmt.bias)",
    },
    "scale_zero_point": {
        "symmetric scale divides by 2^(N-1)": """
            if symmetric:
                scale = torch.maximum(-r_min, r_max) / (q_max + 1)
                zero_point = torch.zeros_like(scale, dtype=torch.int32)
            else:
                scale = (r_max - r_min) / (q_max - q_min)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            if not symmetric:
                zero_point = torch.round(q_min - r_min / scale).clamp(q_min, q_max).to(torch.int32)
            return scale, zero_point
        """,
        "zero point sign flipped": """
            if symmetric:
                scale = torch.maximum(-r_min, r_max) / q_max
                zero_point = torch.zeros_like(scale, dtype=torch.int32)
            else:
                scale = (r_max - r_min) / (q_max - q_min)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            if not symmetric:
                zero_point = torch.round(q_min + r_min / scale).clamp(q_min, q_max).to(torch.int32)
            return scale, zero_point
        """,
        "scale over 2^N levels instead of 2^N - 1 steps": """
            if symmetric:
                scale = torch.maximum(-r_min, r_max) / q_max
                zero_point = torch.zeros_like(scale, dtype=torch.int32)
            else:
                scale = (r_max - r_min) / (q_max - q_min + 1)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            if not symmetric:
                zero_point = torch.round(q_min - r_min / scale).clamp(q_min, q_max).to(torch.int32)
            return scale, zero_point
        """,
    },
    "quantize": {
        "subtracts the zero point": "return (torch.round(r / scale) - zero_point).clamp(q_min, q_max).to(torch.int32)",
        "no clamping": "return (torch.round(r / scale) + zero_point).to(torch.int32)",
        "truncates instead of rounding": "return (torch.trunc(r / scale) + zero_point).clamp(q_min, q_max).to(torch.int32)",
    },
    "linear_quantize": {
        "per channel reduces over the channel axis": """
            if group_size is not None:
                groups = r.reshape(*r.shape[:-1], r.shape[-1] // group_size, group_size)
                scale, zero_point = scale_zero_point(groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True),
                                                     n_bits, symmetric)
                scale, zero_point = scale.expand_as(groups).reshape(r.shape), zero_point.expand_as(groups).reshape(r.shape)
            elif axis is not None:
                scale, zero_point = scale_zero_point(r.amin(axis, keepdim=True), r.amax(axis, keepdim=True), n_bits, symmetric)
            else:
                scale, zero_point = scale_zero_point(r.min(), r.max(), n_bits, symmetric)
            return quantize(r, scale, zero_point, n_bits, symmetric), scale, zero_point
        """,
        "groups ignored (per tensor)": """
            if axis is not None:
                dims = [d for d in range(r.dim()) if d != axis % r.dim()]
                scale, zero_point = scale_zero_point(r.amin(dims, keepdim=True), r.amax(dims, keepdim=True), n_bits, symmetric)
            else:
                scale, zero_point = scale_zero_point(r.min(), r.max(), n_bits, symmetric)
            if group_size is not None:
                scale, zero_point = scale.expand(r.shape), zero_point.expand(r.shape)
            return quantize(r, scale, zero_point, n_bits, symmetric), scale, zero_point
        """,
        "range from |r|max even when asymmetric": """
            if group_size is not None:
                groups = r.reshape(*r.shape[:-1], r.shape[-1] // group_size, group_size)
                a = groups.abs().amax(-1, keepdim=True)
                scale, zero_point = scale_zero_point(-a, a, n_bits, symmetric)
                scale, zero_point = scale.expand_as(groups).reshape(r.shape), zero_point.expand_as(groups).reshape(r.shape)
            elif axis is not None:
                dims = [d for d in range(r.dim()) if d != axis % r.dim()]
                a = r.abs().amax(dims, keepdim=True)
                scale, zero_point = scale_zero_point(-a, a, n_bits, symmetric)
            else:
                scale, zero_point = scale_zero_point(-r.abs().max(), r.abs().max(), n_bits, symmetric)
            return quantize(r, scale, zero_point, n_bits, symmetric), scale, zero_point
        """,
    },
    "quantize_multiplier": {
        "M_0 in [1, 2) instead of [0.5, 1)": """
            mantissa, exponent = torch.frexp(m)
            return torch.round(mantissa * 2.0 ** 32).to(torch.int64), -exponent.to(torch.int64) + 1
        """,
        "shift sign flipped": """
            mantissa, exponent = torch.frexp(m)
            return torch.round(mantissa * 2.0 ** 31).to(torch.int64), exponent.to(torch.int64)
        """,
        "forgets to renormalise after rounding": """
            mantissa, exponent = torch.frexp(m)
            return torch.round(mantissa * 2.0 ** 31).to(torch.int64), -exponent.to(torch.int64)
        """,
    },
    "requantize": {
        "truncating shift (no rounding)": """
            prod = acc.to(torch.int64) * m0
            return (torch.bitwise_right_shift(prod, shift) + zero_point).clamp(q_min, q_max).to(torch.int32)
        """,
        "shift by n only": """
            prod = acc.to(torch.int64) * m0
            s = shift - 31
            rounded = torch.bitwise_right_shift(prod + torch.bitwise_left_shift(torch.ones_like(s), (s - 1).clamp(min=0)), s)
            return (rounded + zero_point).clamp(q_min, q_max).to(torch.int32)
        """,
        "forgets the zero point": """
            prod = acc.to(torch.int64) * m0
            rounded = torch.bitwise_right_shift(prod + torch.bitwise_left_shift(torch.ones_like(shift), shift - 1), shift)
            return rounded.clamp(q_min, q_max).to(torch.int32)
        """,
    },
    "fold_bias": {
        "adds the zero-point term": "return _to_int32(q_b.to(torch.int64) + int(z_x) * q_w.to(torch.int64).flatten(1).sum(1))",
        "sums over the wrong axis": "return _to_int32(q_b.to(torch.int64) - int(z_x) * q_w.to(torch.int64).flatten(1).sum(0)[:q_w.shape[0]])",
        "no folding": "return q_b.to(torch.int32)",
    },
    "int_conv2d": {
        "pads with code 0 instead of Z_X": """
            padded = F.pad(q_x, (padding,) * 4, value=0)
            return exact_int_conv2d(padded, q_w, stride) + q_bias[:, None, None]
        """,
        "forgets the bias": """
            padded = F.pad(q_x, (padding,) * 4, value=int(z_x))
            return exact_int_conv2d(padded, q_w, stride)
        """,
        "ignores the stride": """
            padded = F.pad(q_x, (padding,) * 4, value=int(z_x))
            return exact_int_conv2d(padded, q_w, 1) + q_bias[:, None, None]
        """,
    },
    "int_linear": {
        "forgets the bias": "return _to_int32(q_x.to(torch.int64) @ q_w.to(torch.int64).T)",
        "accumulates in int8 (wraps around)": "return (q_x.to(torch.int64) @ q_w.to(torch.int64).T + q_bias).to(torch.int8).to(torch.int32)",
    },
    "kmeans_size_bits": {
        "forgets the codebook": "return n_weights * n_bits",
        "codebook of n_bits entries": "return n_weights * n_bits + n_bits * codebook_bits",
    },
    "codebook_gradient": {
        "averages instead of summing": """
            sums = torch.zeros(n_clusters).index_add_(0, indices.flatten(), grad_w.flatten().float())
            return sums / torch.bincount(indices.flatten(), minlength=n_clusters).clamp(min=1)
        """,
        "zero gradient": "return torch.zeros(n_clusters)",
    },
}


# encode_float: each mutant is the solution's body with one mistake.
_ENCODE_FLOAT = """
sign = np.signbit(x).astype(np.int64) << (E + M)
a = np.where(np.isfinite(x), np.abs(x), 0.0)
exp = np.maximum(np.frexp(a)[1] - 1, 1 - fmt.bias)
units = np.rint(np.ldexp(a, M - exp)).astype(np.int64)
carry = units >> (M + 1)
units, exp = np.where(carry, units >> 1, units), exp + carry
e_field = np.where(units >= 2 ** M, exp + fmt.bias, 0)
mag = (e_field << M) | (units & (2 ** M - 1))
top = {"ieee": ((2 ** E - 1) << M) - 1, "fn": 2 ** (E + M) - 2, "none": 2 ** (E + M) - 1}[fmt.special]
inf_or_nan = (2 ** E - 1) << M if fmt.special == "ieee" else top + 1
over = top if saturate or fmt.special == "none" else inf_or_nan
code = sign | np.where((mag > top) | np.isinf(x), over, mag)
if fmt.special != "none":
    payload = (x.view(np.int64) >> (52 - M)) & (2 ** M - 1) if fmt.nan_payload else 0
    nan = ((2 ** E - 1) << M) | (1 << (M - 1)) | payload if fmt.special == "ieee" else 2 ** (E + M) - 1
    code = np.where(np.isnan(x), sign | nan, code)
return code
"""


def _float_mistake(*old_new: str) -> str:
    body = _ENCODE_FLOAT
    for old, new in zip(old_new[::2], old_new[1::2]):
        assert old in body, old
        body = body.replace(old, new)
    return body


MUTANTS["encode_float"] = {
    "truncates the mantissa": _float_mistake("np.rint(np.ldexp(a, M - exp))", "np.floor(np.ldexp(a, M - exp))"),
    "rounds ties away from zero": _float_mistake("np.rint(np.ldexp(a, M - exp))",
                                                 "np.floor(np.ldexp(a, M - exp) + 0.5)"),
    "no subnormals: flushes small values to zero": _float_mistake(
        "a = np.where(np.isfinite(x), np.abs(x), 0.0)\n",
        "a = np.where(np.isfinite(x), np.abs(x), 0.0)\na = np.where(a < 2.0 ** (1 - fmt.bias), 0.0, a)\n"),
    "forgets the carry into the next binade (1.97 -> 1.0 in E4M3)": _float_mistake(
        "units, exp = np.where(carry, units >> 1, units), exp + carry\n", ""),
    "saturates by default (the old behaviour)": _float_mistake(
        "over = top if saturate or fmt.special == \"none\" else inf_or_nan", "over = top"),
    "ignores saturate (never saturates)": _float_mistake(
        "over = top if saturate or fmt.special == \"none\" else inf_or_nan",
        "over = top if fmt.special == \"none\" else inf_or_nan"),
    "E4M3 saturates by default, as torch.float8_e4m3fn": _float_mistake(
        "over = top if saturate or fmt.special == \"none\" else inf_or_nan",
        "over = top if saturate or fmt.special != \"ieee\" else inf_or_nan"),
    "E4M3 overflows to the IEEE INF pattern S.1111.000 (= 256)": _float_mistake(
        "inf_or_nan = (2 ** E - 1) << M if fmt.special == \"ieee\" else top + 1", "inf_or_nan = (2 ** E - 1) << M"),
    "overflow tested before rounding (65519 -> INF)": _float_mistake(
        "np.where((mag > top) | np.isinf(x), over, mag)", "np.where((a > float_max(fmt)) | np.isinf(x), over, mag)"),
    "saturate=True leaves INF as INF (E4M3: NaN)": _float_mistake(
        "np.where((mag > top) | np.isinf(x), over, mag)",
        "np.where(mag > top, over, np.where(np.isinf(x), inf_or_nan if fmt.special != \"none\" else top, mag))"),
    "drops the sign of NaN": _float_mistake(
        "code = np.where(np.isnan(x), sign | nan, code)", "code = np.where(np.isnan(x), nan, code)"),
    "NaN without the quiet bit (BF16/E5M2 NaN becomes INF)": _float_mistake(
        "((2 ** E - 1) << M) | (1 << (M - 1)) | payload", "((2 ** E - 1) << M) | payload"),
    "drops the NaN payload of FP32/FP16": _float_mistake(
        "payload = (x.view(np.int64) >> (52 - M)) & (2 ** M - 1) if fmt.nan_payload else 0", "payload = 0"),
    "keeps the NaN payload in BF16 and E5M2 too": _float_mistake(" if fmt.nan_payload else 0", ""),
}
