"""On-disk cache of compiled kernels: keyed by a hash of everything that affects the build, written atomically."""
import hashlib
import os
import tempfile
from pathlib import Path


def cache_dir():
    """The kernel cache folder: $TINYML_CACHE, else ~/.cache/tinyml_lib/kernels (created if missing).

    Returns:
        Path.
    """
    root = os.environ.get("TINYML_CACHE") or Path.home() / ".cache" / "tinyml_lib" / "kernels"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_key(*parts):
    """A short hex digest of `parts` (strings or bytes), e.g. (source, defines, mode, header version)."""
    h = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        h.update(len(data).to_bytes(8, "little") + data)  # length prefix: ("ab", "c") != ("a", "bc")
    return h.hexdigest()[:24]


def build_cached(path, build):
    """Return `path`, first running `build(tmp_path)` to create it if it does not exist yet.

    The build writes a temporary file in the same folder that is then renamed over `path`: a rename is atomic, so
    concurrent builders (two notebooks, pytest-xdist workers) never see a half-written file; the last one wins.

    Args:
        path: Path of the cached artifact.
        build: callable(Path) -> None that writes the artifact to the given temporary path.
    Returns:
        Path (== path).
    """
    path = Path(path)
    if path.exists():
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        build(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_if_changed(path, text):
    """Write `text` to `path` atomically unless it already holds exactly that text."""
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
