"""tinyml_lib.lm.decoding and tinyml_lib.lm.calibration on a tiny seeded Llama (no download, no SmolLM2 needed)."""
import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tinyml_lib.lm.calibration import block_linears, capture_inputs, input_groups, restore_weights_
from tinyml_lib.lm.decoding import attend_full, generate_greedy, llama_forward


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=6,
                      num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(cfg).eval().requires_grad_(False)


def cached_attend(q, k, v, cache_k=None, cache_v=None):
    # A plain cached attention for the tests: concatenate, expand KV heads, causal mask with the cache offset.
    if cache_k is not None:
        k, v = torch.cat([cache_k, k], 2), torch.cat([cache_v, v], 2)
    g = q.shape[1] // k.shape[1]
    s = q @ k.repeat_interleave(g, 1).transpose(-1, -2) / q.shape[-1] ** 0.5
    t, n = q.shape[2], k.shape[2]
    s = s.masked_fill(~torch.ones(t, n, dtype=torch.bool).tril(n - t), float("-inf"))
    return s.softmax(-1) @ v.repeat_interleave(g, 1), k, v


def test_forward_matches_transformers(tiny):
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = tiny(ids).logits[:, -1]
        torch.testing.assert_close(llama_forward(tiny, ids, attend_full), want, rtol=1e-5, atol=1e-5)
        cache = [(None, None)] * 2
        llama_forward(tiny, ids[:, :5], cached_attend, cache)
        torch.testing.assert_close(llama_forward(tiny, ids[:, 5:], cached_attend, cache), want, rtol=1e-5, atol=1e-5)
    assert cache[0][0].shape == (2, 2, 9, 8)


def test_generate_with_and_without_cache(tiny):
    prompt = torch.randint(0, 64, (1, 4), generator=torch.Generator().manual_seed(2))
    a = generate_greedy(tiny, prompt, 12, cached_attend, use_cache=True)
    b = generate_greedy(tiny, prompt, 12, attend_full, use_cache=False)
    assert a.shape == (1, 12) and torch.equal(a, b)
    with pytest.raises(ValueError, match="n_new"):
        generate_greedy(tiny, prompt, 0, attend_full)
    with pytest.raises(ValueError, match="no cache"):
        attend_full(*(torch.zeros(1, 2, 1, 4) for _ in range(3)), torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))


def test_capture_inputs_groups_and_shapes(tiny):
    linears = block_linears(tiny)
    assert len(linears) == 7 * 2 and len(input_groups(tiny)) == 4 * 2
    ids = torch.randint(0, 64, (1, 10))
    inputs = capture_inputs(tiny, ids)
    assert set(inputs) == set(linears)
    q, k = inputs["model.layers.1.self_attn.q_proj"], inputs["model.layers.1.self_attn.k_proj"]
    assert q is k and q.shape == (10, 48)
    assert inputs["model.layers.0.mlp.down_proj"].shape == (10, 96)


def test_restore_weights_from_safetensors(tiny, tmp_path):
    tiny.save_pretrained(tmp_path)
    before = {n: p.clone() for n, p in tiny.named_parameters()}
    with torch.no_grad():
        for p in tiny.parameters():
            p.mul_(0.5)
    restore_weights_(tiny, tmp_path)
    for n, p in tiny.named_parameters():
        torch.testing.assert_close(p, before[n], rtol=0, atol=0)


def test_capture_inputs_records_what_the_linears_read_after_the_norm(tiny):
    # A fresh RMSNorm has unit weights, so the rows that q_proj and gate_proj read have mean square m / (m + eps),
    # within 0.3% of 1 here (m >= 0.02^2, eps = 1e-6); the residual stream before the norm has m near 0.0004.
    inputs = capture_inputs(tiny, torch.randint(0, 64, (2, 7)))
    for layer in range(2):
        for name in ("self_attn.q_proj", "mlp.gate_proj"):
            rows = inputs[f"model.layers.{layer}.{name}"]
            torch.testing.assert_close(rows.pow(2).mean(1), torch.ones(14), atol=5e-3, rtol=0)


def test_perplexity_windows_predicts_each_token_from_the_logits_before_it():
    # logits_fn: 2 x the running count of each token (position t sees ids[:t + 1]); token t is scored with the
    # logits at t - 1, i.e. from the counts of window[:t].
    from tinyml_lib.llm.perplexity import perplexity_windows
    windows = torch.tensor([[1, 2, 1, 1, 3], [0, 0, 4, 0, 2]])
    expected = 0.0
    for window in windows.tolist():
        for t in range(1, len(window)):
            counts = torch.bincount(torch.tensor(window[:t]), minlength=5).float()
            expected -= float(torch.log_softmax(2.0 * counts, 0)[window[t]])
    ppl, scored = perplexity_windows(lambda ids: 2.0 * torch.nn.functional.one_hot(ids, 5).float().cumsum(1), windows)
    assert scored == 8 and ppl == pytest.approx(math.exp(expected / 8), rel=1e-6)


def test_generate_greedy_is_the_argmax_loop_and_down_proj_reads_the_gated_product(tiny):
    prompt = torch.randint(0, 64, (1, 4), generator=torch.Generator().manual_seed(3))
    seq = prompt
    with torch.no_grad():
        for _ in range(12):   # the plain loop: the whole sequence each step, the last position's argmax appended
            seq = torch.cat([seq, tiny(seq).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(generate_greedy(tiny, prompt, 12, cached_attend, use_cache=True), seq[:, 4:])
    inputs = capture_inputs(tiny, torch.randint(0, 64, (1, 6)))
    mlp, x = tiny.model.layers[0].mlp, inputs["model.layers.0.mlp.gate_proj"]
    torch.testing.assert_close(inputs["model.layers.0.mlp.down_proj"],
                               torch.nn.functional.silu(mlp.gate_proj(x)) * mlp.up_proj(x), rtol=1e-5, atol=1e-6)
