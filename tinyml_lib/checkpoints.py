"""Course checkpoints: trained weights shipped in data/checkpoints/, verified against the manifest on load."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from tinyml_lib.data.manifest import load_manifest, verified_path
from tinyml_lib.models import STUDENT_CONFIG, TEACHER_CONFIG, mobilenetv2_like, vgg_like
from tinyml_lib.training import TrainConfig


@dataclass(frozen=True)
class CheckpointSpec:
    """How a checkpoint's model is built and was trained."""
    build: Callable[[], nn.Module]
    recipe: TrainConfig


CHECKPOINTS = {
    "vgg": CheckpointSpec(vgg_like, TrainConfig(epochs=8)),
    "mobilenetv2": CheckpointSpec(mobilenetv2_like, TrainConfig(epochs=8)),
    "teacher": CheckpointSpec(lambda: vgg_like(TEACHER_CONFIG), TrainConfig(epochs=8)),
    "student": CheckpointSpec(lambda: vgg_like(STUDENT_CONFIG), TrainConfig(epochs=8)),
}


def load_checkpoint(name: str) -> tuple[nn.Module, dict]:
    """The trained model (eval mode) and its training record (recipe, accuracies, seconds).

    Args:
        name: one of CHECKPOINTS ("vgg", "mobilenetv2", "teacher", "student").
    Returns:
        (model, record). Raises DataIntegrityError if the file is missing or corrupt, with the command to rebuild it.
    """
    if name not in CHECKPOINTS:
        raise ValueError(f"name: expected one of {sorted(CHECKPOINTS)}, got {name!r}")
    path = verified_path(f"checkpoints/{name}.pt")
    model = CHECKPOINTS[name].build()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval(), load_manifest()[f"checkpoints/{name}.pt"]["training"]


def load_gpt() -> tuple[nn.Module, dict]:
    """The course's character-level ReLU GPT (eval mode) and its record (val_loss, ffn_zero_fraction, recipe)."""
    from tinyml_lib.gpt import GPT, GPTConfig
    path = verified_path("checkpoints/gpt.pt")
    record = load_manifest()["checkpoints/gpt.pt"]["training"]
    model = GPT(GPTConfig(**record["config"]))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval(), record


def load_supernet() -> tuple[nn.Module, dict]:
    """Lab 04's once-for-all supernet (eval mode) and its record (space, recipe, largest/smallest subnet accuracies).

    Its BatchNorm running statistics are whatever subnet ran last: recalibrate a subnet's before evaluating it
    (tinyml_lib.supernet.recalibrate_bn), as the record's accuracies were.
    """
    from tinyml_lib.supernet import Supernet, SupernetSpace
    path = verified_path("checkpoints/supernet.pt")
    record = load_manifest()["checkpoints/supernet.pt"]["training"]
    model = Supernet(SupernetSpace(**record["space"]))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval(), record
