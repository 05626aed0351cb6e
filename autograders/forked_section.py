"""Run a notebook section in a fork of the kernel that ran the notebook, and report each cell's grade-relevant outputs.

Used by the mutation runner (autograders/mutation.py): the solution runs once, top to bottom, in an ordinary kernel;
then, for each mutant, the kernel forks and the child runs the mutated section. The child starts from the kernel's
state, copied by the fork, and whatever it does to that state dies with it: no run of the original section is needed
to undo a mutant, which halves the cost of a mutant.

This file is executed inside the kernel (its source is sent in a cell and registered as a module), so it imports
nothing of the course and nothing outside the standard library. In the child the kernel's I/O threads do not exist:
the shell's traceback, display and result publishers are replaced by no-ops, Python's sys.stdout/sys.stderr and the
file descriptors 1 and 2 by files, so what a cell writes to stderr (from Python or from C) is seen as ipykernel would
forward it, as a stderr stream.

Protocol: `run(cells, cell_seconds)` with `cells` a list of cell sources prints one line, MARKER + a JSON list with,
per cell, {"error": bool, "stderr": bool, "result": text/plain of the cell's value or None}; a cell the child did not
finish (it hung past its time or died) is {"error": true, "stderr": false, "result": null, "lost": "..."}.
"""
import json
import os
import select
import signal
import sys
import tempfile
import time

MARKER = "@@tinyml-forked-section@@"
MODULE = "_tinyml_forked_section"


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


def _child(cells, cell_seconds, write_fd) -> None:
    from IPython import get_ipython
    shell = get_ipython()
    _quiet_publishers(shell)
    err_file, out_file = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    os.dup2(out_file.fileno(), 1)
    os.dup2(err_file.fileno(), 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    signal.signal(signal.SIGALRM, _on_alarm)
    for source in cells:
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


def deadline(n_cells, cell_seconds):
    """Seconds after which a forked run of `n_cells` cells is killed (a cell that ignores its alarm)."""
    return n_cells * (cell_seconds + 5)


def run(cells, cell_seconds):
    """Run `cells` (sources, in order) in a fork of this kernel; print MARKER + one JSON entry per cell."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            _child(cells, cell_seconds, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    # A cell that blocks SIGALRM's exception (a C loop, a bare `except:` around a loop) is killed at a hard deadline.
    end = time.monotonic() + deadline(len(cells), cell_seconds)
    buffer, lost = b"", None
    while True:
        left = end - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            lost = "killed: the section ran past its time limit"
            break
        ready, _, _ = select.select([read_fd], [], [], left)
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            buffer += chunk
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    entries = [json.loads(line) for line in buffer.decode().splitlines()]
    if len(entries) < len(cells):
        why = lost or f"the forked run died (wait status {status})"
        entries += [{"error": True, "stderr": False, "result": None, "lost": why}] * (len(cells) - len(entries))
    print(MARKER + json.dumps(entries))
