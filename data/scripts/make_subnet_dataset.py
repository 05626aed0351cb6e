"""Lab 04's (architecture, accuracy) data set: data/nas/subnet_accuracy.csv + subnet_accuracy.json (its record).

    python data/scripts/make_subnet_dataset.py && python data/scripts/make_manifest.py
    python data/scripts/make_subnet_dataset.py --count 20 --checkpoint /tmp/smoke/supernet.pt --out /tmp/nas

Samples `--count` distinct subnets from the supernet's space (every choice independently uniform, seeded), and for
each one recalibrates its BatchNorm statistics on the fixed training images the supernet's record used, measures its
top-1 accuracy on the whole "val" split (5,000 images) and counts its MACs with PyTorch's own FLOP counter
(independent of Lab 01's). Workers are forked processes of one thread each; the CSV does not depend on their number.

The CSV's columns are tinyml_lib.data.nas's (which loads it for the lab).
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import platform
import random
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tinyml_lib.data import load_fashion_mnist  # noqa: E402
from tinyml_lib.data.manifest import sha256_of  # noqa: E402
from tinyml_lib.data.nas import columns, to_row  # noqa: E402
from tinyml_lib.supernet import Supernet, SubnetConfig, SupernetSpace, recalibrate_bn, resize  # noqa: E402
from tinyml_lib.training import accuracy  # noqa: E402
from tinyml_lib.nas.space import sample_subnet  # noqa: E402
from train_supernet import CALIBRATION_IMAGES, CALIBRATION_SEED  # noqa: E402

_STATE: dict = {}  # per worker process: the supernet and the images at each resolution


@torch.no_grad()
def subnet_macs(net: Supernet, config: SubnetConfig) -> int:
    """MACs of one image through subnet `config`, by torch.utils.flop_counter (convolutions and the classifier).

    The learned kernel transforms' small matrix products (weights only, aten.mm) are not inference work and are left
    out; the classifier is the model's only aten.addmm.
    """
    x = torch.zeros(1, net.space.in_channels, config.resolution, config.resolution)
    with FlopCounterMode(display=False) as counter:
        net(x, config)
    flops = counter.get_flop_counts()["Global"]
    return (flops[torch.ops.aten.convolution] + flops[torch.ops.aten.addmm]) // 2


def _init_worker(state: dict, threads: int) -> None:
    torch.set_num_threads(threads)
    _STATE.update(state)


def measure(config: SubnetConfig) -> tuple[SubnetConfig, int, float]:
    """(config, MACs, val accuracy %) with BN recalibrated on the fixed calibration images, in this worker."""
    net, r = _STATE["net"], config.resolution
    recalibrate_bn(net, config, _STATE["calibration"][r])
    net.eval()
    x, y = _STATE["val"][r]
    return config, subnet_macs(net, config), round(accuracy(lambda b: net(b, config), x, y), 2)


def load_net(checkpoint: Path | None) -> tuple[Supernet, str]:
    """The shipped supernet (verified against the manifest), or one from `checkpoint` + its .json record."""
    if checkpoint is None:
        from tinyml_lib.checkpoints import load_supernet
        from tinyml_lib.data.manifest import verified_path
        return load_supernet()[0], sha256_of(verified_path("checkpoints/supernet.pt"))
    record = json.loads(checkpoint.with_suffix(".json").read_text())
    net = Supernet(SupernetSpace(**record["space"]))
    net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return net.eval(), sha256_of(checkpoint)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="distinct random subnets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, help="torch threads per worker (default: 2 / workers)")
    parser.add_argument("--checkpoint", type=Path, help="a supernet.pt other than the shipped one (smoke runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "nas")
    args = parser.parse_args()
    net, checkpoint_sha = load_net(args.checkpoint)
    space, rng, configs = net.space, random.Random(args.seed), []
    while len(configs) < args.count:
        config = sample_subnet(space, rng)
        if config not in configs:
            configs.append(config)
    calibration = load_fashion_mnist("train", CALIBRATION_IMAGES, seed=CALIBRATION_SEED)[0]
    x_val, y_val = load_fashion_mnist("val")
    state = {"net": net, "calibration": {r: resize(calibration, r) for r in space.resolutions},
             "val": {r: (resize(x_val, r), y_val) for r in space.resolutions}}
    threads = args.threads or max(1, 2 // args.workers)
    start = time.perf_counter()
    if args.workers == 1:
        _init_worker(state, threads)
        results = [measure(c) for c in configs]
    else:
        with multiprocessing.get_context("fork").Pool(args.workers, _init_worker, (state, threads)) as pool:
            results = pool.map(measure, configs, chunksize=1)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "subnet_accuracy.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns(space))
        writer.writerows(to_row(space, c, macs, acc) for c, macs, acc in results)
    record = {"count": len(results), "seed": args.seed, "sampling": "each choice independently uniform, distinct",
              "calibration": {"split": "train", "images": CALIBRATION_IMAGES, "seed": CALIBRATION_SEED},
              "evaluation": f"top-1 % on the whole 'val' split ({len(y_val)} images)",
              "supernet_sha256": checkpoint_sha, "seconds": round(seconds, 1),
              "seconds_per_subnet": round(seconds / len(results), 3), "workers": args.workers,
              "threads_per_worker": threads, "torch": torch.__version__, "machine": platform.machine(),
              "command": "python data/scripts/make_subnet_dataset.py"}
    (args.out / "subnet_accuracy.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
