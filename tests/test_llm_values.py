"""Value tests of Lab 07's LLM library (tinyml_lib.llm) against references that do not come from the code under test:
PyTorch's scaled_dot_product_attention, NumPy, the published SmolLM2-135M shape, the formulas of the cited papers
(AWQ, SmoothQuant, Wanda, FFSplit, SparseInfer) on small cases worked by hand (the arithmetic is in the comments).
Fast: tiny tensors and a tiny in-process Llama (no downloads).
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from tinyml_lib.lm.calibration import block_linears, capture_inputs
from tinyml_lib.llm.awq import (AWQConfig, awq_search_scale, dequantize_int4_groups, int4_storage_bytes, pack_int4,
                                quantize_int4_groups, quantize_model_int4_, unpack_int4)
from tinyml_lib.llm.ffsplit import ffsplit_weights, neuron_scores, truncated_svd
from tinyml_lib.llm.kv_cache import attend_with_cache, kv_cache_bytes
from tinyml_lib.llm.perplexity import perplexity_windows, token_windows
from tinyml_lib.llm.smoothquant import fold_smoothing_, quantize_model_w8a8_, smooth_model_, smoothing_factors
from tinyml_lib.llm.sparseinfer import count_negative_products, ffn_dense, pack_signs, predict_zero_rows, sparse_ffn
from tinyml_lib.llm.wanda import magnitude_mask, prune_model_, row_mask, wanda_mask


def assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1.3e-6, atol: float = 1e-5) -> None:
    """Same dtype and shape, values within tolerance (torch.testing's first call costs seconds of imports)."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    assert torch.allclose(got, want, rtol=rtol, atol=atol), f"got {got}, want {want}"


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """1 block, hidden 8, 2 query heads and 1 KV head of dim 4, FFN 16, vocabulary 32: built in-process."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=64, initializer_range=0.5)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():                          # non-trivial norm gains, so that folding into them matters
        for layer in model.model.layers:
            layer.input_layernorm.weight.uniform_(0.5, 2.0)
            layer.post_attention_layernorm.weight.uniform_(0.5, 2.0)
    return model


IDS = torch.tensor([[1, 5, 9, 2, 30, 7, 7, 3, 11, 4, 0, 19]])


# ------------------------------------------------------------------------------------------------ perplexity
def test_token_windows_hand_worked():
    assert token_windows(list(range(10)), 3, 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(ValueError):
        token_windows(list(range(8)), 3, 3)


def test_perplexity_of_uniform_model_is_vocabulary_size():
    # every next token has p = 1/7 -> PPL = 7; 2 windows of 5 score 2 * 4 = 8 tokens
    windows = torch.tensor([[0, 1, 2, 3, 4], [6, 5, 4, 3, 2]])
    ppl, count = perplexity_windows(lambda ids: torch.zeros(1, ids.shape[1], 7), windows)
    assert ppl == pytest.approx(7.0)
    assert count == 8


def test_perplexity_hand_worked_alignment_and_pooling():
    # V = 2; the model says "the next token repeats the current one" with p = 3/4 (logits [ln 3, 0] rotated).
    # window [0, 0, 1]: logits[0] (token 0) scores x1 = 0: 3/4; logits[1] (token 0) scores x2 = 1: 1/4
    # window [1, 1, 1]: 3/4 and 3/4.  PPL over all 4 scored tokens = exp((3 ln(4/3) + ln 4) / 4)
    #   = (4/3)^(3/4) * 4^(1/4) = 1.75476...  (per-window PPLs are 2.3094 and 1.3333, their mean 1.8214 is wrong;
    #   scoring x_t with logits[t] would give (4/3) for both windows)
    logits_fn = lambda ids: F.one_hot(ids, 2).float() * math.log(3.0)
    ppl, count = perplexity_windows(logits_fn, torch.tensor([[0, 0, 1], [1, 1, 1]]))
    assert ppl == pytest.approx((4 / 3) ** 0.75 * 4 ** 0.25, rel=1e-6)
    assert count == 4
    ppl1, _ = perplexity_windows(logits_fn, torch.tensor([[0, 0, 1]]))
    assert ppl1 == pytest.approx(math.sqrt(16 / 3), rel=1e-6)


# ------------------------------------------------------------------------------------------------ KV cache
def test_kv_cache_bytes_hand_worked():
    # 2 (K and V) x 2 layers x 2 KV heads x head_dim 16 / 4 = 4 x 10 tokens x batch 3 x 2 bytes = 1920
    cfg = SimpleNamespace(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=16)
    assert kv_cache_bytes(cfg, 10, batch=3, bytes_per_value=2) == 1920
    # defaults: batch 1, fp32 -> 2 * 2 * 2 * 4 * 10 * 4 = 1280; no tokens, no bytes
    assert kv_cache_bytes(cfg, 10) == 1280
    assert kv_cache_bytes(cfg, 0) == 0
    # an explicit head_dim (8, not 16 / 4) wins: 2 * 2 * 2 * 8 * 10 * 4 = 2560
    cfg_hd = SimpleNamespace(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=16,
                             head_dim=8)
    assert kv_cache_bytes(cfg_hd, 10) == 2560


def test_kv_cache_bytes_smollm2_135m_shape():
    # SmolLM2-135M (HF config): 30 layers, 9 query heads, 3 KV heads, hidden 576 -> head_dim 64.
    # fp16, 2048 tokens: 2 * 30 * 3 * 64 * 2048 * 2 = 47,185,920 bytes = 45 MiB (23,040 bytes per token)
    cfg = LlamaConfig(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576,
                      intermediate_size=1536, vocab_size=49152)
    assert kv_cache_bytes(cfg, 2048, bytes_per_value=2) == 47_185_920
    assert kv_cache_bytes(cfg, 1, bytes_per_value=2) == 23_040


def test_attend_with_cache_hand_worked_causal_average():
    # q = 0: every visible score is 0, so each position averages the values it may see (causal):
    # v = [3, 1], [5, 1], [10, 4] -> out [3, 1], [4, 1], [6, 2]
    k = torch.tensor([[1.0, -2.0], [0.5, 3.0], [-1.0, 1.0]]).view(1, 1, 3, 2)
    v = torch.tensor([[3.0, 1.0], [5.0, 1.0], [10.0, 4.0]]).view(1, 1, 3, 2)
    q = torch.zeros(1, 1, 3, 2)
    out, keys, values = attend_with_cache(q, k, v)
    assert_close(out, torch.tensor([[3.0, 1.0], [4.0, 1.0], [6.0, 2.0]]).view(1, 1, 3, 2))
    # with 2 cached positions, the one new query (position 2) sees all three: [6, 2]; the cache grows to 3
    out, keys, values = attend_with_cache(q[:, :, 2:], k[:, :, 2:], v[:, :, 2:], k[:, :, :2], v[:, :, :2])
    assert_close(out, torch.tensor([6.0, 2.0]).view(1, 1, 1, 2))
    assert torch.equal(keys, k) and torch.equal(values, v)
    # 1 cached, 2 new: positions 1 and 2 -> [4, 1], [6, 2]
    out, keys, _ = attend_with_cache(q[:, :, 1:], k[:, :, 1:], v[:, :, 1:], k[:, :, :1], v[:, :, :1])
    assert_close(out, torch.tensor([[4.0, 1.0], [6.0, 2.0]]).view(1, 1, 2, 2))
    assert keys.shape == (1, 1, 3, 2)


def test_attend_with_cache_hand_worked_scaling():
    # D = 4 (sqrt(D) = 2); q = [2 ln 3, 0, 0, 0]; cached k0 = 0, new k1 = e_0: scores 0 and 2 ln 3 / 2 = ln 3
    # -> weights 1/4, 3/4; v0 = 4, v1 = 8 -> 1 + 6 = 7  (without the 1/sqrt(D): weights 1/10, 9/10 -> 7.6)
    q = torch.tensor([2 * math.log(3.0), 0.0, 0.0, 0.0]).view(1, 1, 1, 4)
    k0, k1 = torch.zeros(1, 1, 1, 4), torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 4)
    v0, v1 = torch.full((1, 1, 1, 4), 4.0), torch.full((1, 1, 1, 4), 8.0)
    out, _, _ = attend_with_cache(q, k1, v1, k0, v0)
    assert_close(out, torch.full((1, 1, 1, 4), 7.0))


def test_attend_with_cache_gqa_head_mapping():
    # H = 4 query heads, KVH = 2: heads 0, 1 read KV head 0 and heads 2, 3 read KV head 1 (h // 2).
    # One token: attention returns that token's value -> heads [1, 1, 2, 2]
    v = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, 1, 3).contiguous()
    out, _, _ = attend_with_cache(torch.randn(1, 4, 1, 3), torch.randn(1, 2, 1, 3), v)
    assert_close(out[0, :, 0, 0], torch.tensor([1.0, 1.0, 2.0, 2.0]))


def test_attend_with_cache_matches_torch_sdpa_with_gqa():
    # decoding with a cache of 3 positions == the last 2 rows of full causal attention over 5 positions
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8, generator=g), torch.randn(2, 2, 5, 8, generator=g), torch.randn(2, 2, 5, 8, generator=g)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    full, _, _ = attend_with_cache(q, k, v)
    assert_close(full, want, atol=1e-5)
    out, keys, values = attend_with_cache(q[:, :, 3:], k[:, :, 3:], v[:, :, 3:], k[:, :, :3], v[:, :, :3])
    assert_close(out, want[:, :, 3:], atol=1e-5)
    assert torch.equal(keys, k) and torch.equal(values, v)


# ------------------------------------------------------------------------------------------------ AWQ / int4
def test_quantize_int4_groups_asymmetric_hand_worked():
    w = torch.tensor([[-1.0, 0.3, 1.1, 2.75, -0.375, 0.0, 0.5, 1.5],
                      [-0.1, 0.2, 3.65, 1.0, 0.0, -0.75, 1.125, -0.25]])
    codes, scale, zero = quantize_int4_groups(w, group_size=4)
    # row 0, group 0: s = (2.75 + 1) / 15 = 0.25, z = round(1 / 0.25) = 4; q = round(w / s) + z:
    #   -4 + 4 = 0, round(1.2) + 4 = 5, round(4.4) + 4 = 8, 11 + 4 = 15
    # row 0, group 1: s = 1.875 / 15 = 0.125, z = round(3) = 3: 0, 3, 4 + 3 = 7, 12 + 3 = 15
    # row 1, group 0: s = 3.75 / 15 = 0.25, z = round(0.4) = 0: round(-0.4) = 0, round(0.8) = 1, round(14.6) = 15, 4
    # row 1, group 1: s = 1.875 / 15 = 0.125, z = round(6) = 6: 6, 0, 9 + 6 = 15, -2 + 6 = 4
    assert codes.dtype == torch.uint8 and zero.dtype == torch.uint8
    assert codes.tolist() == [[0, 5, 8, 15, 0, 3, 7, 15], [0, 1, 15, 4, 6, 0, 15, 4]]
    assert scale.tolist() == [[0.25, 0.125], [0.25, 0.125]]
    assert zero.tolist() == [[4, 3], [0, 6]]
    # dequantized: (q - z) * s
    want = torch.tensor([[-1.0, 0.25, 1.0, 2.75, -0.375, 0.0, 0.5, 1.5],
                         [0.0, 0.25, 3.75, 1.0, 0.0, -0.75, 1.125, -0.25]])
    assert_close(dequantize_int4_groups(codes, scale, zero, 4), want)


def test_quantize_int4_groups_symmetric_hand_worked():
    # group 0: s = 0.875 / 7 = 0.125: round(-7) + 8 = 1, round(4) + 8 = 12, round(2.4) + 8 = 10, round(-1.6) + 8 = 6
    # group 1: s = 1.75 / 7 = 0.25: 7 + 8 = 15, 0 + 8 = 8, round(-2.4) + 8 = 6, round(0.4) + 8 = 8
    w = torch.tensor([[-0.875, 0.5, 0.3, -0.2, 1.75, 0.0, -0.6, 0.1]])
    codes, scale, zero = quantize_int4_groups(w, group_size=4, symmetric=True)
    assert codes.tolist() == [[1, 12, 10, 6, 15, 8, 6, 8]]
    assert scale.tolist() == [[0.125, 0.25]]
    assert zero.tolist() == [[8, 8]]


def test_quantize_int4_groups_constant_and_one_signed_groups():
    # Lab 03's range always contains 0. [0.5] * 4: range [0, 0.5], s = 0.5 / 15 = 1 / 30, Z = round(-8 - 0) = -8 ->
    # zero 0, codes round(0.5 * 30) - 8 + 8 = 15: stored exactly. [0] * 4: zero width -> s = 1 (Lab 03's rule),
    # Z = -8, codes = zero = 0. [1, 2.2, 3, 3.75]: range [0, 3.75], s = 0.25, zero 0, codes 4, round(8.8) = 9, 12, 15:
    # within half a step (a range clamped to [min, max] = [1, 3.75] with z = round(-1 / s) = -5 -> 0 would store
    # 3.75 as 2.75).
    w = torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 1.0, 2.2, 3.0, 3.75]])
    codes, scale, zero = quantize_int4_groups(w, group_size=4)
    assert codes.tolist() == [[15, 15, 15, 15, 0, 0, 0, 0, 4, 9, 12, 15]]
    assert_close(scale, torch.tensor([[1 / 30, 1.0, 0.25]]))
    assert zero.tolist() == [[0, 0, 0]]
    assert_close(dequantize_int4_groups(codes, scale, zero, 4),
                 torch.tensor([[0.5] * 4 + [0.0] * 4 + [1.0, 2.25, 3.0, 3.75]]))
    # symmetric: an all-zero group gets s = 1 and codes 8 = its zero; a constant -0.7 group s = 0.1, round(-7) + 8 = 1
    codes, scale, zero = quantize_int4_groups(torch.tensor([[0.0, 0.0, -0.7, -0.7]]), group_size=2, symmetric=True)
    assert codes.tolist() == [[8, 8, 1, 1]] and zero.tolist() == [[8, 8]]
    assert_close(scale, torch.tensor([[1.0, 0.1]]))


@pytest.mark.parametrize("symmetric", [False, True])
def test_quantize_int4_groups_matches_the_unsigned_formula_and_rounds_within_half_a_step(symmetric):
    # groups of real weights hold both signs: there the unsigned textbook formula (s = (max - min) / 15,
    # z = round(-min / s), q = clamp(round(w / s) + z, 0, 15); symmetric s = max|w| / 7, q = round(w / s) + 8) agrees
    w = torch.randn(16, 192, generator=torch.Generator().manual_seed(3)) * torch.linspace(0.1, 3, 192)
    x = w.numpy().astype(np.float64).reshape(16, -1, 64)
    if symmetric:
        s = np.abs(x).max(-1) / 7
        z = np.full_like(s, 8.0)
        q = np.clip(np.round(x / s[..., None]), -8, 7) + 8
    else:
        s = (x.max(-1) - x.min(-1)) / 15
        z = np.round(-x.min(-1) / s)
        q = np.clip(np.round(x / s[..., None]) + z[..., None], 0, 15)
    codes, scale, zero = quantize_int4_groups(w, 64, symmetric)
    got = dequantize_int4_groups(codes, scale, zero, 64)
    assert np.allclose(got.numpy(), ((q - z[..., None]) * s[..., None]).reshape(16, 192), rtol=1e-5, atol=1e-6)
    assert bool(((got - w).abs() <= scale.repeat_interleave(64, 1) / 2 + 1e-6).all())
    assert codes.dtype == torch.uint8 and zero.dtype == torch.uint8 and scale.shape == (16, 3)


def test_quantize_int4_groups_rejects_bad_shapes():
    with pytest.raises(ValueError, match="multiple of group_size=64"):
        quantize_int4_groups(torch.randn(4, 100), 64)
    with pytest.raises(ValueError, match="multiple of group_size=4"):
        quantize_int4_groups(torch.randn(8), 4)
    with pytest.raises(TypeError, match="tensor w"):
        quantize_int4_groups([[0.0] * 4], 4)


def test_pack_unpack_int4_hand_worked():
    # column 2j in the low nibble: [1, 2] -> 0x21 = 33, [3, 4] -> 0x43 = 67, [15, 0] -> 0x0F, [0, 15] -> 0xF0
    codes = torch.tensor([[1, 2, 3, 4], [15, 0, 0, 15]], dtype=torch.uint8)
    packed = pack_int4(codes)
    assert packed.dtype == torch.uint8 and packed.tolist() == [[0x21, 0x43], [0x0F, 0xF0]]
    assert torch.equal(unpack_int4(packed), codes)
    assert unpack_int4(torch.tensor([[0xA5]], dtype=torch.uint8)).tolist() == [[5, 10]]


def test_int4_storage_bytes_hand_worked():
    # (3, 8) codes, groups of 4: 24 codes / 2 = 12 bytes; 6 fp16 scales = 12 bytes; 6 zeros / 2 = 3 bytes -> 27
    codes, scale, zero = quantize_int4_groups(torch.randn(3, 8), group_size=4)
    assert int4_storage_bytes(codes, scale, zero) == 27
    # (1, 12): 6 + 3 * 2 + ceil(3 / 2) = 6 + 6 + 2 = 14
    codes, scale, zero = quantize_int4_groups(torch.randn(1, 12), group_size=4)
    assert int4_storage_bytes(codes, scale, zero) == 14


def test_quantize_model_int4_bytes_of_tiny_llama():
    # block linears (out, in), groups of 8: bytes = out*in/2 + 2 * out*in/8 + ceil(out*in/8 / 2)
    # q (8, 8): 32 + 16 + 4 = 52; k, v (4, 8): 16 + 8 + 2 = 26 each; o (8, 8): 52;
    # gate, up (16, 8): 64 + 32 + 8 = 104 each; down (8, 16): 64 + 32 + 8 = 104 -> total 468
    model = tiny_llama()
    before = {n: m.weight.detach().clone() for n, m in block_linears(model).items()}
    assert quantize_model_int4_(model, AWQConfig(group_size=8)) == 468
    for name, lin in block_linears(model).items():
        # every group is now (q - z) * step with step = (max - min) / 15 of its original values: whole steps
        old, new = before[name].reshape(-1, 8), lin.weight.detach().reshape(-1, 8)
        step = (old.amax(1, keepdim=True) - old.amin(1, keepdim=True)) / 15
        units = new / step
        assert (units - units.round()).abs().max() < 1e-3, name
        assert ((new - old).abs() <= step / 2 + 1e-6).all(), name


def test_quantize_model_int4_with_awq_scales_quantizes_w_times_s():
    # with a scale s per input channel, W is stored as Q(W diag(s)) diag(1/s): W_new * s is on the grid of W * s
    model = tiny_llama()
    linears = block_linears(model)
    scales = {n: torch.linspace(0.5, 3.0, m.in_features) for n, m in linears.items()}
    before = {n: m.weight.detach().clone() for n, m in linears.items()}
    quantize_model_int4_(model, AWQConfig(group_size=8), scales)
    for name, lin in linears.items():
        old = (before[name] * scales[name]).reshape(-1, 8)
        new = (lin.weight.detach() * scales[name]).reshape(-1, 8)
        step = (old.amax(1, keepdim=True) - old.amin(1, keepdim=True)) / 15
        units = new / step
        assert (units - units.round()).abs().max() < 1e-3, name
        assert ((new - old).abs() <= step / 2 + 1e-5).all(), name


def test_awq_search_scale_keeps_s_1_when_w_is_already_on_the_grid():
    # W = [0, 5, 10, 15]: one group, s = 1 (alpha = 0) quantizes it exactly (scale 1, zero 0) -> loss 0, which no
    # other grid point beats; s_X = [1, 4, 1, 4] makes every other alpha change s
    x = torch.tensor([[1.0, 4.0, 1.0, 4.0], [-1.0, -4.0, -1.0, -4.0]])
    s, alpha = awq_search_scale([torch.tensor([[0.0, 5.0, 10.0, 15.0]])], x, AWQConfig(group_size=4))
    assert alpha == 0.0
    assert_close(s, torch.ones(4))


def test_awq_search_scale_finds_the_scale_that_puts_w_on_the_grid():
    # s_X = mean |x| = [1, 16, 1, 16]; grid alpha in {0, 1/2}. alpha = 1/2: s = [1, 4, 1, 4] / sqrt(4 * 1)
    # = [0.5, 2, 0.5, 2]. W1 = [0, 2, 12, 7.5] -> W1 s = [0, 4, 6, 15] and W2 = [30, 0, 6, 0.5] -> W2 s = [15, 0, 3, 1]:
    # both on the 4-bit grid (scale 1, zero 0) -> loss exactly 0.  alpha = 0 (s = 1): W1 has scale 0.8 and
    # 2 -> 1.6, 7.5 -> 7.2 (errors on the big channels) -> loss > 0.  So alpha = 1/2, s = [0.5, 2, 0.5, 2].
    x = torch.tensor([[1.0, 16.0, 1.0, 16.0], [-1.0, -16.0, -1.0, -16.0]])
    weights = [torch.tensor([[0.0, 2.0, 12.0, 7.5]]), torch.tensor([[30.0, 0.0, 6.0, 0.5]])]
    s, alpha = awq_search_scale(weights, x, AWQConfig(group_size=4, n_grid=2))
    assert alpha == 0.5
    assert_close(s, torch.tensor([0.5, 2.0, 0.5, 2.0]))


# ------------------------------------------------------------------------------------------------ SmoothQuant
def test_smoothing_factors_hand_worked_xiao_et_al():
    # s_j = max|X_j|^alpha / max|W_j|^(1 - alpha); max|X| = [16, 1], max|W| = [1, 4]
    x_max, w_max = torch.tensor([16.0, 1.0]), torch.tensor([1.0, 4.0])
    # alpha 0.5: [4 / 1, 1 / 2] = [4, 0.5]
    assert_close(smoothing_factors(x_max, w_max, 0.5), torch.tensor([4.0, 0.5]))
    # alpha 0.75: [16^0.75 / 1, 1 / 4^0.25] = [8, 0.70710678]
    assert_close(smoothing_factors(x_max, w_max, 0.75), torch.tensor([8.0, 0.70710678]))
    # alpha 1: s = max|X| = [16, 1]; alpha 0: s = 1 / max|W| = [1, 0.25]
    assert_close(smoothing_factors(x_max, w_max, 1.0), torch.tensor([16.0, 1.0]))
    assert_close(smoothing_factors(x_max, w_max, 0.0), torch.tensor([1.0, 0.25]))
    # alpha 0.5 balances the two: max|X_j| / s_j = max|W_j| s_j = sqrt(16 * 1) = 4 and sqrt(1 * 4) = 2
    s = smoothing_factors(x_max, w_max, 0.5)
    assert_close(x_max / s, torch.tensor([4.0, 2.0]))
    assert_close(w_max * s, torch.tensor([4.0, 2.0]))
    # a channel that is never active is clamped to 1e-5, not 0: sqrt(1e-5) / 1 = 0.00316228
    assert_close(smoothing_factors(torch.tensor([0.0]), torch.tensor([1.0])), torch.tensor([0.0031622777]))


def test_fold_smoothing_hand_worked():
    s = torch.tensor([4.0, 0.5])
    # a norm producer: [2, 3] / s = [0.5, 6]; consumer columns times s: [[1, 2], [3, 4]] -> [[4, 1], [12, 2]]
    norm, w = torch.tensor([2.0, 3.0]), torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    fold_smoothing_(norm, [w], s)
    assert norm.tolist() == [0.5, 6.0] and w.tolist() == [[4.0, 1.0], [12.0, 2.0]]
    # a linear producer (in = 2 output rows, k = 3): row j divided by s_j
    prev = torch.tensor([[4.0, 8.0, 12.0], [1.0, 1.0, 1.0]])
    fold_smoothing_(prev, [torch.ones(3, 2)], s)
    assert prev.tolist() == [[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]]


def test_fold_smoothing_keeps_the_float_output():
    # (x * g) W^T is unchanged when g -> g / s and W -> W diag(s); and so is (h W_up^T) W_down^T
    g = torch.Generator().manual_seed(0)
    x, gain = torch.randn(5, 3, generator=g), torch.rand(3, generator=g) + 0.5
    w1, w2 = torch.randn(4, 3, generator=g), torch.randn(2, 3, generator=g)
    want = [(x * gain) @ w1.T, (x * gain) @ w2.T]
    s = torch.tensor([3.0, 0.25, 1.5])
    gain2, w1b, w2b = gain.clone(), w1.clone(), w2.clone()
    fold_smoothing_(gain2, [w1b, w2b], s)
    assert_close((x * gain2) @ w1b.T, want[0], atol=1e-5)
    assert_close((x * gain2) @ w2b.T, want[1], atol=1e-5)
    up, down = torch.randn(3, 5, generator=g), torch.randn(4, 3, generator=g)
    h = torch.randn(6, 5, generator=g)                                      # the input of up_proj
    want_down = (h @ up.T) @ down.T
    up2, down2 = up.clone(), down.clone()
    fold_smoothing_(up2, [down2], s)
    assert_close((h @ up2.T) @ down2.T, want_down, atol=1e-4)


def test_smooth_model_keeps_logits_and_balances_the_maxima():
    # Xiao et al., alpha = 0.5: s_j = sqrt(max|X_j| / max|W_j|), so each smoothed input (that of q/k/v, of gate/up
    # and of down) ends with max|X_j / s_j| = sqrt(max|X_j| max|W_j|), max|W_j| over the linears reading it
    model = tiny_llama(1)
    layer = model.model.layers[0]
    a, m = layer.self_attn, layer.mlp
    groups = [(a.q_proj, a.k_proj, a.v_proj), (m.gate_proj, m.up_proj), (m.down_proj,)]
    names = [next(n for n, mod in model.named_modules() if mod is readers[0]) for readers in groups]
    w_max = [torch.stack([r.weight.detach().abs().amax(0) for r in readers]).amax(0) for readers in groups]
    with torch.no_grad():
        want = model(IDS).logits
    inputs = capture_inputs(model, IDS)
    x_max = [inputs[name].abs().amax(0) for name in names]
    smooth_model_(model, inputs)
    with torch.no_grad():
        got = model(IDS).logits
    assert_close(got, want, rtol=1e-4, atol=1e-4)                      # smoothing is exact in float
    after = capture_inputs(model, IDS)
    for name, xm, wm in zip(names, x_max, w_max):
        assert_close(after[name].abs().amax(0), torch.sqrt(xm * wm), rtol=1e-4, atol=1e-6)
        assert not torch.allclose(xm, wm, rtol=1e-2), name              # so the balance is not trivially true


def test_quantize_model_w8a8_weights_and_inputs_on_int8_grids():
    model = tiny_llama(2)
    handles = quantize_model_w8a8_(model)
    assert len(handles) == 7                                         # q, k, v, o, gate, up, down
    seen = {}
    for name, lin in block_linears(model).items():
        w = lin.weight.detach()                                      # per output row: S = max|row| / 127
        units = w / (w.abs().amax(1, keepdim=True) / 127)
        assert (units - units.round()).abs().max() < 1e-3, name
        # a pre-hook registered after the library's sees the input it quantized (per tensor, symmetric)
        lin.register_forward_pre_hook(lambda _m, args, name=name: seen.__setitem__(name, args[0].detach().clone()))
    with torch.no_grad():
        model(IDS)
    for name, x in seen.items():
        units = x / (x.abs().max() / 127)
        assert (units - units.round()).abs().max() < 1e-3, name
    for h in handles:
        h.remove()


# ------------------------------------------------------------------------------------------------ Wanda
def test_wanda_mask_hand_worked_sun_et_al():
    # S = |W| * ||X_j||: x_norm = [4, 1, 0.5, 2]
    # row 0: |W| [1, 2, 3, 4] -> S [4, 2, 1.5, 8] -> drop the 2 lowest (cols 1, 2)
    # row 1: |W| [4, 12, 12, 5] -> S [16, 12, 6, 10] -> drop cols 2, 3
    # (one threshold for the whole matrix would drop 1.5, 2, 4, 6: three weights of row 0)
    w = torch.tensor([[1.0, -2.0, 3.0, -4.0], [4.0, 12.0, -12.0, 5.0]])
    x_norm = torch.tensor([4.0, 1.0, 0.5, 2.0])
    assert wanda_mask(w, x_norm, 0.5).tolist() == [[True, False, False, True], [True, True, False, False]]
    # magnitude pruning of the same W, per row: row 0 keeps |3|, |4|; row 1 keeps 12, 12
    assert magnitude_mask(w, 0.5).tolist() == [[False, False, True, True], [False, True, True, False]]
    # 25%: int(0.25 * 4) = 1 dropped per row: row 0 col 2 (S = 1.5), row 1 col 2 (S = 6)
    assert wanda_mask(w, x_norm, 0.25).tolist() == [[True, True, False, True], [True, True, False, True]]


def test_wanda_mask_2_4_hand_worked():
    # 2:4 along the inputs of each row, x_norm = [1, 1, 0.1, 10]
    # row 0: |W| [1, 2, 3, 0.5] -> S [1, 2, 0.3, 5] -> keep cols 1, 3
    # row 1: |W| [2, 1, 1, 3] -> S [2, 1, 0.1, 30] -> keep cols 0, 3
    w = torch.tensor([[1.0, -2.0, 3.0, 0.5], [2.0, 1.0, -1.0, 3.0]])
    x_norm = torch.tensor([1.0, 1.0, 0.1, 10.0])
    assert wanda_mask(w, x_norm, n_m=(2, 4)).tolist() == [[False, True, False, True], [True, False, False, True]]
    # two blocks per row: second block S = [4, 2, 3, 0.3] -> keep its cols 0, 2
    w8 = torch.tensor([[1.0, -2.0, 3.0, 0.5, 4.0, 1.0, 1.0, 3.0]])
    x8 = torch.tensor([1.0, 1.0, 0.1, 10.0, 1.0, 2.0, 3.0, 0.1])
    assert wanda_mask(w8, x8, n_m=(2, 4)).tolist() == [[False, True, False, True, True, False, True, False]]
    with pytest.raises(ValueError):
        wanda_mask(torch.ones(2, 6), torch.ones(6), n_m=(2, 4))


def test_wanda_mask_n_m_blocks_run_along_each_row():
    # x_norm = [1, 2, 0.5, 4]; W chosen so that S = |W| x_norm is
    #   [5, 1, 2, 8], [6, 7, 1, 2], [9, 3, 4, 1], [2, 3, 8, 7]
    # 2:4 per row keeps the 2 largest of each row; 1:4 the largest; 3:4 drops the smallest.
    # (blocks of 4 rows down a column would keep rows 1, 2 of column 0, not rows 0, 1, 2)
    w = torch.tensor([[5.0, -0.5, 4.0, 2.0], [-6.0, 3.5, 2.0, -0.5], [9.0, 1.5, -8.0, 0.25], [2.0, -1.5, 16.0, 1.75]])
    x_norm = torch.tensor([1.0, 2.0, 0.5, 4.0])
    T, F_ = True, False
    assert wanda_mask(w, x_norm, n_m=(2, 4)).tolist() == [[T, F_, F_, T], [T, T, F_, F_], [T, F_, T, F_], [F_, F_, T, T]]
    assert wanda_mask(w, x_norm, n_m=(1, 4)).tolist() == [[F_, F_, F_, T], [F_, T, F_, F_], [T, F_, F_, F_], [F_, F_, T, F_]]
    assert wanda_mask(w, x_norm, n_m=(3, 4)).tolist() == [[T, F_, T, T], [T, T, F_, T], [T, T, T, F_], [F_, T, T, T]]


def test_row_mask_ties_and_zero_sparsity():
    # equal scores: the leftmost are dropped; sparsity 0 keeps everything
    assert row_mask(torch.ones(1, 4), 0.5).tolist() == [[False, False, True, True]]
    assert row_mask(torch.tensor([[3.0, 1.0, 2.0]]), 0.0).tolist() == [[True, True, True]]
    # int(0.7 * 3) = 2 dropped: the two lowest, 1 and 2
    assert row_mask(torch.tensor([[3.0, 1.0, 2.0]]), 0.7).tolist() == [[True, False, False]]


def test_prune_model_wanda_on_tiny_llama_uses_input_column_norms():
    model = tiny_llama(3)
    inputs = capture_inputs(model, IDS)
    before = {n: m.weight.detach().clone() for n, m in block_linears(model).items()}
    assert prune_model_(model, inputs, 0.5) == pytest.approx(0.5)
    for name, lin in block_linears(model).items():
        w = lin.weight.detach().numpy()
        kept = w != 0
        assert (kept.sum(1) == w.shape[1] // 2).all(), name
        # Sun et al.: S_ij = |W_ij| ||X_j||_2 (norm over the calibration tokens): every kept score >= every dropped one
        x = inputs[name].double().numpy()
        score = np.abs(before[name].double().numpy()) * np.sqrt((x ** 2).sum(0))[None, :]
        for row in range(w.shape[0]):
            assert score[row][kept[row]].min() >= score[row][~kept[row]].max(), (name, row)


# ------------------------------------------------------------------------------------------------ FFSplit
def test_truncated_svd_hand_worked():
    # diag(3, 2, 1): rank 1 -> diag(3, 0, 0), 1 * (3 + 3) = 6 parameters; rank 2 -> diag(3, 2, 0), 12
    w = torch.diag(torch.tensor([3.0, 2.0, 1.0]))
    approx, params = truncated_svd(w, 1)
    assert_close(approx, torch.diag(torch.tensor([3.0, 0.0, 0.0])), atol=1e-6)
    assert params == 6
    approx, params = truncated_svd(w, 2)
    assert_close(approx, torch.diag(torch.tensor([3.0, 2.0, 0.0])), atol=1e-6)
    assert params == 12
    assert truncated_svd(torch.ones(2, 5), 1)[1] == 7


def test_neuron_scores_hand_worked():
    # x rows [1, 0], [0, 1], [1, 1]; w1 rows [1, 1], [1, -1], [-1, 0]; b1 = [0, 0, 0.5]
    # pre-activations: [1, 1, -0.5], [1, -1, 0.5], [2, 0, -0.5] -> relu: [1, 1, 0], [1, 0, 0.5], [2, 0, 0]
    # L2 norms over the 3 inputs: sqrt(1 + 1 + 4) = sqrt 6, 1, 0.5
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    w1 = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 0.0]])
    assert_close(neuron_scores(x, w1, torch.tensor([0.0, 0.0, 0.5])), torch.tensor([math.sqrt(6.0), 1.0, 0.5]))


def test_ffsplit_weights_hand_worked():
    # d_ff = 4, d = 3; scores -> heavy (top 2) = neurons 1 and 3, light = 0 and 2; rank 1
    scores = torch.tensor([0.1, 5.0, 0.2, 3.0])
    w1 = torch.tensor([[3.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 1.0, 0.0], [0.0, -1.0, 1.0]])
    w2 = torch.tensor([[0.0, 1.0, 0.0, 2.0], [2.0, -1.0, 0.0, 0.0], [0.0, 4.0, 0.5, 1.0]])
    w1_new, w2_new, params = ffsplit_weights(w1, w2, scores, n_heavy=2, rank=1)
    # light rows of w1: [[3, 0, 0], [0, 1, 0]] (singular values 3, 1) -> rank 1: [[3, 0, 0], [0, 0, 0]]
    # light columns of w2: [[0, 0], [2, 0], [0, 0.5]] (singular values 2, 0.5) -> rank 1: [[0, 0], [2, 0], [0, 0]]
    want_w1 = torch.tensor([[3.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [0.0, -1.0, 1.0]])
    want_w2 = torch.tensor([[0.0, 1.0, 0.0, 2.0], [2.0, -1.0, 0.0, 0.0], [0.0, 4.0, 0.0, 1.0]])
    assert_close(w1_new, want_w1, atol=1e-6)
    assert_close(w2_new, want_w2, atol=1e-6)
    # 2 * n_heavy * d + rank * (n_light + d) * 2 = 2 * 2 * 3 + 1 * (2 + 3) * 2 = 22
    assert params == 22
    assert torch.equal(w1, torch.tensor([[3.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 1.0, 0.0], [0.0, -1.0, 1.0]]))


# ------------------------------------------------------------------------------------------------ SparseInfer
def test_pack_signs_hand_worked():
    # negative -> bit 1: [1, -1, 0, -2] -> bits 0, 1, 0, 1 (little-endian) = 0b1010 = 10; 33 inputs: 2 words
    assert pack_signs(np.array([1.0, -1.0, 0.0, -2.0])).tolist() == [10]
    x = np.ones(33)
    x[0], x[32] = -1.0, -1.0
    packed = pack_signs(x)
    assert packed.dtype == np.uint32 and packed.tolist() == [1, 1]


def test_count_negative_products_hand_worked_and_numpy():
    # x = [1, 1, -1, 2]; row [1, -1, 1, -1]: products +, -, -, - -> 3; row [-1]*4: -, -, +, - -> 3;
    # row [1]*4: +, +, -, + -> 1
    w = np.array([[1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, -1.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    x = np.array([1.0, 1.0, -1.0, 2.0])
    assert count_negative_products(pack_signs(w), pack_signs(x)).tolist() == [3, 3, 1]
    rng = np.random.default_rng(0)
    w, x = rng.standard_normal((6, 70)), rng.standard_normal(70)       # 3 words, 26 padding bits
    np.testing.assert_array_equal(count_negative_products(pack_signs(w), pack_signs(x)), (w * x < 0).sum(1))


def test_predict_zero_rows_hand_worked():
    # d = 4, n_neg = [3, 2, 1] -> n_pos = [1, 2, 3]
    n_neg = np.array([3, 2, 1])
    assert predict_zero_rows(n_neg, 4).tolist() == [True, False, False]            # 3 > 1, 2 > 2 no, 1 > 3 no
    assert predict_zero_rows(n_neg, 4, alpha=0.5).tolist() == [True, True, False]  # 3 > .5, 2 > 1, 1 > 1.5 no
    assert predict_zero_rows(n_neg, 4, alpha=2.0).tolist() == [True, False, False]  # 3 > 2, 2 > 4 no, 1 > 6 no


def test_ffn_dense_and_sparse_ffn_hand_worked():
    # x = [1, 2]; W1 x + b1 = [1 + 0.5, 2 - 1, -1 - 2 + 0] = [1.5, 1, -3] -> relu [1.5, 1, 0]
    # y = 1.5 * [1, 0] + 1 * [0, 2] + 0 * [5, 5] + [0.1, 0.2] = [1.6, 2.2]
    x = torch.tensor([1.0, 2.0])
    w1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    b1 = torch.tensor([0.5, -1.0, 0.0])
    w2t = torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    b2 = torch.tensor([0.1, 0.2])
    assert_close(ffn_dense(x, w1, b1, w2t, b2), torch.tensor([1.6, 2.2]))
    assert_close(sparse_ffn(x, w1, b1, w2t, b2, torch.tensor([0, 1])), torch.tensor([1.6, 2.2]))   # skips the zero row
    assert_close(sparse_ffn(x, w1, b1, w2t, b2, torch.tensor([0])), torch.tensor([1.6, 0.2]))      # row 1 skipped too
    assert_close(sparse_ffn(x, w1, b1, w2t, b2, torch.tensor([1, 2])), torch.tensor([0.1, 2.2]))
    # only the active rows are read: NaN weights in a skipped row must not reach the output
    w1_nan, w2t_nan = w1.clone(), w2t.clone()
    w1_nan[2], w2t_nan[2] = float("nan"), float("nan")
    assert_close(sparse_ffn(x, w1_nan, b1, w2t_nan, b2, torch.tensor([0, 1])), torch.tensor([1.6, 2.2]))
