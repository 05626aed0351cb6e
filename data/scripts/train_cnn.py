"""Train a course CNN on Fashion-MNIST and write data/checkpoints/<name>.pt with its training record (<name>.json).

    python data/scripts/train_cnn.py vgg          # also: mobilenetv2, teacher, student
    python data/scripts/make_manifest.py          # then record the new sha256 in the manifest

Seeded and run with 2 threads, so a rerun on the same machine reproduces the weights; the record holds the recipe,
the test accuracy on the official 10k test images, the validation accuracy and the wall time.
"""
from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tinyml_lib.checkpoints import CHECKPOINTS  # noqa: E402
from tinyml_lib.data import fashion_mnist_loader  # noqa: E402
from tinyml_lib.training import evaluate, train_classifier  # noqa: E402


def main(name: str) -> None:
    if name not in CHECKPOINTS:
        raise SystemExit(f"unknown checkpoint {name!r}; choose from {sorted(CHECKPOINTS)}")
    spec = CHECKPOINTS[name]
    torch.set_num_threads(2)
    torch.manual_seed(spec.recipe.seed)
    model = spec.build()
    stats = train_classifier(model, fashion_mnist_loader("train", spec.recipe.batch_size, seed=spec.recipe.seed),
                             spec.recipe)
    record = {"model": name, "params": sum(p.numel() for p in model.parameters()), "recipe": asdict(spec.recipe),
              "train_seconds": round(stats["seconds"], 1), "final_train_loss": round(stats["final_loss"], 4),
              "val_accuracy": round(evaluate(model, fashion_mnist_loader("val", 1000)), 2),
              "test_accuracy": round(evaluate(model, fashion_mnist_loader("test", 1000)), 2),
              "torch": torch.__version__, "machine": f"{platform.machine()}, {torch.get_num_threads()} threads"}
    out = ROOT / "data" / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / f"{name}.pt")
    (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "vgg")
