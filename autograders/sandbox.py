"""Run one submission's notebook in a bubblewrap sandbox, then re-check its tests, and return the graded notebook.

The kernel sees only: the system (/usr and the few files of /etc a program needs) and the Python environment,
read-only; the course library, kernels and data of the graded lab, read-only, with the answers of that lab and of
later labs stubbed (so a submission cannot import the instructor's solution); the other files of its submission
folder, read-only, in a home folder of its own. It runs as an unprivileged user in new user, PID, IPC, UTS and
network namespaces (no network). It never sees the gradebook, the other submissions, the solutions or the tests.

Limits (`Limits`): a wall time per cell and per notebook; a memory cgroup that counts every process and every tmpfs
file, and a process-count cgroup, where the grader can create groups (autograders/cgroups.py), else an address-space
limit per process; size-capped tmpfs mounts for the home folder, /tmp and /dev/shm (/dev itself read-only); a
file-size limit; output capped while it streams (a message over `message_bytes` is refused by ZeroMQ, output past
`output_bytes` is dropped). When a run ends, everything in its group is killed and its folders removed.

Trust: the kernel starts from trusted code (`python -P`: nothing of the working folder on sys.path; the course's
checkers and timer imported before the first cell). A grade cell passes only if the kernel's own execute reply says
it completed (never from the absence of a rendered traceback); a timed-out or interrupted cell fails. Its tests then
run again with only the answer cells of the student (autograders/recheck.py) in a process that the sandbox's trusted
first process forked before any student code ran (autograders/launcher.py), or, where the kernel's code killed that
process, in a fresh sandbox; a cell counts only where both runs pass.
"""
from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import zmq
import zmq.asyncio
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
GRADER = "/grader"       # the re-check runner, read-only
RECHECK = Path(__file__).with_name("recheck.py")
LAUNCHER = Path(__file__).with_name("launcher.py")
# Imported by the kernel before the first cell: the speed checks' clock is captured before any student code runs.
TRUSTED_IMPORTS = "import tinyml_lib.grading, tinyml_lib.timing; del tinyml_lib"


@dataclass(frozen=True)
class Limits:
    """Limits of one graded run (kernel run and re-check each).

    memory_bytes: the cgroup memory limit (every process and tmpfs file), or RLIMIT_AS per process without cgroups.
    processes: the cgroup's pids.max (processes and threads); without cgroups not enforced.
    tmpfs_bytes: size of each of the home folder and /tmp (RAM-backed, counted in memory_bytes); shm_bytes: /dev/shm.
    file_bytes: RLIMIT_FSIZE. output_bytes: output kept per notebook; message_bytes: largest kernel message accepted.
    """
    cell_seconds: int = int(os.environ.get("TINYML_CELL_TIMEOUT", "120"))
    notebook_seconds: int = 600
    memory_bytes: int = 6 * 2**30
    threads: int = 1
    processes: int = 512
    tmpfs_bytes: int = 2**30
    shm_bytes: int = 256 * 2**20
    file_bytes: int = 2**30
    output_bytes: int = 16 * 2**20
    message_bytes: int = 32 * 2**20


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


def bwrap_argv(tmp: Path, course: Path, limits: Limits, read_only: dict[str, Path] | None = None,
               ipc: Path | None = None) -> list[str]:
    """The bwrap command prefix: the filesystem view, the user and namespaces, the environment, the limits.

    Args:
        tmp: a host folder of this run (the passwd file is written there).
        course: folder mounted read-only at /course (tinyml_lib, kernels, data).
        read_only: more read-only mounts, sandbox path -> host path (the submission's files, a model cache).
        ipc: the host folder of the kernel's sockets, mounted read-write at the same path (kernel runs only).
    """
    passwd = tmp / "passwd"
    passwd.write_text(f"root:x:0:0::/root:/bin/false\nstudent:x:{SANDBOX_UID}:{SANDBOX_UID}::{HOME}:/bin/false\n")
    # /tmp first: a tmpfs mounted after a bind below /tmp (a checkout in /tmp, its .venv) would hide it.
    argv = [BWRAP, *_namespace_args(), "--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp",
            "--ro-bind", "/usr", "/usr", "--dir", "/etc", "--ro-bind", str(passwd), "/etc/passwd"]
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
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.shm_bytes), "--tmpfs", "/dev/shm",
             "--remount-ro", "/dev", "--size", str(limits.tmpfs_bytes), "--tmpfs", HOME,
             "--ro-bind", str(course), COURSE]
    if ipc is not None:
        argv += ["--bind", str(ipc), str(ipc)]
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
    """prlimit: no core files, a file-size limit, and the address-space limit (kept with a cgroup as a second bound)."""
    return ["/usr/bin/prlimit", f"--as={limits.memory_bytes}", "--core=0", f"--fsize={limits.file_bytes}", "--"]


