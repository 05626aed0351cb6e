"""Plausible wrong answers for Lab 07's exercises: each must lose points (tests/test_labs.py runs them).

Sections that re-run SmolLM2 perplexities are expensive, so their exercises carry few decisive mutants (two each;
wanda_mask four, two of them for the N:M path that the 2:4 check on SmolLM2 grades).
"""

MUTANTS = {
    "perplexity_windows": {
        "mean of per-window perplexities": """
            ppls, count = [], 0
            with torch.inference_mode():
                for window in windows:
                    logits = logits_fn(window[None])[0]
                    ppls.append(math.exp(float(F.cross_entropy(logits[:-1].float(), window[1:]))))
                    count += window.numel() - 1
            return sum(ppls) / len(ppls), count
        """,
        "off by one: logits of position t score token t": """
            total, count = 0.0, 0
            with torch.inference_mode():
                for window in windows:
                    logits = logits_fn(window[None])[0]
                    total += float(F.cross_entropy(logits[1:].float(), window[1:], reduction="sum"))
                    count += window.numel() - 1
            return math.exp(total / count), count
        """,
    },
    "kv_cache_bytes": {
        "no GQA: counts every query head": """
            return 2 * config.num_hidden_layers * config.num_attention_heads * head_dim * tokens * batch * bytes_per_value
        """,
        "forgets that values are cached too": """
            return config.num_hidden_layers * config.num_key_value_heads * head_dim * tokens * batch * bytes_per_value
        """,
    },
    "attend_with_cache": {
        "causal mask without the cache offset": """
            if cache_k is not None:
                k, v = torch.cat([cache_k, k], dim=2), torch.cat([cache_v, v], dim=2)
            group = q.shape[1] // k.shape[1]
            k_heads, v_heads = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            t, s = q.shape[2], k.shape[2]
            scores = q @ k_heads.transpose(-1, -2) / math.sqrt(q.shape[-1])
            visible = torch.ones(t, s, dtype=torch.bool).tril()
            out = scores.masked_fill(~visible, float("-inf")).softmax(dim=-1) @ v_heads
            return out, k, v
        """,
        "KV heads tiled instead of interleaved (wrong head groups)": """
            if cache_k is not None:
                k, v = torch.cat([cache_k, k], dim=2), torch.cat([cache_v, v], dim=2)
            group = q.shape[1] // k.shape[1]
            k_heads, v_heads = k.repeat(1, group, 1, 1), v.repeat(1, group, 1, 1)
            t, s = q.shape[2], k.shape[2]
            scores = q @ k_heads.transpose(-1, -2) / math.sqrt(q.shape[-1])
            visible = torch.ones(t, s, dtype=torch.bool).tril(s - t)
            out = scores.masked_fill(~visible, float("-inf")).softmax(dim=-1) @ v_heads
            return out, k, v
        """,
        "returns only the new keys (the cache never grows)": """
            k_all = torch.cat([cache_k, k], dim=2) if cache_k is not None else k
            v_all = torch.cat([cache_v, v], dim=2) if cache_v is not None else v
            group = q.shape[1] // k_all.shape[1]
            k_heads, v_heads = k_all.repeat_interleave(group, dim=1), v_all.repeat_interleave(group, dim=1)
            t, s = q.shape[2], k_all.shape[2]
            scores = q @ k_heads.transpose(-1, -2) / math.sqrt(q.shape[-1])
            visible = torch.ones(t, s, dtype=torch.bool).tril(s - t)
            out = scores.masked_fill(~visible, float("-inf")).softmax(dim=-1) @ v_heads
            return out, k, v
        """,
    },
    "pack_int4": {
        "even column in the high nibble": "return (codes[:, 0::2] << 4) | codes[:, 1::2]",
        "halves instead of neighbours": "return codes[:, :codes.shape[1] // 2] | (codes[:, codes.shape[1] // 2:] << 4)",
    },
    "unpack_int4": {
        "forgets the mask": "return torch.stack([packed, packed >> 4], dim=-1).view(packed.shape[0], -1)",
        "concatenates the nibbles instead of interleaving": "return torch.cat([packed & 0xF, packed >> 4], dim=1)",
    },
    "awq_search_scale": {
        "keeps the last grid point, not the best": """
            s_x = x.abs().mean(dim=0).clamp(min=1e-8)
            alpha = (cfg.n_grid - 1) / cfg.n_grid
            s = s_x ** alpha
            return s / (s.max() * s.min()).sqrt(), alpha
        """,
        "scales the weights but forgets to divide the input": """
            s_x = x.abs().mean(dim=0).clamp(min=1e-8)
            refs = [x @ w.T for w in weights]
            best_loss, best_s, best_alpha = float("inf"), None, None
            for i in range(cfg.n_grid):
                alpha = i / cfg.n_grid
                s = s_x ** alpha
                s = s / (s.max() * s.min()).sqrt()
                loss = 0.0
                for w, ref in zip(weights, refs):
                    w_q = dequantize_int4_groups(*quantize_int4_groups(w * s, cfg.group_size, cfg.symmetric), cfg.group_size)
                    loss += float((x @ w_q.T - ref).pow(2).sum())
                if loss < best_loss:
                    best_loss, best_s, best_alpha = loss, s, alpha
            return best_s, best_alpha
        """,
    },
    "magnitude_mask": {
        "keeps the smallest weights": "return row_mask(-w.abs(), sparsity)",
        "one threshold for the whole layer": """
            k = int(sparsity * w.numel())
            return w.abs() > w.abs().flatten().kthvalue(k).values
        """,
        "signed weights instead of magnitudes": "return row_mask(w, sparsity)",
    },
    "wanda_mask": {
        "ignores the activations (magnitude pruning)": """
            scores = w.abs()
            if n_m is None:
                return row_mask(scores, sparsity)
            n, m = n_m
            return row_mask(scores.reshape(-1, m), (m - n) / m).reshape(w.shape)
        """,
        "N:M keeps m - n instead of n": """
            scores = w.abs() * x_norm
            if n_m is None:
                return row_mask(scores, sparsity)
            n, m = n_m
            return row_mask(scores.reshape(-1, m), n / m).reshape(w.shape)
        """,
        "N:M by |W| alone (the activations used only without n_m)": """
            scores = w.abs() * x_norm
            if n_m is None:
                return row_mask(scores, sparsity)
            n, m = n_m
            return row_mask(w.abs().reshape(-1, m), (m - n) / m).reshape(w.shape)
        """,
        "N:M blocks of m output rows (down the columns) instead of m inputs": """
            scores = w.abs() * x_norm
            if n_m is None:
                return row_mask(scores, sparsity)
            n, m = n_m
            blocks = scores.T.reshape(-1, m)  # (in * out / m, m)
            return row_mask(blocks, (m - n) / m).reshape(w.shape[1], w.shape[0]).T
        """,
    },
    "smoothing_factors": {
        "exponents swapped": "return x_absmax.clamp(min=clamp) ** (1 - alpha) / w_absmax.clamp(min=clamp) ** alpha",
        "product instead of ratio": "return x_absmax.clamp(min=clamp) ** alpha * w_absmax.clamp(min=clamp) ** (1 - alpha)",
    },
    "fold_smoothing_": {
        "multiplies the producer instead of dividing it": """
            prev.mul_(s.view(-1, *([1] * (prev.ndim - 1))))
            for w in weights:
                w.mul_(s)
        """,
        "handles only a norm as the producer": """
            if prev.ndim == 1:
                prev.div_(s)
            for w in weights:
                w.mul_(s)
        """,
    },
    "pack_signs": {
        "big-endian bit order inside each byte": """
            d = x.shape[-1]
            bits = np.zeros(x.shape[:-1] + (-(-d // 32) * 32,), dtype=bool)
            bits[..., :d] = x < 0
            return np.packbits(bits, axis=-1, bitorder="big").view("<u4").astype(np.uint32)
        """,
        "zero counted as negative": """
            d = x.shape[-1]
            bits = np.zeros(x.shape[:-1] + (-(-d // 32) * 32,), dtype=bool)
            bits[..., :d] = x <= 0
            return np.packbits(bits, axis=-1, bitorder="little").view("<u4").astype(np.uint32)
        """,
    },
    "count_negative_products": {
        "AND instead of XOR": "return np.bitwise_count(w_signs & x_signs).sum(axis=-1, dtype=np.int64)",
        "counts equal signs (positive products)": "return np.bitwise_count(~(w_signs ^ x_signs)).sum(axis=-1, dtype=np.int64)",
    },
    "predict_zero_rows": {
        "alpha on the wrong side": "n_neg = np.asarray(n_neg)\nreturn alpha * n_neg > d - n_neg",
        "ties predicted zero (>= instead of >)": "n_neg = np.asarray(n_neg)\nreturn n_neg >= alpha * (d - n_neg)",
        "compares with half of d instead of the positives": "n_neg = np.asarray(n_neg)\nreturn n_neg > alpha * d / 2",
    },
    "sparse_ffn": {
        "dense product, then a mask (reads every row)": """
            keep = torch.zeros_like(b1)
            keep[active] = 1.0
            return (torch.relu(w1 @ x + b1) * keep) @ w2t + b2
        """,
        "forgets the hidden bias": "return torch.relu(w1.index_select(0, active) @ x) @ w2t.index_select(0, active) + b2",
    },
    "neuron_scores": {
        "pre-activation norm (no ReLU)": "return (x @ w1.T + b1).norm(dim=0)",
        "forgets the bias": "return torch.relu(x @ w1.T).norm(dim=0)",
    },
    "ffsplit_weights": {
        "keeps the lowest-scoring neurons dense": """
            order = scores.argsort()
            heavy, light = order[:n_heavy], order[n_heavy:]
            w1_new, w2_new = w1.clone(), w2.clone()
            w1_new[light], p1 = truncated_svd(w1[light], rank)
            w2_new[:, light], p2 = truncated_svd(w2[:, light], rank)
            return w1_new, w2_new, 2 * n_heavy * w1.shape[1] + p1 + p2
        """,
        "counts one factorisation only": """
            order = scores.argsort(descending=True)
            heavy, light = order[:n_heavy], order[n_heavy:]
            w1_new, w2_new = w1.clone(), w2.clone()
            w1_new[light], p1 = truncated_svd(w1[light], rank)
            w2_new[:, light], p2 = truncated_svd(w2[:, light], rank)
            return w1_new, w2_new, 2 * n_heavy * w1.shape[1] + p1
        """,
    },
}

