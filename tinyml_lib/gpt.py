"""A small character-level GPT with a ReLU feed-forward network, trained on the Austen text.

ReLU (not GELU) makes many FFN activations exactly zero, the activation sparsity that SparseInfer-style predictors
exploit (Lab 07). Pre-norm decoder blocks as in GPT-2 (Radford et al., 2019), learned positions, tied embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class GPTConfig:
    """Model shape: vocabulary, context length, width, depth, heads, FFN width."""
    vocab_size: int = 81
    ctx: int = 128
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512


class Block(nn.Module):
    """x + attn(ln(x)); x + ffn(ln(x)) with ffn = W2 relu(W1 x)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.qkv, self.proj = nn.Linear(cfg.d_model, 3 * cfg.d_model), nn.Linear(cfg.d_model, cfg.d_model)
        self.up, self.down = nn.Linear(cfg.d_model, cfg.d_ff), nn.Linear(cfg.d_ff, cfg.d_model)
        self.n_heads = cfg.n_heads

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)  # (3, B, H, T, Dh)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))

    def ffn_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The ReLU activations of the FFN, (B, T, d_ff): the tensor whose zeros Lab 07 predicts."""
        return F.relu(self.up(self.ln2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln1(x))
        return x + self.down(self.ffn_hidden(x))


class GPT(nn.Module):
    """Decoder-only transformer: ids (B, T) int64 -> logits (B, T, vocab) float32."""

    def __init__(self, cfg: GPTConfig = GPTConfig()):
        super().__init__()
        self.cfg = cfg
        self.tok, self.pos = nn.Embedding(cfg.vocab_size, cfg.d_model), nn.Embedding(cfg.ctx, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)  # small init: the embedding is tied to the output layer
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 2 or ids.shape[1] > self.cfg.ctx:
            raise ValueError(f"ids: expected (batch, T <= {self.cfg.ctx}) int64, got shape {tuple(ids.shape)}")
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.tok.weight.T

    @torch.no_grad()
    def ffn_zero_fraction(self, ids: torch.Tensor) -> list[float]:
        """Per layer, the fraction of FFN activations that are exactly zero on `ids` (B, T)."""
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        fractions = []
        for block in self.blocks:
            fractions.append((block.ffn_hidden(x) == 0).float().mean().item())
            x = block(x)
        return fractions


def batches(data: torch.Tensor, ctx: int, batch_size: int, generator: torch.Generator):
    """Endless random (input, target) windows of `data` (N,) int64: both (batch_size, ctx) int64."""
    while True:
        starts = torch.randint(len(data) - ctx - 1, (batch_size,), generator=generator)
        window = torch.stack([data[s:s + ctx + 1] for s in starts.tolist()])
        yield window[:, :-1], window[:, 1:]


@torch.no_grad()
def evaluate_loss(model: GPT, data: torch.Tensor, ctx: int | None = None) -> float:
    """Mean next-character cross-entropy (nats/char) over consecutive non-overlapping windows of `data`."""
    ctx = ctx or model.cfg.ctx
    n = (len(data) - 1) // ctx
    x, y = data[:n * ctx].view(n, ctx), data[1:n * ctx + 1].view(n, ctx)
    model.eval()
    losses = [F.cross_entropy(model(xb).flatten(0, 1), yb.flatten(), reduction="sum")
              for xb, yb in zip(x.split(64), y.split(64))]
    return float(sum(losses) / y.numel())
