"""Run a notebook section in a fork of the kernel that runs the notebook, and report each cell's grade-relevant outputs.

Used by the mutation notebook (autograders/mutation.py): the solution runs top to bottom in one kernel, and just
before each exercise's section the kernel forks once per mutant of that exercise; the child runs the mutated section,
from exactly the state a graded run would have there, and whatever it does to that state dies with it. The kernel
then runs the solution's own section. No mutant sees another's leftovers or the solution's later results, and no run
of the original section is needed to undo a mutant.

This file is executed inside the kernel (its source is sent in a cell and registered as a module), so it imports
nothing of the course and nothing outside the standard library. In the child the kernel's I/O threads do not exist:
the shell's traceback, display and result publishers are replaced by no-ops, Python's sys.stdout/sys.stderr and the
file descriptors 1 and 2 by files, so what a cell writes to stderr (from Python or from C) is seen as ipykernel would
forward it, as a stderr stream.

Protocol: `run(cells, cell_seconds, stop_after=None)` with `cells` a list of cell sources prints one line, MARKER + a
JSON list with, per cell, {"error": bool, "stderr": bool, "result": text/plain of the cell's value or None}; a cell the
child did not finish (it hung past its time or died) is {"error": true, "stderr": false, "result": null, "lost": "..."}.
With `stop_after` (the indices of the section's grade cells) the child stops at the first of them that raises or
writes to stderr, which costs its points whatever its value: the mutant has lost points, and the cells after it are
{"error": false, "stderr": false, "result": null, "skipped": true}, neither run nor counted.
`start()`, run before the notebook's first cell, and `report()`, after its last, print MARKER + {"seconds": the
notebook's own cells, the mutants' runs left out, "peak_rss_mb": the kernel's peak resident memory (VmHWM; the
mutants' forks are processes of their own and do not count, nor do the brief compiler processes a kernel build starts)}.
"""
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time

MARKER = "@@tinyml-forked-section@@"
MODULE = "_tinyml_forked_section"
_RUN = {"mutant_seconds": 0.0}  # this kernel's run: its start, the seconds spent in mutants, the forks' cache


class CellTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CellTimeout("the cell ran past its time limit")


def _quiet_publishers(shell) -> None:
    """In the child: nothing may go through the kernel's sockets, whose I/O thread stayed in the parent."""
    shell._showtraceback = lambda etype, evalue, stb: None
    shell.display_pub.publish = lambda *args, **kwargs: None
    shell.display_pub.clear_output = lambda *args, **kwargs: None
    shell.displayhook.finish_displayhook = lambda: None


def _child(cells, cell_seconds, write_fd, stop_after) -> None:
    from IPython import get_ipython
    shell = get_ipython()
    _quiet_publishers(shell)
    err_file, out_file = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    os.dup2(out_file.fileno(), 1)
    os.dup2(err_file.fileno(), 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    signal.signal(signal.SIGALRM, _on_alarm)
    for index, source in enumerate(cells):
        before = os.fstat(2).st_size
        signal.alarm(cell_seconds)
        try:
            result = shell.run_cell(source, store_history=True)
        finally:
            signal.alarm(0)
        sys.stdout.flush()
        sys.stderr.flush()
        value = result.result
        text = None
        if value is not None:
            data, _ = shell.display_formatter.format(value)
            text = data.get("text/plain")
        entry = {"error": bool(result.error_before_exec or result.error_in_exec),
                 "stderr": os.fstat(2).st_size > before, "result": text}
        os.write(write_fd, (json.dumps(entry) + "\n").encode())
        if index in stop_after and (entry["error"] or entry["stderr"]):
            break


def deadline(n_cells, cell_seconds):
    """Seconds after which a forked run of `n_cells` cells is killed (a cell that ignores its alarm)."""
    return n_cells * (cell_seconds + 5)


def _fork_cache() -> str:
    """The forks' cache folder ($TINYML_CACHE: the course's compiled kernels and model caches): it links to every
    entry of the kernel's own, and keeps what the forks build, for later forks. The kernel never looks in it, so the
    solution's own sections pay for their own builds (the lab's time is a student's) and load nothing a mutant built."""
    # With $TINYML_CACHE unset the kernels are cached in ~/.cache/tinyml_lib/kernels, the models beside it.
    home = os.path.join(os.path.expanduser("~"), ".cache", "tinyml_lib")
    roots = [os.environ["TINYML_CACHE"]] if os.environ.get("TINYML_CACHE") else [os.path.join(home, "kernels"), home]
    if "fork_cache" not in _RUN:
        _RUN["fork_cache"] = tempfile.mkdtemp(prefix="tinyml-fork-cache-")
    forks = _RUN["fork_cache"]
    for root in roots:
        for name in os.listdir(root) if os.path.isdir(root) else []:
            if name != "kernels" and not os.path.lexists(os.path.join(forks, name)):
                os.symlink(os.path.join(root, name), os.path.join(forks, name))
    return forks


def run(cells, cell_seconds, stop_after=None):
    """Run `cells` (sources, in order) in a fork of this kernel; print MARKER + one JSON entry per cell. With
    `stop_after` (cell indices), the fork stops at the first of those cells that raises or writes to stderr."""
    began = time.perf_counter()
    cache = _fork_cache()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            os.environ["TINYML_CACHE"] = cache
            _child(cells, cell_seconds, write_fd, frozenset(stop_after or ()))
        finally:
            os._exit(0)
    os.close(write_fd)
    # A cell that blocks SIGALRM's exception (a C loop, a bare `except:` around a loop) is killed at a hard deadline.
    end = time.monotonic() + deadline(len(cells), cell_seconds)
    buffer, lost = b"", None
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                lost = "killed: the section ran past its time limit"
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                buffer += chunk
    except BaseException:  # this cell interrupted (a grader's cell limit): the child goes with it
        lost = "killed: the cell running it was interrupted"
        raise
    finally:
        os.close(read_fd)
        if lost:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        _RUN["mutant_seconds"] += time.perf_counter() - began
    entries = [json.loads(line) for line in buffer.decode().splitlines()]
    stopped = bool(stop_after) and not lost and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and entries and \
        len(entries) - 1 in stop_after and (entries[-1]["error"] or entries[-1]["stderr"])
    if stopped:
        entries += [{"error": False, "stderr": False, "result": None, "skipped": True}] * (len(cells) - len(entries))
    if len(entries) < len(cells):
        why = lost or f"the forked run died (wait status {status})"
        entries += [{"error": True, "stderr": False, "result": None, "lost": why}] * (len(cells) - len(entries))
    print(MARKER + json.dumps(entries))


def _peak_rss_kib() -> int:
    """This process's peak resident memory (VmHWM), in KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def start():
    """Mark the start of the notebook's run (the first cell of a mutation notebook)."""
    _RUN["started"] = time.perf_counter()


def report():
    """Print MARKER + the run's seconds since `start()` (the mutants' runs left out) and its peak memory in MB."""
    seconds = time.perf_counter() - _RUN["started"] - _RUN["mutant_seconds"]
    shutil.rmtree(_RUN.pop("fork_cache", ""), ignore_errors=True)
    print(MARKER + json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_kib() / 1024}))
