"""Lab 04's (architecture, MACs, accuracy) table of random subnets of the shipped supernet: data/nas/subnet_accuracy.csv.

Made by data/scripts/make_subnet_dataset.py (its record, data/nas/subnet_accuracy.json, says how); this module holds
the CSV's layout, shared by the script that writes it and the loader that reads it.

CSV columns: resolution, width, d0..d{S-1} (blocks per stage), k{s}_{b} and e{s}_{b} (kernel size and expand ratio
of block b of stage s; 0 where the block is skipped), macs (one 1-image forward pass), accuracy (percent on "val").
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass

import torch

from tinyml_lib.data.manifest import verified_path
from tinyml_lib.supernet import SubnetConfig, SupernetSpace

DATASET = "nas/subnet_accuracy.csv"


def columns(space: SupernetSpace) -> list[str]:
    """The CSV header for `space`."""
    stages = range(len(space.stage_channels))
    blocks = [f"{kind}{s}_{b}" for kind in "ke" for s in stages for b in range(max(space.depths))]
    return ["resolution", "width"] + [f"d{s}" for s in stages] + blocks + ["macs", "accuracy"]


def to_row(space: SupernetSpace, config: SubnetConfig, macs: int, acc: float) -> list:
    """One CSV row: the config's fields, 0 for skipped blocks, then MACs and accuracy."""
    def padded(per_stage: tuple[tuple[int, ...], ...]) -> list[int]:
        return [v for stage in per_stage for v in stage + (0,) * (max(space.depths) - len(stage))]
    return [config.resolution, config.width, *config.depths, *padded(config.kernels), *padded(config.expands),
            macs, acc]


def from_row(space: SupernetSpace, row: dict[str, str]) -> SubnetConfig:
    """The SubnetConfig of a CSV row (a dict from csv.DictReader)."""
    stages = range(len(space.stage_channels))
    depths = tuple(int(row[f"d{s}"]) for s in stages)
    per_block = {kind: tuple(tuple(int(row[f"{kind}{s}_{b}"]) for b in range(depths[s])) for s in stages)
                 for kind in "ke"}
    return SubnetConfig(int(row["resolution"]), float(row["width"]), depths, per_block["k"], per_block["e"])


@dataclass(frozen=True)
class SubnetDataset:
    """The shipped table: configs[i] has macs[i] MACs (PyTorch's FLOP counter) and accuracy[i] % on "val"."""
    configs: list[SubnetConfig]
    macs: torch.Tensor       # (N,) int64
    accuracy: torch.Tensor   # (N,) float32, percent
    record: dict             # how it was made: seed, calibration images, seconds, supernet sha256


def load_subnet_dataset(space: SupernetSpace) -> SubnetDataset:
    """The (architecture, MACs, accuracy) table, verified against the manifest; rows are configs of `space`."""
    path = verified_path(DATASET)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or list(rows[0]) != columns(space):
        raise ValueError(f"{path}: expected the columns {columns(space)}, got {list(rows[0]) if rows else 'no rows'}")
    configs = [from_row(space, row) for row in rows]
    for config in configs:
        space.check(config)
    record = json.loads(path.with_suffix(".json").read_text())
    return SubnetDataset(configs, torch.tensor([int(r["macs"]) for r in rows]),
                         torch.tensor([float(r["accuracy"]) for r in rows]), record)
