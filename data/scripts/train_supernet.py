"""Train Lab 04's once-for-all supernet on Fashion-MNIST with the sandwich rule: data/checkpoints/supernet.pt + .json.

    python data/scripts/train_supernet.py && python data/scripts/make_manifest.py
    python data/scripts/train_supernet.py --steps 300 --out /tmp/smoke      # a short smoke run elsewhere

Each step (Yu et al., "BigNAS", ECCV 2020; Cai et al., "Once-for-All", ICLR 2020) runs four subnets on one batch:
the largest learns from the labels (cross-entropy, label smoothing), the smallest and two random subnets learn from
the largest's soft outputs (in-place distillation); every subnet sees the batch resized to its own resolution, the
four gradients are summed and AdamW takes one step (one-cycle learning rate). Seeded and run with 2 threads. The
record holds the recipe, the wall time, and the accuracy of the largest and smallest subnets on "val" and "test"
after recalibrating their BatchNorm statistics on a fixed set of training images.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tinyml_lib.data import fashion_mnist_loader, load_fashion_mnist  # noqa: E402
from tinyml_lib.nas.space import sample_subnet  # noqa: E402  (Lab 04's sampler: one implementation)
from tinyml_lib.supernet import Supernet, SubnetConfig, SupernetSpace, recalibrate_bn, resize  # noqa: E402
from tinyml_lib.training import TrainConfig, accuracy  # noqa: E402

RECIPE = TrainConfig(epochs=4, batch_size=128, lr=3e-3, weight_decay=5e-4, label_smoothing=0.05, seed=0)
RANDOM_SUBNETS = 2       # per step, besides the largest and the smallest
CALIBRATION_IMAGES, CALIBRATION_SEED = 1000, 1  # the training images that re-estimate a subnet's BN statistics


def sandwich_step(net: Supernet, x: torch.Tensor, y: torch.Tensor, configs: list[SubnetConfig],
                  smoothing: float) -> dict[str, float]:
    """Accumulate the gradients of one sandwich step; configs[0] is the largest subnet (the in-place teacher).

    Args:
        x: (B, 1, 28, 28) float32 images.  y: (B,) int64 labels.
    Returns:
        {"teacher": label loss of the largest, "students": mean distillation loss of the others}.
    Math: L_0 = CE_smooth(f_0(x), y);  L_i = -sum_c softmax(f_0(x))_c log softmax(f_i(x))_c, teacher detached.
    """
    logits = net(resize(x, configs[0].resolution), configs[0])
    loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
    loss.backward()
    soft = logits.detach().softmax(1)
    students = 0.0
    for config in configs[1:]:
        kd = -(soft * net(resize(x, config.resolution), config).log_softmax(1)).sum(1).mean()
        kd.backward()
        students += kd.item() / (len(configs) - 1)
    return {"teacher": loss.item(), "students": students}


def train(net: Supernet, recipe: TrainConfig, steps: int | None = None, progress: bool = True) -> dict:
    """Sandwich-rule training of `net` in place for recipe.epochs (or `steps` if given); returns timing and losses."""
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    loader = fashion_mnist_loader("train", recipe.batch_size, seed=recipe.seed)
    total = steps or recipe.epochs * len(loader)
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=total)
    space, done = net.space, 0
    net.train()
    start = time.perf_counter()
    bar = tqdm(total=total, desc="supernet", disable=not progress, mininterval=10)
    while done < total:
        for x, y in loader:
            configs = [space.largest(), space.smallest()] + [sample_subnet(space, rng) for _ in range(RANDOM_SUBNETS)]
            opt.zero_grad(set_to_none=True)
            losses = sandwich_step(net, x, y, configs, recipe.label_smoothing)
            opt.step()
            sched.step()
            done += 1
            bar.update()
            if done == total:
                break
    bar.close()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps": total, "steps_per_second": total / seconds, "final_losses": losses}


def evaluate_subnet(net: Supernet, config: SubnetConfig, calibration: torch.Tensor,
                    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Accuracy (%) of `config` on each split after recalibrating its BN statistics on `calibration` (28x28)."""
    recalibrate_bn(net, config, calibration)
    net.eval()
    return {name: round(accuracy(lambda b: net(resize(b, config.resolution), config), x, y), 2)
            for name, (x, y) in splits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs, help="epochs over the 55k training images")
    parser.add_argument("--steps", type=int, help="train this many steps instead (smoke runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "checkpoints", help="folder for supernet.pt/json")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the shipped record: 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = replace(RECIPE, epochs=args.epochs)
    space = SupernetSpace()
    torch.manual_seed(recipe.seed)
    net = Supernet(space)
    stats = train(net, recipe, args.steps)
    calibration = load_fashion_mnist("train", CALIBRATION_IMAGES, seed=CALIBRATION_SEED)[0]
    splits = {"val": load_fashion_mnist("val"), "test": load_fashion_mnist("test")}
    start = time.perf_counter()
    results = {name: evaluate_subnet(net, config, calibration, splits)
               for name, config in (("largest", space.largest()), ("smallest", space.smallest()))}
    record = {"model": "supernet", "space": asdict(space), "params": sum(p.numel() for p in net.parameters()),
              "recipe": {**asdict(recipe), "steps": stats["steps"], "random_subnets_per_step": RANDOM_SUBNETS,
                         "rule": "sandwich: largest on labels, smallest + random on the largest's soft outputs",
                         "calibration": {"split": "train", "images": CALIBRATION_IMAGES, "seed": CALIBRATION_SEED}},
              "train_seconds": round(stats["seconds"], 1), "steps_per_second": round(stats["steps_per_second"], 3),
              "final_losses": {k: round(v, 4) for k, v in stats["final_losses"].items()},
              "eval_seconds": round(time.perf_counter() - start, 1),
              **{f"{name}_{split}_accuracy": acc for name, accs in results.items() for split, acc in accs.items()},
              "torch": torch.__version__, "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
              "command": "python data/scripts/train_supernet.py"}
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out / "supernet.pt")
    (args.out / "supernet.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
