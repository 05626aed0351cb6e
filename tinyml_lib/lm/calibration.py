"""Calibration plumbing for Lab 07: the linears of a Llama's blocks, their inputs on calibration text, and a restore.

Post-training methods (AWQ, SmoothQuant, Wanda) look at each linear layer's *input* activations on a few hundred
tokens of calibration text. `capture_inputs` records them with forward pre-hooks in one forward pass. The methods
then change weights in place, layer by layer (never a second float32 copy of the model: 538 MB for SmolLM2), and
`restore_weights_` copies the original weights back, tensor by tensor, from the cached safetensors file.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

# The linears of one Llama decoder block, grouped by the tensor they read: members of a group share one input.
INPUT_GROUPS = {
    "attn_in": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),  # reads input_layernorm(x)
    "attn_out": ("self_attn.o_proj",),                                        # reads the attention output
    "mlp_in": ("mlp.gate_proj", "mlp.up_proj"),                               # reads post_attention_layernorm(x)
    "mlp_out": ("mlp.down_proj",),                                            # reads silu(gate) * up
}


def block_linears(model) -> dict[str, nn.Linear]:
    """Every linear of every decoder block, keyed by its full name, e.g. 'model.layers.3.mlp.down_proj'."""
    names = {f"model.layers.{i}.{m}" for i in range(len(model.model.layers)) for g in INPUT_GROUPS.values() for m in g}
    return {name: mod for name, mod in model.named_modules() if name in names}


def input_groups(model) -> list[tuple[str, list[str]]]:
    """(key of the shared input, names of the linears that read it), in forward order, e.g. ('layers.0.attn_in', [...])."""
    return [(f"layers.{i}.{key}", [f"model.layers.{i}.{m}" for m in members])
            for i in range(len(model.model.layers)) for key, members in INPUT_GROUPS.items()]


@torch.no_grad()
def capture_inputs(model, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs of every block linear during one forward pass of `ids`.

    Args:
        model: a transformers LlamaForCausalLM.
        ids: (B, T) int64 calibration tokens.
    Returns:
        {linear name: (B*T, in_features) float32}; linears of one group share the same tensor object.
    """
    captured, hooks = {}, []
    linears = block_linears(model)
    for _, members in input_groups(model):
        def hook(_module, args, key=members[0]):
            captured[key] = args[0].reshape(-1, args[0].shape[-1]).float().clone()
        hooks.append(linears[members[0]].register_forward_pre_hook(hook))
    try:
        model(ids)
    finally:
        for h in hooks:
            h.remove()
    return {name: captured[members[0]] for _, members in input_groups(model) for name in members}


@torch.no_grad()
def restore_weights_(model, folder: Path | str | None = None) -> None:
    """Copy every parameter of `model` back from the cached float32 safetensors, one tensor at a time.

    Args:
        model: the LlamaForCausalLM from `load_smollm2`, possibly modified in place.
        folder: the cache folder; None means `smollm2.cache_dir()`.
    """
    from tinyml_lib.lm.smollm2 import cache_dir
    folder = Path(folder) if folder is not None else cache_dir()
    params = dict(model.named_parameters())
    for path in sorted(folder.glob("*.safetensors")):
        _read_safetensors_into(path, params)


def _read_safetensors_into(path: Path, params: dict[str, torch.Tensor]) -> None:
    """Read the float32 tensors of a safetensors file straight into the matching parameters' memory.

    Plain reads into the existing storage: no memory map (a mapped 538 MB file counts toward the process's resident
    memory while it is open) and no temporary copy of a tensor.
    """
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        for key, info in header.items():
            if key not in params:
                continue
            target = params[key].detach()
            if info["dtype"] != "F32" or list(target.shape) != info["shape"] or not target.is_contiguous():
                raise ValueError(f"{path}: {key} is {info['dtype']} {info['shape']}, expected float32 "
                                 f"{list(target.shape)} for a contiguous parameter")
            start, end = info["data_offsets"]
            f.seek(8 + n + start)
            if f.readinto(memoryview(target.numpy()).cast("B")) != end - start:
                raise ValueError(f"{path}: truncated data for {key}")
