"""The shipped data's manifest (data/MANIFEST.json): every file's source, licence, size and sha256, checked on load.

A missing or corrupt file raises DataIntegrityError naming the file and the command that restores it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

DATA_DIR = Path(os.environ.get("TINYML_DATA_DIR") or Path(__file__).resolve().parents[2] / "data")
MANIFEST = DATA_DIR / "MANIFEST.json"


class DataIntegrityError(FileNotFoundError):
    """A shipped file is missing, or its sha256 differs from the manifest."""


@functools.cache
def load_manifest() -> dict[str, dict]:
    """{relative path: entry} from data/MANIFEST.json."""
    if not MANIFEST.is_file():
        raise DataIntegrityError(f"{MANIFEST} is missing: restore it with `git checkout -- data/MANIFEST.json`")
    return {entry["path"]: entry for entry in json.loads(MANIFEST.read_text())["files"]}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.cache
def _verified(path: Path, size: int, mtime_ns: int) -> str:
    return sha256_of(path)  # cached per (size, mtime): a file is hashed once per process unless it changes


def verified_path(relative: str) -> Path:
    """Absolute path of a shipped file after checking it against the manifest.

    Args:
        relative: path below data/, e.g. "fashion-mnist/t10k-labels-idx1-ubyte.gz".
    Returns:
        Path. Raises DataIntegrityError (missing or corrupt, with the command that restores it) or KeyError.
    """
    entry = load_manifest().get(relative)
    if entry is None:
        raise KeyError(f"{relative!r} is not in {MANIFEST}; known: {sorted(load_manifest())}")
    path = DATA_DIR / relative
    fix = entry.get("restore", f"git checkout -- data/{relative}")
    if not path.is_file():
        raise DataIntegrityError(f"data/{relative} is missing: restore it with `{fix}`")
    stat = path.stat()
    actual = _verified(path, stat.st_size, stat.st_mtime_ns)
    if actual != entry["sha256"]:
        raise DataIntegrityError(f"data/{relative} is corrupt (sha256 {actual[:12]}..., manifest "
                                 f"{entry['sha256'][:12]}...): restore it with `{fix}`")
    return path