def unsandboxed_argv(scratch: Path, course: Path, limits: Limits) -> list[str]:
    """The command prefix without a sandbox (instructor's explicit choice): own environment and limits only."""
    env = kernel_env(str(scratch), str(course), os.environ.get("TINYML_CACHE") or str(Path.home() / ".cache" / "tinyml_lib"), limits)
    return ["/usr/bin/env", "-i", *[f"{k}={v}" for k, v in env.items()], *_rlimits(limits)]


class SandboxedKernelManager(AsyncKernelManager):
    """An ipykernel started inside bwrap from trusted code, reached through unix sockets in a folder shared with the
    sandbox, over sockets that refuse any message larger than `message_bytes`."""

    sandbox_prefix: list[str] = []
    launcher: list[str] = []  # arguments of autograders/launcher.py, which then starts the kernel; [] for none
    message_bytes: int = Limits.message_bytes

    @property
    def kernel_spec(self):
        # Signals sent from outside do not cross into the sandbox's session: interrupt over the control channel.
        spec = super().kernel_spec
        if spec is not None:
            spec.interrupt_mode = "message"
        return spec

    def format_kernel_cmd(self, extra_arguments=None):
        # -P: the working folder (the student's files) is not put on sys.path, so no file there shadows a module.
        start = ([f"{GRADER}/launcher.py", *self.launcher, "--"] if self.launcher else ["-m", "ipykernel_launcher"])
        return [*self.sandbox_prefix, sys.executable, "-P", *start, "-f", self.connection_file,
                f"--IPKernelApp.exec_lines={TRUSTED_IMPORTS}", *(extra_arguments or [])]

    def client(self, **kwargs):
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, self.message_bytes)  # a default for every socket of the client
        return super().client(context=context, **kwargs)


class CappedClient(NotebookClient):
    """nbclient that keeps at most `output_bytes` of output in all and records each cell's execute reply."""

    def __init__(self, nb, output_bytes: int, **kwargs):
        super().__init__(nb, on_cell_executed=self._replied, **kwargs)
        self.output_left, self.cut, self.replies, self.timed_out = output_bytes, set(), {}, []

    def _replied(self, cell, cell_index, execute_reply):
        content = execute_reply.get("content", {}) if isinstance(execute_reply, dict) else {}
        self.replies[cell_index] = (content.get("status") == "ok", str(content.get("ename") or "Error"),
                                    str(content.get("evalue") or "")[:500])
        if content.get("ename") == "CellTimeoutError":
            self.timed_out.append(cell_index)

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        if size > self.output_left:
            self.output_left = 0
            if cell_index not in self.cut:
                self.cut.add(cell_index)
                outs.append(nbformat.v4.new_output("stream", name="stdout", text="[output over the grader's limit dropped]\n"))
            return None
        self.output_left -= size
        return super().output(outs, msg, display_id, cell_index)


