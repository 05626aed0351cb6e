"""Mutation testing of a lab's grade cells: every exercise, replaced by a plausible wrong answer, must lose points.

The source notebook runs once, top to bottom, in one kernel (its time and the kernel's peak RSS are the lab's budget
figures). Then, for each mutant of an exercise, the mutated solution cell and the cells of its section (up to the next
exercise) run again, in a fork of the kernel (autograders/forked_section.py); the grade cells that fail are the
points the mutant loses. The fork starts from the state the solution left and takes the mutant's changes with it, so
every mutant starts from a correct state at the cost of one run of its section. Several notebooks can run side by
side (run_side_by_side), each in a process of its own with its own single-threaded kernel.

Mutants live in autograders/mutants/<lab>.py as MUTANTS = {solution grade_id: {description: replacement code}}; the
replacement takes the place of the lines between ### BEGIN SOLUTION and ### END SOLUTION, at their indentation (in a
CUDA C source string the markers are C comments, `// ### BEGIN SOLUTION`, and the replacement is C).
"""
from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent, indent

import nbformat
import psutil
from nbclient import NotebookClient
from nbgrader.utils import determine_grade

from autograders import forked_section

ROOT = Path(__file__).resolve().parent.parent
# A marker line may carry a C comment prefix (`// ### BEGIN SOLUTION`) inside a CUDA C source string.
SOLUTION_REGION = re.compile(r"^(?P<indent>[ \t]*)(?://[ \t]*)?### BEGIN SOLUTION[ \t]*\n.*?"
                             r"^[ \t]*(?://[ \t]*)?### END SOLUTION[ \t]*$", re.M | re.S)


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def load_mutants(lab: str) -> dict[str, dict[str, str]]:
    """MUTANTS of a lab from autograders/mutants/<lab>.py (empty if the file is missing)."""
    path = ROOT / "autograders" / "mutants" / f"{lab}.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"mutants_{lab}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MUTANTS


def in_c_source(source: str) -> bool:
    """Whether a cell's solution region sits inside a CUDA C source string (its markers are `// ### ...`)."""
    match = SOLUTION_REGION.search(source)
    return bool(match) and source[match.start():match.end()].lstrip().startswith("//")


def python_exercises(nb) -> list[str]:
    """The exercises (grade_ids, in notebook order) whose answer is Python, not a kernel's C body."""
    return [gid for gid, indices in sections(nb).items() if not in_c_source("".join(nb["cells"][indices[0]]["source"]))]


def mutate(source: str, replacement: str) -> str:
    """Replace the solution region of a cell's source with `replacement`, indented like the BEGIN marker."""
    match = SOLUTION_REGION.search(source)
    if match is None:
        raise ValueError("cell has no ### BEGIN SOLUTION / ### END SOLUTION region")
    body = indent(dedent(replacement).strip("\n"), match["indent"])
    return source[:match.start()] + body + source[match.end():]


def sections(nb) -> dict[str, list[int]]:
    """For each autograded exercise (solution cell with a solution region): its index and the cells up to the next."""
    starts = [i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("solution") and c.cell_type == "code"
              and SOLUTION_REGION.search(c.source)]
    bounds = starts[1:] + [len(nb.cells)]
    return {nbgrader_meta(nb.cells[s])["grade_id"]: list(range(s, e)) for s, e in zip(starts, bounds)}


@dataclass
class RunReport:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    failed_grade_cells: list[str] = field(default_factory=list)
    mutants: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # exercise -> mutant -> failed grade ids
    total_seconds: float = 0.0  # the whole run, mutants included: what scheduling runs side by side goes by


class _RssSampler(threading.Thread):
    """Samples the resident memory of a process and its children every 50 ms; keeps the peak in MB."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc, self.peak, self.done = psutil.Process(pid), 0.0, threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs) / 2**20)
            except psutil.Error:
                pass
            self.done.wait(0.05)


def _failed(cell) -> bool:
    """Whether nbgrader would take points from this executed grade cell (an error, any stderr output, partial credit)."""
    score, max_score = determine_grade(cell)
    return score is None or score < max_score


def _raised(cell) -> bool:
    return any(o.get("output_type") == "error" for o in cell.get("outputs", []))


def _why(cell) -> str:
    """The last line of the error (or of the stderr output) that cost a failed grade cell its points."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out['ename']}: {out['evalue']}"
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stderr").strip()
    return text.splitlines()[-1] if text else "partial credit"


def _run(client: NotebookClient, nb, indices: list[int], explain: bool = False, ungraded: bool = False) -> list[str]:
    """Execute cells `indices` and return the grade_ids of grade cells that lost points.

    With `explain` (runs of the solution) each entry says why. With `ungraded` (the top-to-bottom run of the solution)
    an ungraded code cell that raised counts too: a demonstration that fails on the solution is a broken lab even
    though no points depend on it.
    """
    failed = []
    for i in indices:
        cell = nb.cells[i]
        client.execute_cell(cell, i)
        if cell.cell_type != "code":
            continue
        meta = nbgrader_meta(cell)
        if meta.get("grade") and _failed(cell):
            failed.append(f"{meta['grade_id']} ({_why(cell)})" if explain else meta["grade_id"])
        elif ungraded and not meta.get("grade") and _raised(cell):
            failed.append(f"ungraded cell {i} ({_why(cell)})")
    return failed


