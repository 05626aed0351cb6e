"""Plausible wrong answers for Lab 03b's exercises: each must lose points (tests/test_labs.py runs them)."""

MUTANTS = {
    "binarize_bwn": {
        "alpha = max |W|": "return w.abs().max(), torch.where(w >= 0, 1.0, -1.0)",
        "torch.sign (sign(0) = 0)": "return w.abs().mean(), torch.sign(w)",
        "alpha = ||W||_2 / n": "return w.norm() / w.numel(), torch.where(w >= 0, 1.0, -1.0)",
    },
    "ternarize_twn": {
        "r_t averages over all weights": """
            delta = factor * w.abs().mean()
            keep = w.abs() > delta
            return delta, w.abs().mean(), torch.sign(w) * keep
        """,
        "threshold on the maximum": """
            delta = factor * w.abs().max()
            keep = w.abs() > delta
            return delta, w.abs()[keep].mean(), torch.sign(w) * keep
        """,
    },
    "pack_signs": {
        "big-endian bit order": """
            M, K = x.shape
            bits = np.zeros((M, -(-K // 32) * 32), dtype=bool)
            bits[:, :K] = x >= 0
            return np.packbits(bits, axis=1, bitorder="big").view("<u4").astype(np.uint32)
        """,
        "pads with ones": """
            M, K = x.shape
            bits = np.ones((M, -(-K // 32) * 32), dtype=bool)
            bits[:, :K] = x >= 0
            return np.packbits(bits, axis=1, bitorder="little").view("<u4").astype(np.uint32)
        """,
    },
    "xnor_popcount_matmul": {
        "counts the padding bits as agreeing": """
            agree = np.bitwise_count(~(a_bits[:, None, :] ^ b_bits[None, :, :])).sum(-1, dtype=np.int64)
            return (2 * agree - k).astype(np.int32)
        """,
        "popcount of XOR taken as the agreements": """
            agree = np.bitwise_count(a_bits[:, None, :] ^ b_bits[None, :, :]).sum(-1, dtype=np.int64)
            return (2 * agree - k).astype(np.int32)
        """,
    },
    "aciq_expected_mse": {
        "rounding noise over 2^N levels, not 4^N": "return 2 * b ** 2 * torch.exp(-alpha / b) + alpha ** 2 / (3 * 2 ** n_bits)",
        "clipping term without the factor 2": "return b ** 2 * torch.exp(-alpha / b) + alpha ** 2 / (3 * 4 ** n_bits)",
    },
    "mse_optimal_clip": {
        "maximises the error": """
            errors = torch.stack([((x - quantize_clipped(x, float(a), n_bits)) ** 2).mean() for a in candidates])
            return float(candidates[errors.argmax()])
        """,
        "three standard deviations": "return float(3 * x.std())",
        "clips at the data's range": "return float(x.abs().max())",
    },
    "fake_quant_ste": {
        "no straight-through: gradient of round is zero": "return dequantize(quantize(x, scale, zero_point, n_bits, symmetric), scale, zero_point)",
        "identity (no quantization)": "return x + 0.0",
        "straight-through but no dequantization": """
            q = quantize(x, scale, zero_point, n_bits, symmetric).float()
            return x + (q - x).detach()
        """,
    },
}


_KL_LOOP = """
    best_kl, best_i = np.inf, n_bins
    for i in range(n_levels, n_bins + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        nonzero = p > 0
        edges = np.arange(n_levels + 1) * i // n_levels
        mass = np.add.reduceat(hist[:i], edges[:-1])
        count = np.add.reduceat(nonzero.astype(np.float64), edges[:-1])
        q = np.where(nonzero, np.repeat(mass / np.maximum(count, 1), np.diff(edges)), 0.0)
        if (q[nonzero] == 0).any():
            continue
        p, q = p[nonzero] / p.sum(), q[nonzero] / q.sum()
        kl = float((p * np.log(p / q)).sum())
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i * top / n_bins
"""
MUTANTS["kl_optimal_clip"] = {
    "outliers dropped instead of added to the last bin": _KL_LOOP.replace("        p[-1] += hist[i:].sum()\n", ""),
    "Q built from the clipped P (outliers included)": _KL_LOOP.replace(
        "mass = np.add.reduceat(hist[:i], edges[:-1])", "mass = np.add.reduceat(p, edges[:-1])"),
    "Q spread over every bin of a group, empty ones too": _KL_LOOP.replace(
        "count = np.add.reduceat(nonzero.astype(np.float64), edges[:-1])", "count = np.diff(edges).astype(np.float64)").replace(
        "q = np.where(nonzero, np.repeat(mass / np.maximum(count, 1), np.diff(edges)), 0.0)",
        "q = np.repeat(mass / np.maximum(count, 1), np.diff(edges))"),
    "picks the largest divergence": _KL_LOOP.replace("best_kl, best_i = np.inf, n_bins", "best_kl, best_i = -np.inf, n_bins").replace(
        "if kl < best_kl:", "if kl > best_kl:"),
    "threshold at the lower edge of the last kept bin": _KL_LOOP.replace("return best_i * top / n_bins",
                                                                        "return (best_i - 1) * top / n_bins"),
}

# The kernel exercise: each mutant is the body of the solution's region (the C inside `// ### BEGIN SOLUTION` ...
# `// ### END SOLUTION`; the signature, shared tiles and indices r, c, wrow, words stay) with one mistake.
_INT8 = """
int acc = 0;
for (int w0 = 0; w0 < words; w0 += TILE) {
    Xs[ty][tx] = (r < M && w0 + tx < words) ? X[(size_t)r * words + w0 + tx] : 0;
    Ws[ty][tx] = (wrow < N && w0 + tx < words) ? W[(size_t)wrow * words + w0 + tx] : 0;
    __syncthreads();
    for (int w = 0; w < TILE; ++w) acc = __dp4a(Xs[ty][w], Ws[tx][w], acc);
    __syncthreads();
}
if (r < M && c < N) {
    const int s = 31 + shift[c];
    const long long q = (((long long)(acc + bias[c]) * m0[c] + (1LL << (s - 1))) >> s) + zy;
    Y[(size_t)r * N + c] = (signed char)(q < -128 ? -128 : (q > 127 ? 127 : q));
}
"""


def _mistake(old: str, new: str) -> str:
    assert old in _INT8, old
    return _INT8.replace(old, new)


MUTANTS["int8_gemm_src"] = {
    "no barrier after staging (a race)": _mistake("    __syncthreads();\n    for (int w = 0;", "    for (int w = 0;"),
    "forgets the folded bias": _mistake("(long long)(acc + bias[c])", "(long long)acc"),
    "truncating shift (no rounding term)": _mistake(" + (1LL << (s - 1))) >> s)", ") >> s)"),
    "shift by 31 only (ignores n)": _mistake("const int s = 31 + shift[c];", "const int s = 31;"),
    "wraps instead of saturating": _mistake("(signed char)(q < -128 ? -128 : (q > 127 ? 127 : q))", "(signed char)q"),
    "product in 32 bits (overflows)": _mistake("(long long)(acc + bias[c]) * m0[c]", "(acc + bias[c]) * m0[c]"),
    "W tile staged by output column (wrong rows)": _mistake(
        "Ws[ty][tx] = (wrow < N && w0 + tx < words) ? W[(size_t)wrow * words + w0 + tx] : 0;",
        "Ws[ty][tx] = (c < N && w0 + ty < words) ? W[(size_t)c * words + w0 + ty] : 0;"),
}
