"""Record what each layer of a model sees in one forward pass (shapes only; used by the metrics lab)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Layers whose outputs are materialised activations. In-place ReLUs, BatchNorm folded at inference, Flatten and
# Dropout produce no new buffer worth counting in the notes' convention.
ACTIVATION_LAYERS = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


@dataclass(frozen=True)
class LayerRecord:
    """One layer call: its dotted name, the module, and input/output shapes without the batch dimension."""
    name: str
    module: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def trace_layers(model: nn.Module, input_shape: tuple[int, ...],
                 types: tuple[type, ...] = ACTIVATION_LAYERS) -> list[LayerRecord]:
    """Run one forward pass on zeros of `input_shape` (with batch dim) and record every call of a layer of `types`.

    Args:
        model: any nn.Module; it is run in eval mode under no_grad and put back in its previous mode, on the device
            of its first parameter (a "meta" model gives shapes without allocating).
        input_shape: (B, C, H, W) or (B, features).
    Returns:
        list of LayerRecord in call order; shapes exclude the batch dimension.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if len(input_shape) < 2 or any(int(d) <= 0 for d in input_shape):
        raise ValueError(f"input_shape: expected (batch, ...) with positive sizes, got {tuple(input_shape)}")
    records, hooks = [], []

    def hook(module, inputs, output, name):
        records.append(LayerRecord(name, module, tuple(inputs[0].shape[1:]), tuple(output.shape[1:])))

    for name, module in model.named_modules():
        if isinstance(module, types):
            hooks.append(module.register_forward_hook(lambda m, i, o, n=name: hook(m, i, o, n)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(*input_shape, device=_device_of(model)))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return records
