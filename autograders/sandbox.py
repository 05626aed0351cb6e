"""Run one submission's notebook in a bubblewrap sandbox and return the executed notebook.

The kernel sees only: the system (/usr and the few files of /etc a program needs) and the Python environment,
read-only; the course library, kernels and
data of the graded lab, read-only, with the answers of that lab and of later labs stubbed (the student bundle, so a
submission cannot import the instructor's solution); its own scratch copy of the submission folder, read-write, as its
working and home folder. It runs as an unprivileged user in new user, PID, IPC, UTS and network namespaces (no network),
under an address-space limit, with a wall-time limit per cell and per notebook. It never sees the gradebook, the other
submissions, the solutions or the tests.

The trusted side (nbclient in this process) talks to the kernel over ZeroMQ unix sockets in a private folder, and
reads results from execute replies only: a grade cell that did not run (kernel killed, notebook time limit) gets an
error output, so it scores zero.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
SANDBOX_UID = 1000
# What of /etc a kernel needs: the dynamic loader's cache, compiler alternatives, time zone, fonts for plots.
ETC = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "timezone", "group", "hosts",
       "nsswitch.conf", "fonts", "mime.types"]
HOME = "/home/student"
COURSE = "/course"


@dataclass(frozen=True)
class Limits:
    """Limits of one sandboxed run. memory_bytes caps the kernel's address space (RLIMIT_AS)."""
    cell_seconds: int = int(os.environ.get("TINYML_CELL_TIMEOUT", "120"))
    notebook_seconds: int = 600
    memory_bytes: int = 6 * 2**30
    threads: int = 1


