"""Loaders of the shipped data: shapes, dtypes, class balance, disjoint splits, determinism, integrity errors."""
import hashlib

import numpy as np
import pytest
import torch

from tinyml_lib.data import (CharTokenizer, DataIntegrityError, austen_text, fashion_mnist_loader, load_digits_split,
                             load_fashion_mnist, load_fashion_mnist_uint8, make_moving_clips, make_point_clouds,
                             train_bpe, verified_path)
from tinyml_lib.data import manifest
from tinyml_lib.data.splits import split_indices


def digest(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_fashion_mnist_splits():
    sizes = {s: len(load_fashion_mnist_uint8(s)[1]) for s in ("train", "val", "test")}
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    train, val = load_fashion_mnist_uint8("train")[0], load_fashion_mnist_uint8("val")[0]
    assert not {digest(i) for i in val[:500]} & {digest(i) for i in train}, "train and val share images"
    x, y = load_fashion_mnist("test")
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [1000] * 10
    counts = torch.bincount(load_fashion_mnist("train")[1])
    assert counts.min() > 5200 and counts.max() < 5800  # roughly balanced after the seeded split
    assert abs(load_fashion_mnist("train")[0].mean().item()) < 0.02  # standardised


def test_fashion_mnist_subset_and_loader_are_deterministic():
    a, b = load_fashion_mnist("train", subset=1000, seed=3), load_fashion_mnist("train", subset=1000, seed=3)
    assert torch.equal(a[0], b[0]) and len(a[1]) == 1000
    assert not torch.equal(a[1], load_fashion_mnist("train", subset=1000, seed=4)[1])
    first = [next(iter(fashion_mnist_loader("train", 64, subset=500, seed=1)))[1] for _ in range(2)]
    assert torch.equal(*first)
    with pytest.raises(ValueError, match="subset"):
        load_fashion_mnist("val", subset=10**6)
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation")


def test_digits():
    parts = {s: load_digits_split(s) for s in ("train", "val", "test")}
    assert sum(len(y) for _, y in parts.values()) == 1797
    x, y = parts["train"]
    assert x.shape[1:] == (1, 8, 8) and 0 <= x.min() and x.max() <= 1 and len(torch.unique(y)) == 10
    idx = [set(split_indices(1797, s, seed=1797)) for s in ("train", "val", "test")]
    assert not (idx[0] & idx[1] or idx[0] & idx[2] or idx[1] & idx[2])


def test_austen_text_and_tokenizers():
    train, val, test = (austen_text(s) for s in ("train", "val", "test"))
    assert len(train) > 3_500_000 and 150_000 < len(test) < 250_000
    assert test[-2000:] not in train and val[:2000] not in train
    tok = CharTokenizer()
    assert tok.decode(tok.encode(test[:5000])) == test[:5000] and tok.vocab_size < 100
    with pytest.raises(ValueError, match="not in the Austen alphabet"):
        tok.encode("\u4e2d")
    bpe = train_bpe(4096)
    ids = bpe.encode(test[:2000]).ids
    assert bpe.get_vocab_size() == 4096 and bpe.decode(ids) == test[:2000] and len(ids) < 700


def test_moving_clips():
    clips, labels = make_moving_clips(64, frames=8, size=48, seed=0)
    assert clips.shape == (64, 8, 1, 48, 48) and clips.dtype == torch.float32 and labels.max() < 4
    assert torch.equal(clips, make_moving_clips(64, frames=8, size=48, seed=0)[0])
    # the item really moves in the labelled direction: centre of mass shifts by 2 px per frame
    k = int(torch.nonzero(labels == 0)[0])
    cols = torch.arange(48, dtype=torch.float32)
    com = [(clips[k, t, 0].sum(0) * cols).sum() / clips[k, t, 0].sum() for t in (0, 7)]
    assert abs((com[1] - com[0]).item() - 14) < 0.5
    with pytest.raises(ValueError):
        make_moving_clips(4, frames=16, size=40)


def test_point_clouds():
    pts, labels = make_point_clouds(6, n_points=256, seed=0)
    assert pts.shape == (30, 256, 3) and torch.bincount(labels).tolist() == [6] * 5
    assert torch.equal(pts, make_point_clouds(6, n_points=256, seed=0)[0])
    radii = pts.norm(dim=2)
    assert radii.max() < 3 and radii.min() >= 0


def test_integrity_errors_name_the_file_and_the_fix(tmp_path, monkeypatch):
    source = verified_path("fashion-mnist/t10k-labels-idx1-ubyte.gz")
    monkeypatch.setattr(manifest, "DATA_DIR", tmp_path)
    (tmp_path / "fashion-mnist").mkdir()
    with pytest.raises(DataIntegrityError, match=r"t10k-labels-idx1-ubyte.gz is missing: restore it with `git checkout"):
        verified_path("fashion-mnist/t10k-labels-idx1-ubyte.gz")
    corrupt = tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(source.read_bytes())
    data[100] ^= 0xFF  # flip one byte
    corrupt.write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match="is corrupt"):
        verified_path("fashion-mnist/t10k-labels-idx1-ubyte.gz")


def test_manifest_covers_every_shipped_file():
    shipped = {p.relative_to(manifest.DATA_DIR).as_posix() for p in manifest.DATA_DIR.rglob("*")
               if p.is_file() and p.parent.name in ("fashion-mnist", "austen", "checkpoints", "nas")
               and p.name != "LICENSE" and p.suffix != ".json"}
    assert shipped == set(manifest.load_manifest())
    for path in shipped:
        verified_path(path)
    assert sum(e["bytes"] for e in manifest.load_manifest().values()) < 60 * 2**20
