"""A control group per graded run: memory that counts every process and tmpfs file, a process count, one kill.

RLIMIT_AS caps one process's address space; it does not count a child's memory nor files written to a tmpfs (which
live in RAM). A memory cgroup counts both, a pids cgroup caps how many processes and threads there are, and removing
the group after killing what is in it leaves nothing running. The grading process creates one group below its own,
starts the sandbox inside it (the command prefix joins the group, then execs), and removes it after the run.

Creating a group needs write access to the cgroup hierarchy (root, or a delegated subtree). Where there is none,
`Cgroup.unavailable()` says why, and a run falls back to per-process limits and size-capped tmpfs mounts
(autograders/sandbox.py); the class summary says which of the two was in force.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path in the v1 hierarchy of `controller`, or in the v2 hierarchy if None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (controller and controller in controllers.split(",")):
            return path
    return None


def _v1_parents() -> dict[str, Path] | None:
    """memory and pids folders under which this process may create groups (cgroup v1), or None."""
    parents = {}
    for controller in ("memory", "pids"):
        own = _own_path(controller)
        parent = CGROUP_ROOT / controller / (own or "/").lstrip("/")
        if own is None or not (parent / "cgroup.procs").exists() or not os.access(parent, os.W_OK):
            return None
        parents[controller] = parent
    return parents


def _v2_parent() -> Path | None:
    """A cgroup v2 folder with memory and pids delegated to its children, writable by this process, or None.

    Only the root group may hold processes and delegate controllers at once (the "no internal processes" rule), so
    this is used where the grader runs in the v2 root (a container, a VM) and can enable the controllers there.
    """
    own = _own_path(None)
    parent = CGROUP_ROOT / (own or "/").lstrip("/")
    if own != "/" or not (parent / "cgroup.subtree_control").exists() or not os.access(parent, os.W_OK):
        return None
    try:
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        missing = [c for c in ("memory", "pids") if c not in enabled]
        if missing:
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
    except OSError:
        return None
    return parent


class Cgroup:
    """One group: `prefix()` is the command prefix that puts a command into it; `close()` kills what is left and
    removes it. Use as a context manager."""

    def __init__(self, memory_bytes: int, processes: int, name: str | None = None):
        name = name or f"tinyml-grade-{uuid.uuid4().hex[:12]}"
        self.folders: list[Path] = []
        v1 = _v1_parents()
        if v1 is not None:
            limits = {"memory": {"memory.limit_in_bytes": memory_bytes}, "pids": {"pids.max": processes}}
            for controller, parent in v1.items():
                self._make(parent / name, limits[controller])
        else:
            parent = _v2_parent()
            if parent is None:
                raise OSError(f"no writable cgroup hierarchy: {self.unavailable()}")
            self._make(parent / name, {"memory.max": memory_bytes, "memory.swap.max": 0, "pids.max": processes})

    def _make(self, folder: Path, settings: dict[str, int]) -> None:
        folder.mkdir()
        self.folders.append(folder)
        for key, value in settings.items():
            if (folder / key).exists():
                (folder / key).write_text(str(value))

    @staticmethod
    def unavailable() -> str | None:
        """None if a group can be created here, else a sentence saying why not."""
        if not CGROUP_ROOT.is_dir():
            return "there is no /sys/fs/cgroup"
        if _v1_parents() is not None or _v2_parent() is not None:
            return None
        return "this user cannot create control groups (run grading as root, or in a delegated cgroup subtree)"

    @staticmethod
    def sweep(older_than_s: float = 600) -> list[Path]:
        """Remove the empty groups that a killed grading run left behind (older than `older_than_s`, so that no
        group another run has just made and not yet joined is taken); returns those removed."""
        removed = []
        for folder in CGROUP_ROOT.glob("*/**/tinyml-grade-*"):
            try:
                if time.time() - folder.stat().st_mtime > older_than_s and not (folder / "cgroup.procs").read_text().strip():
                    folder.rmdir()
                    removed.append(folder)
            except OSError:
                pass
        return removed

    def prefix(self) -> list[str]:
        """`sh -c` that writes its own pid into every folder's cgroup.procs, then execs the command after it."""
        joins = " && ".join(f'echo $$ > "${i + 1}"' for i in range(len(self.folders)))
        return ["/bin/sh", "-c", f'{joins} && shift {len(self.folders)} && exec "$@"', "sh",
                *[str(f / "cgroup.procs") for f in self.folders]]

    def pids(self) -> set[int]:
        found = set()
        for folder in self.folders:
            try:
                found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return found

    def peak_memory_bytes(self) -> int | None:
        """Highest memory use of the group so far (v1 max_usage, v2 memory.peak), where the kernel reports it."""
        for folder in self.folders:
            for key in ("memory.max_usage_in_bytes", "memory.peak"):
                if (folder / key).exists():
                    return int((folder / key).read_text().split()[0])
        return None

    def kill(self) -> None:
        """SIGKILL every process in the group until none is left (a fork racing the kill is caught next round)."""
        for folder in self.folders:
            if (folder / "cgroup.kill").exists():
                (folder / "cgroup.kill").write_text("1")
        for _ in range(200):
            left = self.pids()
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def close(self) -> None:
        self.kill()
        for folder in self.folders:
            for _ in range(100):  # a killed process leaves the group when it is reaped: wait for that
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
        self.folders = []

    def __enter__(self) -> "Cgroup":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