# The forked-section runner (autograders/forked_section.py), registered in the kernel as a module, not in its namespace.
REGISTER_FORKED_SECTION = (
    "exec(compile({source!r}, 'forked_section.py', 'exec'), __import__('sys').modules.setdefault({module!r}, "
    "__import__('types').ModuleType({module!r})).__dict__)").format(
        source=(ROOT / "autograders" / "forked_section.py").read_text(), module=forked_section.MODULE)


def _execute(client: NotebookClient, source: str, seconds: int | None = None) -> list:
    """Run `source` in the kernel as a cell of its own, appended to the notebook for the while and given `seconds`
    (default: the client's cell time-out); its outputs. Raises if it raised."""
    cell, timeout = nbformat.v4.new_code_cell(source), client.timeout
    client.nb.cells.append(cell)
    client.timeout = seconds or timeout
    try:
        client.execute_cell(cell, len(client.nb.cells) - 1)
    finally:
        client.nb.cells.pop()
        client.timeout = timeout
    errors = [o for o in cell.outputs if o.get("output_type") == "error"]
    if errors:
        raise RuntimeError(f"the mutation runner's own cell failed: {errors[0]['ename']}: {errors[0]['evalue']}")
    return cell.outputs


def _run_forked(client: NotebookClient, nb, indices: list[int], replacement: str, timeout: int) -> list[str]:
    """The grade_ids of the grade cells that lose points when the section `indices`, its first cell's solution replaced
    by `replacement`, runs in a fork of the kernel (autograders/forked_section.py); the kernel's state is untouched."""
    code = [i for i in indices if nb.cells[i].cell_type == "code"]
    sources = [mutate(nb.cells[i].source, replacement) if i == indices[0] else nb.cells[i].source for i in code]
    outputs = _execute(client, f"__import__('sys').modules[{forked_section.MODULE!r}].run({sources!r}, {timeout})",
                       seconds=forked_section.deadline(len(sources), timeout) + 30)
    text = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    entries = json.loads(text[text.index(forked_section.MARKER) + len(forked_section.MARKER):].splitlines()[0])
    failed = []
    for i, entry in zip(code, entries):
        meta = nbgrader_meta(nb.cells[i])
        if not meta.get("grade"):
            continue
        cell = nbformat.v4.new_code_cell(nb.cells[i].source, metadata=nb.cells[i].metadata)
        if entry["error"]:
            cell.outputs.append(nbformat.v4.new_output("error", ename="Error", evalue=entry.get("lost", ""),
                                                       traceback=[]))
        if entry["stderr"]:
            cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text="(stderr)"))
        if entry["result"] is not None:
            cell.outputs.append(nbformat.v4.new_output("execute_result", data={"text/plain": entry["result"]}))
        if _failed(cell):
            failed.append(meta["grade_id"])
    return failed


def run_with_mutants(notebook: Path, mutants: dict[str, dict[str, str]], timeout: int = 120) -> RunReport:
    """Run `notebook` once (timed, peak RSS sampled), then each mutant of each exercise; see the module docstring."""
    begin = time.perf_counter()
    nb = nbformat.read(notebook, as_version=4)
    report, parts = RunReport(), sections(nb)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(notebook.parent)}})
    # The kernel gets the thread settings of a graded run (one BLAS thread per kernel, autograders/sandbox.py).
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    with client.setup_kernel(env=dict(os.environ, **threads)):
        sampler = _RssSampler(client.km.provisioner.process.pid)
        sampler.start()
        start = time.perf_counter()
        report.failed_grade_cells = _run(client, nb, list(range(len(nb.cells))), explain=True, ungraded=True)
        report.seconds = time.perf_counter() - start
        sampler.done.set()
        report.peak_rss_mb = sampler.peak
        if mutants:
            _execute(client, REGISTER_FORKED_SECTION)
        for exercise, variants in mutants.items():
            cells = parts[exercise]
            for name, code in variants.items():
                report.mutants.setdefault(exercise, {})[name] = _run_forked(client, nb, cells, code, timeout)
    report.total_seconds = time.perf_counter() - begin
    return report


def run_side_by_side(runs: dict[str, tuple[Path, dict[str, dict[str, str]]]], workers: int) -> dict[str, RunReport]:
    """run_with_mutants(notebook, mutants) of every entry of `runs`, `workers` at a time; name -> report.

    Each run is a process of its own (its own event loop and kernel, one BLAS thread), so its budget figures are still
    its own run's: with one kernel per core, the class grader's regime, they barely move. Runs start in the order of
    `runs`: put the longest first, or a core idles at the end while the last long run finishes alone.
    """
    # spawn, not fork: the caller (pytest, a sampler thread) may hold threads and locks a fork would copy mid-use
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(run_with_mutants, notebook, mutants) for name, (notebook, mutants) in runs.items()}
        return {name: future.result() for name, future in futures.items()}