def _error(ename: str, evalue: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _is_grade_cell(cell) -> bool:
    return cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("grade", False)


async def _execute(nb, km: SandboxedKernelManager, limits: Limits, cwd: str, pass_fds: tuple[int, ...] = ()
                   ) -> tuple[dict, str | None]:
    """Execute `nb` in place, leaving the kernel's sandbox up; returns (cell index -> (reply ok, ename, evalue), what
    stopped or cut the run, or None). `pass_fds` go to the sandbox's first process (the launcher's pipes)."""
    timeout_error = {"ename": "CellTimeoutError", "evalue": f"cell ran over {limits.cell_seconds} s",
                     "traceback": [f"CellTimeoutError: cell ran over {limits.cell_seconds} s"]}
    client = CappedClient(nb, limits.output_bytes, km=km, timeout=limits.cell_seconds, allow_errors=True,
                          interrupt_on_timeout=True, startup_timeout=60, record_timing=False,
                          error_on_timeout=timeout_error)
    stopped = None
    try:
        await asyncio.wait_for(client.async_execute(cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                    pass_fds=pass_fds), timeout=limits.notebook_seconds)
    except asyncio.TimeoutError:
        stopped = f"notebook ran over its {limits.notebook_seconds} s limit"
    except DeadKernelError:
        stopped = "the kernel died (killed, out of memory, or exited)"
    except Exception as exc:  # noqa: BLE001 -- a kernel that did not start, or broke the messaging protocol
        stopped = f"the run stopped: {type(exc).__name__}: {str(exc)[:200]}"
    cut = [f"{len(client.timed_out)} cells stopped at the {limits.cell_seconds} s limit"] if client.timed_out else []
    cut += ["output over the limit dropped"] if client.cut else []
    return client.replies, "; ".join(filter(None, [stopped, *cut])) or None


async def _shutdown(km: SandboxedKernelManager) -> None:
    try:
        if await km.is_alive():
            await km.shutdown_kernel(now=True)
    except Exception:  # noqa: BLE001 -- the run's cgroup kills what is left
        pass


Verdicts = dict[str, tuple[bool, str]]


def _recheck(spec: dict, command: list[str], cwd: str, limits: Limits) -> tuple[Verdicts, str | None]:
    """Run the re-check job `spec` with `command` (a prefix, python, the runner) in `cwd`: a fresh process in a fresh
    sandbox. Returns (grade_id -> (ok, message), why it stopped early or None); see `_exchange`."""
    proc = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        verdicts, stopped, _ = _exchange(spec, proc.stdin, proc.stdout, limits)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _kill(proc)
    return verdicts, stopped


def _exchange(spec: dict, sink, source, limits: Limits) -> tuple[Verdicts, str | None, bool]:
    """Send the job `spec` to a re-check runner (binary files: `sink` its input, closed here; `source` its verdicts).

    A test cell has `cell_seconds` for itself and for each cell since the previous test; the whole re-check has
    `notebook_seconds`. On either limit the tests without a verdict fail (the caller kills the runner).
    Returns (grade_id -> (ok, message), why it stopped early or None, whether the runner was gone before its first
    line).
    """
    lines: queue.Queue = queue.Queue()

    def read():  # this thread closes `source` at its end: closed under a blocked read, its fd could be reused
        try:
            for line in iter(lambda: source.readline(65536), b""):
                lines.put(line)
        finally:
            lines.put(None)
            source.close()

    threading.Thread(target=read, daemon=True).start()
    try:
        sink.write(json.dumps(spec).encode())
        sink.close()
    except (BrokenPipeError, OSError):
        pass
    verdicts, stopped, since, gone = {}, None, 0, False
    end = time.monotonic() + limits.notebook_seconds
    expected = [c["id"] for c in spec["cells"] if c["kind"] == "test"]
    budgets = []
    for cell in spec["cells"]:
        since += 1
        if cell["kind"] == "test":
            budgets.append(since * limits.cell_seconds)
            since = 0
    for gid, budget in zip(expected, budgets):
        try:
            line = lines.get(timeout=max(0.0, min(budget, end - time.monotonic())))
        except queue.Empty:
            stopped = f"the re-check ran over its time limit before test {gid}"
            break
        gone = line is None and not verdicts
        try:
            got = json.loads(line) if line is not None else None
        except ValueError:
            got = None
        if not isinstance(got, dict) or got.get("id") != gid:
            stopped = f"the re-check stopped before test {gid}"
            break
        verdicts[gid] = (got.get("ok") is True, str(got.get("error") or "")[:500])
    return verdicts, stopped, gone


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()


def settle_grades(nb, replies: dict, rechecked: dict, recheck_stopped: str | None, stopped: str | None) -> list[str]:
    """Set each grade cell's outputs to its verdict, in place; returns the ids that failed only in the re-check.

    A grade cell passes if its execute reply was ok and, if it was in the re-check (`rechecked` holds every id that
    was, with None where the re-check stopped before giving a verdict), the re-check passed it. A
    passing cell keeps its outputs minus errors, with a result shown as display (so no printed number reads as
    partial credit) and stderr as stdout; a failing cell keeps its outputs and ends with one error saying why.
    """
    only_recheck = []
    for index, cell in enumerate(nb.cells):
        if not _is_grade_cell(cell):
            continue
        gid = cell.metadata.nbgrader.get("grade_id")
        ok, ename, evalue = replies.get(index, (False, "NotExecuted", stopped or "the cell did not run"))
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        kept = []
        for out in cell.get("outputs", []):
            if out.output_type == "execute_result":
                out = nbformat.v4.new_output("display_data", data=out.get("data", {}), metadata=out.get("metadata", {}))
            elif out.output_type == "stream" and out.get("name") == "stderr":
                out = nbformat.v4.new_output("stream", name="stdout", text=out.get("text", ""))
            if out.output_type != "error":
                kept.append(out)
        if not ok:  # the kernel's own error output if it sent one (a timeout or a swallowed interrupt sends none)
            cell.outputs = kept + (errors[-1:] or [_error(ename, evalue)])
        elif gid in rechecked and not (rechecked[gid] or (False,))[0]:
            why = rechecked[gid][1] if rechecked[gid] else (recheck_stopped or "the re-check gave no verdict")
            cell.outputs = kept + [_error("RecheckFailed", "passed in the notebook, failed when the tests ran again "
                                          f"with only your answer cells: {why}")]
            only_recheck.append(gid)
        else:
            cell.outputs = kept
    return only_recheck


def _remove(path: Path) -> str | None:
    """Remove a folder however deep or large it is, within a minute; None, or why it could not."""
    try:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], timeout=60, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"could not remove {path} within 60 s"
    return f"could not remove {path}" if path.exists() else None


