"""The first process of a graded sandbox: trusted imports once, then the re-check waiting apart, then the kernel.

    python -P launcher.py --recheck-fds R,W --preload torch,numpy -- -f kernel.json --IPKernelApp.exec_lines=...

Started by the grader (autograders/sandbox.py) inside a submission's bubblewrap sandbox, before any student code:

1. it imports the course's checkers and timer and the modules the lab's locked cells import (the costly part of a
   Python start: torch alone takes seconds);
2. it forks the re-check (`serve`), which makes itself non-dumpable (so no other process of the sandbox can trace
   it, read its memory or reach its file descriptors), keeps only fd R (its job) and fd W (its verdicts), and waits;
3. it forks the kernel, which runs ipykernel in-process with those modules already imported, and waits. If the
   kernel ends before the re-check has its job (shut down, out of memory), it exits at once, and the sandbox with it,
   so the grader sees the kernel die as it would without a launcher.

When the notebook has run, the grader writes the re-check job (autograders/recheck.recheck_spec) to R. The re-check
first kills every other process of the sandbox (the kernel and whatever it started), then runs the locked, answer
and test cells (`recheck.run`) and writes one verdict per test to W. So the tests run again in a process that no
student code has run in until its own answer cells, and the imports are paid once for both runs.

What the kernel's code can still do to it: kill it or stop it (the re-check then fails, and the grader runs it again
in a fresh sandbox), and leave files in the sandbox's home and /tmp, which the re-check's cells see.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib
import importlib.util
import json
import os
import runpy
import select
import signal
import sys
from pathlib import Path

PR_SET_DUMPABLE = 4
ALWAYS = ("tinyml_lib.grading", "tinyml_lib.timing", "IPython.core.interactiveshell")


def _set_dumpable(flag: int) -> None:
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, flag, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def _warm_flop_counter() -> None:
    # PyTorch imports its decompositions, dynamo and sympy (~800 modules, 2 s) at the first FlopCounterMode use.
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False):
        torch.nn.Linear(2, 2, device="meta")(torch.zeros(1, 2, device="meta"))


# What a module costs at its first use rather than at its import, paid here once when a locked cell imports it.
WARM_UPS = {"torch.utils.flop_counter": _warm_flop_counter}


def preload(modules: list[str]) -> None:
    """Import `modules` (trusted: the locked cells' imports) and warm those in WARM_UPS; one that fails is left for
    its cell to report."""
    for name in [*ALWAYS, *modules]:
        try:
            importlib.import_module(name)
            if name in WARM_UPS:
                WARM_UPS[name]()
        except Exception:  # noqa: BLE001 -- e.g. an optional GPU package: the locked cell handles it
            pass


def _others() -> list[int]:
    """Live processes of this PID namespace other than its init (1), this process and its parent (the launcher)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, os.getpid(), os.getppid()):
            continue
        try:
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry))
    return found


def _in_sandbox() -> bool:
    """Whether this runs in a PID namespace of bubblewrap's (its init is pid 1)."""
    try:
        return Path(Path("/proc/1/cmdline").read_bytes().split(b"\0")[0].decode()).name == "bwrap"
    except OSError:
        return False


def kill_others(rounds: int = 1000) -> None:
    """SIGKILL every other process of the sandbox until none is left (a process may fork while we scan)."""
    for _ in range(rounds):
        pids = _others()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    raise RuntimeError("processes of the sandbox kept appearing")


def _load_recheck():
    spec = importlib.util.spec_from_file_location("tinyml_recheck", Path(__file__).with_name("recheck.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _close_all_but(keep: tuple[int, ...]) -> None:
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def serve(job_fd: int, verdict_fd: int, started_fd: int, recheck, isolate: bool) -> None:
    """The re-check process: wait for the job on `job_fd`, say so on `started_fd` (to the launcher), kill the rest
    of the sandbox, run the job. Never returns."""
    try:
        _set_dumpable(0)
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(quiet, fd)
        _close_all_but((job_fd, verdict_fd, started_fd))
        with os.fdopen(job_fd, "rb") as source:
            text = source.read()
        job = json.loads(text) if text.strip() else {}
        if job.get("cells"):
            os.write(started_fd, b"1")  # before the kernel is killed: the launcher then waits for this process
            if isolate:
                kill_others()
            with os.fdopen(verdict_fd, "w") as verdicts:
                recheck.run(job, verdicts)
    finally:
        os._exit(0)  # no atexit hook or finaliser of student code runs after the verdicts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recheck-fds", required=True, help="R,W: the job's and the verdicts' file descriptors")
    parser.add_argument("--preload", default="", help="modules to import first, comma-separated")
    parser.add_argument("--isolate", action="store_true",
                        help="kill the sandbox's other processes before the re-check (in bwrap's PID namespace only)")
    parser.add_argument("kernel", nargs=argparse.REMAINDER, help="-- then the ipykernel_launcher arguments")
    args = parser.parse_args(argv)
    job_fd, verdict_fd = (int(fd) for fd in args.recheck_fds.split(","))
    if args.isolate and not _in_sandbox():
        parser.error("--isolate outside a bwrap PID namespace would kill processes of the host")
    preload([m for m in args.preload.split(",") if m])
    recheck = _load_recheck()
    started_r, started_w = os.pipe()
    if os.fork() == 0:
        serve(job_fd, verdict_fd, started_w, recheck, args.isolate)
    for fd in (job_fd, verdict_fd, started_w):
        os.close(fd)
    _set_dumpable(0)  # nor is this process, the re-check's parent, open to the kernel's code
    kernel = os.fork()
    if kernel == 0:
        code = 0
        try:
            os.close(started_r)
            _set_dumpable(1)  # the kernel itself is an ordinary process
            sys.argv = ["ipykernel_launcher", *[a for a in args.kernel if a != "--"]]
            runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os._exit(code)
    status = 0
    while True:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        if pid == kernel:
            status = os.waitstatus_to_exitcode(code)
            if not select.select([started_r], [], [], 0)[0] or not os.read(started_r, 1):
                break  # the kernel ended on its own (shut down, killed, out of memory): so does the sandbox
    sys.exit(max(status, 0))


if __name__ == "__main__":
    main()