def sandbox_problem() -> str | None:
    """None if bubblewrap can start a sandbox here, else a sentence saying why not."""
    if not Path(BWRAP).exists():
        return "bubblewrap (bwrap) is not installed: `apt-get install bubblewrap` (the set-up does this as root)"
    probe = subprocess.run([BWRAP, *_namespace_args(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                            "--", "/bin/true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}"
    return None


def _namespace_args() -> list[str]:
    return ["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--disable-userns",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]


def _python_roots() -> list[str]:
    """Folders the kernel's interpreter needs: the environment and the base installation it was made from."""
    roots = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    return sorted(r for r in roots if not r.startswith("/usr"))


def bwrap_argv(scratch: Path, course: Path, ipc: Path, limits: Limits, read_only: dict[str, Path] | None = None) -> list[str]:
    """The bwrap command prefix: the filesystem view, the user and namespaces, the environment, the memory limit."""
    passwd = ipc / "passwd"
    passwd.write_text(f"root:x:0:0::/root:/bin/false\nstudent:x:{SANDBOX_UID}:{SANDBOX_UID}::{HOME}:/bin/false\n")
    # /tmp first: a tmpfs mounted after a bind below /tmp (a checkout in /tmp, its .venv) would hide it.
    argv = [BWRAP, *_namespace_args(), "--tmpfs", "/tmp", "--ro-bind", "/usr", "/usr", "--dir", "/etc",
            "--ro-bind", str(passwd), "/etc/passwd"]
    for name in ETC:  # not the rest of /etc (shadow, keys, the grader's configuration)
        if Path("/etc", name).exists():
            argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for link in ("bin", "lib", "lib64", "sbin"):
        if Path(f"/{link}").is_symlink():
            argv += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        elif Path(f"/{link}").is_dir():
            argv += ["--ro-bind", f"/{link}", f"/{link}"]
    for root in _python_roots():
        argv += ["--ro-bind", root, root]
    argv += ["--proc", "/proc", "--dev", "/dev", "--bind", str(ipc), str(ipc),
             "--ro-bind", str(course), COURSE, "--bind", str(scratch), HOME]
    for target, source in (read_only or {}).items():
        argv += ["--ro-bind", str(source), target]
    env = kernel_env(HOME, COURSE, f"{HOME}/.cache/tinyml_lib", limits)
    argv += ["--clearenv", *[a for k, v in env.items() for a in ("--setenv", k, v)], "--chdir", HOME]
    return argv + ["--", *_rlimits(limits)]


def kernel_env(home: str, course: str, cache: str, limits: Limits) -> dict[str, str]:
    """The kernel's whole environment: nothing of the grader's leaks in."""
    threads = str(limits.threads)
    return {"HOME": home, "USER": "student", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "PYTHONPATH": course, "TINYML_CACHE": cache, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
            "MPLBACKEND": "Agg", "LANG": "C.UTF-8", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def _rlimits(limits: Limits) -> list[str]:
    return ["/usr/bin/prlimit", f"--as={limits.memory_bytes}", "--core=0", "--"]


def unsandboxed_argv(scratch: Path, course: Path, limits: Limits) -> list[str]:
    """The command prefix without a sandbox (instructor's explicit choice): own environment and limits only."""
    env = kernel_env(str(scratch), str(course), os.environ.get("TINYML_CACHE") or str(Path.home() / ".cache" / "tinyml_lib"), limits)
    return ["/usr/bin/env", "-i", *[f"{k}={v}" for k, v in env.items()], *_rlimits(limits)]


class SandboxedKernelManager(AsyncKernelManager):
    """An ipykernel started inside bwrap, reached through unix sockets in a folder shared with the sandbox."""

    sandbox_prefix: list[str] = []

    @property
    def kernel_spec(self):
        # Signals sent from outside do not cross into the sandbox's session: interrupt over the control channel.
        spec = super().kernel_spec
        if spec is not None:
            spec.interrupt_mode = "message"
        return spec

    def format_kernel_cmd(self, extra_arguments=None):
        return [*self.sandbox_prefix, sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file,
                *(extra_arguments or [])]


def _not_run_error(reason: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename="NotExecuted", evalue=reason,
                                  traceback=[f"NotExecuted: {reason}"])


def _is_grade_cell(cell) -> bool:
    return cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("grade", False)


async def _execute(nb, km: SandboxedKernelManager, limits: Limits, cwd: Path) -> tuple[set[int], str | None]:
    """Execute `nb` in place; returns (indices of cells that got a reply, why the run stopped early or None)."""
    replied: set[int] = set()
    client = NotebookClient(nb, km=km, timeout=limits.cell_seconds, allow_errors=True, interrupt_on_timeout=True,
                            startup_timeout=60, record_timing=False,
                            error_on_timeout={"ename": "CellTimeoutError", "evalue": f"cell ran over {limits.cell_seconds} s",
                                              "traceback": [f"CellTimeoutError: cell ran over {limits.cell_seconds} s"]},
                            on_cell_executed=lambda cell, cell_index, execute_reply: replied.add(cell_index))
    try:
        await asyncio.wait_for(client.async_execute(cwd=str(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                               timeout=limits.notebook_seconds)
        return replied, None
    except asyncio.TimeoutError:
        return replied, f"notebook ran over its {limits.notebook_seconds} s limit"
    except DeadKernelError:
        return replied, "the kernel died (killed, out of memory, or exited)"
    except RuntimeError as exc:  # the kernel did not start
        return replied, f"the kernel did not start: {exc}"
    finally:
        if await km.is_alive():
            await km.shutdown_kernel(now=True)


def execute_submission(nb_json: str, files: str | None, course: str, limits: Limits = Limits(),
                       read_only: dict[str, str] | None = None, workdir: str | None = None,
                       sandboxed: bool = True) -> dict:
    """Run one sanitized notebook in a fresh sandbox. Pure: safe to call in a Dask worker.

    Args:
        nb_json: the notebook to run (JSON text), already sanitized (locked cells restored).
        files: folder whose other files (data a student submitted) are copied into the scratch folder, or None.
        course: folder holding tinyml_lib, kernels and data as the sandbox must see them (read-only).
        limits: time, memory and thread limits.
        read_only: extra read-only mounts, sandbox path -> host path (e.g. a model cache).
        workdir: where the scratch and socket folders are made (a temporary folder by default).
        sandboxed: False runs the kernel as the grader, with only its environment and limits (explicit opt-in).
    Returns:
        dict with "notebook" (executed, JSON text), "seconds" (wall time) and "stopped" (None or the reason the run
        stopped early; every grade cell that did not run carries a NotExecuted error).
    """
    nb = nbformat.reads(nb_json, as_version=4)
    with tempfile.TemporaryDirectory(prefix="tg-", dir=workdir) as tmp:
        scratch, ipc = Path(tmp) / "home", Path(tmp) / "s"
        scratch.mkdir()
        ipc.mkdir()
        if files:
            for item in Path(files).iterdir():
                if item.is_file() and item.suffix != ".ipynb" and not item.is_symlink():
                    shutil.copy(item, scratch / item.name)
        os.chmod(scratch, 0o777)
        km = SandboxedKernelManager(transport="ipc", connection_file=str(ipc / "k.json"))
        km.sandbox_prefix = (bwrap_argv(scratch, Path(course), ipc, limits, {k: Path(v) for k, v in (read_only or {}).items()})
                             if sandboxed else unsandboxed_argv(scratch, Path(course), limits))
        start = time.perf_counter()
        replied, stopped = asyncio.run(_execute(nb, km, limits, scratch))
        seconds = time.perf_counter() - start
    for index, cell in enumerate(nb.cells):
        if _is_grade_cell(cell) and index not in replied:
            cell.outputs = [_not_run_error(stopped or "the cell did not run")]
    return {"notebook": nbformat.writes(nb), "seconds": seconds, "stopped": stopped}