@contextmanager
def _run_limits(limits: Limits, sandboxed: bool):
    """A cgroup for one run where one can be made (yields it, or None), killed and removed on exit."""
    from autograders.cgroups import Cgroup
    if not sandboxed or Cgroup.unavailable() is not None:
        yield None
        return
    with Cgroup(limits.memory_bytes, limits.processes) as group:
        yield group


def _command(tmp: Path, course: str, limits: Limits, mounts: dict[str, str], sandboxed: bool, group,
             **bwrap) -> list[str]:
    """The command prefix of one run: join the cgroup (if any), then the sandbox (or the unsandboxed environment)."""
    inner = (bwrap_argv(tmp, Path(course), limits, {k: Path(v) for k, v in mounts.items()}, **bwrap) if sandboxed
             else unsandboxed_argv(tmp / "home", Path(course), limits))
    return (group.prefix() if group else []) + inner


class _LauncherPipes:
    """The launcher's two pipes: the re-check job (grader -> sandbox) and its verdicts (sandbox -> grader)."""

    def __init__(self):
        self.job_r, self.job_w = os.pipe()
        self.verdict_r, self.verdict_w = os.pipe()
        self.open = {self.job_r, self.job_w, self.verdict_r, self.verdict_w}

    @property
    def child_ends(self) -> tuple[int, int]:
        return self.job_r, self.verdict_w

    def take(self, fd: int, mode: str):
        """A file object owning `fd` (no longer closed here)."""
        self.open.discard(fd)
        return os.fdopen(fd, mode)

    def close(self, *fds: int) -> None:
        for fd in fds or tuple(self.open):
            if fd in self.open:
                self.open.discard(fd)
                os.close(fd)


def _has_tests(job: dict) -> bool:
    return any(c["kind"] == "test" for c in job["cells"])


def _job(recheck: dict | None, nb, replies: dict) -> dict:
    """The re-check job of a run: its tests that passed in the notebook (the others fail anyway)."""
    passed = {c.metadata.nbgrader.get("grade_id") for i, c in enumerate(nb.cells)
              if _is_grade_cell(c) and replies.get(i, (False,))[0]}
    return dict(recheck or {}, cells=[c for c in (recheck or {}).get("cells", [])
                                      if c["kind"] != "test" or c["id"] in passed])


async def _run_and_recheck(nb, km: SandboxedKernelManager, limits: Limits, cwd: str, recheck: dict | None,
                           pipes: _LauncherPipes | None, result: dict) -> tuple:
    """The kernel run, then (with `pipes`) the re-check through the launcher while the sandbox is still up.

    Sets result["seconds"] and result["recheck_seconds"]. Returns (replies, what stopped the run, the re-check job,
    its verdicts or None where it did not run or its process was gone before answering, what stopped it).
    """
    verdicts, recheck_stopped = None, None
    try:
        start = time.perf_counter()
        replies, stopped = await _execute(nb, km, limits, cwd, pipes.child_ends if pipes else ())
        result["seconds"] = time.perf_counter() - start
        job = _job(recheck, nb, replies)
        if pipes:
            pipes.close(*pipes.child_ends)
            if _has_tests(job):
                start = time.perf_counter()
                verdicts, recheck_stopped, gone = await asyncio.to_thread(
                    _exchange, job, pipes.take(pipes.job_w, "wb"), pipes.take(pipes.verdict_r, "rb"), limits)
                result["recheck_seconds"] = time.perf_counter() - start
                verdicts, recheck_stopped = (None, None) if gone else (verdicts, recheck_stopped)
    finally:
        if pipes:
            pipes.close()  # an unsent job: the launcher's re-check reads end-of-file and exits
        await _shutdown(km)
    return replies, stopped, job, verdicts, recheck_stopped