# The kernel exercise: each mutant is the body of the solution's region (the C inside `// ### BEGIN SOLUTION` ...
# `// ### END SOLUTION`; the signature, `xs`, lane, row, words and groups stay) with one mistake.
_W4 = """
for (int k = threadIdx.x; k < K; k += blockDim.x) xs[k] = __half2float(x[k]);
__syncthreads();
if (row >= N) return;
float acc = 0.0f;
for (int w = lane; w < words; w += 32) {
    const unsigned int q = qweight[(size_t)row * words + w];
    const int g = row * groups + (w * 8) / GROUP;
    const float zero = (float)zeros[g], scale = __half2float(scales[g]);
    float part = 0.0f;
    for (int i = 0; i < 8; ++i) part += ((float)((q >> (4 * i)) & 0xFu) - zero) * xs[w * 8 + i];
    acc += part * scale;
}
for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, offset);
if (lane == 0) y[row] = acc;
"""


def _mistake(old: str, new: str) -> str:
    assert old in _W4, old
    return _W4.replace(old, new)


MUTANTS["w4a16_gemv_src"] = {
    "no barrier after staging x (a race)": _mistake(
        "xs[k] = __half2float(x[k]);\n__syncthreads();\n", "xs[k] = __half2float(x[k]);\n"),
    "nibbles unpacked from the top": _mistake("(q >> (4 * i)) & 0xFu", "(q >> (28 - 4 * i)) & 0xFu"),
    "forgets the zero point": _mistake("((float)((q >> (4 * i)) & 0xFu) - zero)", "(float)((q >> (4 * i)) & 0xFu)"),
    "no warp reduction (lane 0 writes its own partial)": _mistake(
        "for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, offset);\n", ""),
}
