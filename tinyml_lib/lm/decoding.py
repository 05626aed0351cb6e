"""A plain-function forward pass of a Llama model (SmolLM2) with a pluggable attention, for Lab 07's KV cache.

`llama_forward` walks a transformers `LlamaForCausalLM` layer by layer with its own modules (embedding, RMSNorms,
projections, MLP), applies rotary position embeddings (Su et al., 2021) itself and hands the attention to a function
you pass in, so that the attention with a key/value cache is the lab's exercise. `generate_greedy` decodes with or
without a cache using that forward. Only the last position's logits are computed, as a decoder needs.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

# attend(q, k, v, cache_k, cache_v) -> (out, cache_k, cache_v); q (B, H, T, D), k/v (B, KVH, T, D), caches
# (B, KVH, S, D) or None; out (B, H, T, D).
Attend = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def rope_tables(head_dim: int, theta: float, start: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (length, head_dim) float32 for positions start..start+length-1 (Llama's half-split layout)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (D/2,)
    angles = torch.arange(start, start + length, dtype=torch.float32)[:, None] * inv_freq  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, heads, T, D) by the angles of its positions: x*cos + rotate_half(x)*sin."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def attend_full(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache_k=None, cache_v=None):
    """Reference attention without a cache (full recomputation): causal, GQA by repeating KV heads.

    Args:
        q: (B, H, T, D); k, v: (B, KVH, T, D); cache_k, cache_v must be None.
    Returns:
        (out (B, H, T, D), k, v).
    """
    if cache_k is not None or cache_v is not None:
        raise ValueError("attend_full recomputes the whole sequence: expected no cache, got one")
    group = q.shape[1] // k.shape[1]
    out = F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), is_causal=True)
    return out, k, v


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def llama_forward(model, ids: torch.Tensor, attend: Attend, cache: list | None = None) -> torch.Tensor:
    """Logits of the last position of `ids`, continuing the sequence held in `cache`.

    Args:
        model: a transformers LlamaForCausalLM (eval mode).
        ids: (B, T) int64, the new tokens.
        attend: the attention function (see `Attend`); it returns the updated caches.
        cache: None (no cache: `ids` is the whole sequence) or a list with one (cache_k, cache_v) pair per layer,
            each None or (B, KVH, S, D); it is updated in place.
    Returns:
        (B, vocab) float32 logits of the last new position.
    """
    cfg, inner = model.config, model.model
    b, t = ids.shape
    n_heads, n_kv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    d = getattr(cfg, "head_dim", None) or d
    cache = cache if cache is not None else [(None, None)] * len(inner.layers)
    start = 0 if cache[0][0] is None else cache[0][0].shape[2]
    cos, sin = rope_tables(d, _rope_theta(cfg), start, t)
    x = inner.embed_tokens(ids)  # (B, T, C)
    for i, layer in enumerate(inner.layers):
        a, h = layer.self_attn, layer.input_layernorm(x)
        q = apply_rope(a.q_proj(h).view(b, t, n_heads, d).transpose(1, 2), cos, sin)  # (B, H, T, D)
        k = apply_rope(a.k_proj(h).view(b, t, n_kv, d).transpose(1, 2), cos, sin)     # (B, KVH, T, D)
        v = a.v_proj(h).view(b, t, n_kv, d).transpose(1, 2)
        out, ck, cv = attend(q, k, v, *cache[i])
        cache[i] = (ck, cv)
        x = x + a.o_proj(out.transpose(1, 2).reshape(b, t, n_heads * d))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return model.lm_head(inner.norm(x[:, -1]))


@torch.inference_mode()
def generate_greedy(model, prompt: torch.Tensor, n_new: int, attend: Attend, use_cache: bool = True) -> torch.Tensor:
    """Greedy decoding of `n_new` tokens after `prompt` (B, P) int64; returns (B, n_new) int64.

    With `use_cache` the prompt is processed once (prefill) and each later step feeds only the newest token, its
    keys and values appended to the cache; without it every step recomputes the whole sequence from scratch.
    """
    if prompt.ndim != 2 or prompt.shape[1] < 1 or n_new < 1:
        raise ValueError(f"expected prompt (B, P >= 1) and n_new >= 1, got {tuple(prompt.shape)} and {n_new}")
    cache = [(None, None)] * len(model.model.layers) if use_cache else None
    seq, feed, new = prompt, prompt, []
    for _ in range(n_new):
        logits = llama_forward(model, feed, attend, cache if use_cache else None)
        token = logits.argmax(-1, keepdim=True)  # (B, 1)
        new.append(token)
        seq = torch.cat([seq, token], dim=1)
        feed = token if use_cache else seq
    return torch.cat(new, dim=1)