def execute_submission(nb_json: str, files: dict[str, str] | None, course: str, limits: Limits = Limits(),
                       read_only: dict[str, str] | None = None, workdir: str | None = None,
                       sandboxed: bool = True, recheck: dict | None = None) -> dict:
    """Run one sanitized notebook in a fresh sandbox, then re-check its tests. Pure: safe to call in a Dask worker.

    Args:
        nb_json: the notebook to run (JSON text), already sanitized (locked cells restored).
        files: the submission's other files, name -> host path, mounted read-only in the home folder.
        course: folder holding tinyml_lib, kernels and data as the sandbox must see them (read-only).
        limits: time, memory, process, file and output limits.
        read_only: extra read-only mounts, sandbox path -> host path (e.g. a model cache).
        workdir: where this run's host folder is made (a temporary folder by default); removed after.
        sandboxed: False runs the kernel as the grader, with only its environment and limits (explicit opt-in).
        recheck: the re-check job (autograders/recheck.recheck_spec), or None for none. Its tests that failed in
            the notebook are not run again: they fail anyway.
    Returns:
        dict with "notebook" (graded, JSON text: the grade cells' outputs carry the verdicts), "seconds" (kernel run),
        "recheck_seconds", "stopped" (what stopped or cut the run or the re-check, or None), "recheck_failed" (ids
        that passed in the notebook only), "cgroup" (whether a cgroup held the limits), "peak_memory_bytes",
        "recheck_fresh" (whether the re-check ran in a fresh sandbox rather than in the launcher's process).
    """
    nb = nbformat.reads(nb_json, as_version=4)
    tmp = Path(tempfile.mkdtemp(prefix="tg-", dir=workdir))
    notes, result = [], {"seconds": 0.0, "recheck_seconds": 0.0, "recheck_failed": [], "peak_memory_bytes": None,
                         "recheck_fresh": False}
    try:
        os.chmod(tmp, 0o755)
        (tmp / "s").mkdir()
        mounts = {**(read_only or {}), **{f"{HOME}/{name}": path for name, path in (files or {}).items()}}
        if not sandboxed:  # the unsandboxed kernel works in a host folder with copies of the files
            (tmp / "home").mkdir()
            for name, path in (files or {}).items():
                shutil.copyfile(path, tmp / "home" / name)
        cwd = str(tmp if sandboxed else tmp / "home")
        with _run_limits(limits, sandboxed) as group:
            result["cgroup"] = group is not None
            km = SandboxedKernelManager(transport="ipc", connection_file=str(tmp / "s" / "k.json"))
            if sandboxed:  # the launcher and the re-check runner, read-only
                mounts.update({f"{GRADER}/recheck.py": str(RECHECK), f"{GRADER}/launcher.py": str(LAUNCHER)})
            km.sandbox_prefix = _command(tmp, course, limits, mounts, sandboxed, group, ipc=tmp / "s")
            km.message_bytes = limits.message_bytes
            pipes = _LauncherPipes() if sandboxed else None
            if pipes:
                km.launcher = ["--recheck-fds", f"{pipes.job_r},{pipes.verdict_w}", "--isolate",
                               "--preload", ",".join((recheck or {}).get("preload", []))]
            replies, stopped, job, verdicts, recheck_stopped = asyncio.run(
                _run_and_recheck(nb, km, limits, cwd, recheck, pipes, result))
            if group:
                group.kill()
            if verdicts is None and _has_tests(job):
                # No launcher, or its re-check was gone before it answered: a fresh process in a fresh sandbox.
                runner = [sys.executable, "-P", f"{GRADER}/recheck.py" if sandboxed else str(RECHECK)]
                command = _command(tmp, course, limits, mounts, sandboxed, group) + runner
                start = time.perf_counter()
                verdicts, recheck_stopped = _recheck(job, command, cwd, limits)
                result["recheck_seconds"] += time.perf_counter() - start
                result["recheck_fresh"] = True
            rechecked = dict.fromkeys(c["id"] for c in job["cells"] if c["kind"] == "test")
            rechecked.update(verdicts or {})
            if group:
                result["peak_memory_bytes"] = group.peak_memory_bytes()
        notes += [stopped, recheck_stopped]
        result["recheck_failed"] = settle_grades(nb, replies, rechecked, recheck_stopped, stopped)
    finally:
        notes.append(_remove(tmp))
    result.update(notebook=nbformat.writes(nb), stopped="; ".join(n for n in notes if n) or None)
    return result
