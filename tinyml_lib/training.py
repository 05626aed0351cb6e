"""Training and evaluation loops shared by the checkpoint scripts and the labs (fine-tuning after pruning, QAT, KD)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe: AdamW with a one-cycle learning rate, label smoothing, fixed seed."""
    epochs: int = 6
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    seed: int = 0


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> float:
    """Top-1 accuracy in percent of `model` (put in eval mode, then restored) over `loader` of (x, y int64) batches."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    model.train(was_training)
    return 100.0 * correct / total


@torch.no_grad()
def accuracy(model_or_fn, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    """Top-1 accuracy in percent of a model (left in eval mode) or of any function images -> logits, on tensors.

    Args:
        model_or_fn: nn.Module or callable, (B, C, H, W) float32 -> (B, classes) logits.
        x: (N, C, H, W) float32 images.  y: (N,) int64 labels.  batch: images per call.
    """
    if isinstance(model_or_fn, nn.Module):
        model_or_fn.eval()
    hits = sum((model_or_fn(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item() for i in range(0, len(y), batch))
    return 100.0 * hits / len(y)


def train_classifier(model: nn.Module, train: DataLoader, config: TrainConfig = TrainConfig(),
                     progress: bool = True, on_step: Callable[[int], None] | None = None,
                     loss: Callable[..., torch.Tensor] | None = None, params=None) -> dict:
    """Train `model` in place; returns {"seconds", "final_loss", "steps"}.

    Args:
        model: classifier mapping a batch x to logits (B, classes) float32.
        train: DataLoader of (x, y, *extra) with y (B,) int64; extra tensors (e.g. a teacher's logits) go to `loss`.
        config: the recipe (its seed is applied here).
        on_step: called with the number of steps done after every optimiser step (e.g. to record a learning curve;
            it may evaluate the model: train mode is restored after it returns).
        loss: loss(model, x, y, *extra) -> scalar tensor; default cross-entropy of model(x) with the recipe's label
            smoothing (e.g. a distillation loss that also reads a teacher's logits from extra).
        params: the parameters to optimise (default model.parameters(); e.g. a student's and a hint layer's).
    """
    torch.manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters() if params is None else params, lr=config.lr,
                            weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.epochs * len(train))
    cross_entropy = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    loss_fn = loss or (lambda model, x, y, *extra: cross_entropy(model(x), y))
    model.train()
    start, value, step = time.perf_counter(), torch.tensor(float("nan")), 0
    for epoch in range(config.epochs):
        for x, y, *extra in tqdm(train, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False):
            value = loss_fn(model, x, y, *extra)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            if on_step is not None:
                on_step(step := step + 1)
                model.train()
    return {"seconds": time.perf_counter() - start, "final_loss": value.item(), "steps": config.epochs * len(train)}


def learning_curve(model_or_fn, x: torch.Tensor, y: torch.Tensor, every: int) -> tuple[list, Callable[[int], None]]:
    """A learning curve to fill while training: ([(0, accuracy now)], an on_step for train_classifier that appends
    (step, accuracy(model_or_fn, x, y)) every `every` steps).

    Args:
        model_or_fn: what `accuracy` evaluates (the model being trained).  x, y: evaluation images and labels.
        every: steps between two points, >= 1.
    """
    if every < 1:
        raise ValueError(f"every: expected a number of steps >= 1, got {every}")
    curve = [(0, accuracy(model_or_fn, x, y))]

    def on_step(step: int) -> None:
        if step % every == 0:
            curve.append((step, accuracy(model_or_fn, x, y)))

    return curve, on_step
