"""Mutation testing of a lab's grade cells: every exercise, replaced by a plausible wrong answer, must lose points.

`mutation_notebook` turns a solution into its own mutation run: executed top to bottom, it runs the solution (timed,
its peak memory taken: the lab's budget figures) and, for each mutant of an exercise, the mutated solution cell and
the cells of its section (up to the next exercise) again, in a fork of the kernel (autograders/forked_section.py); the
grade cells that fail there are the points the mutant loses. Each mutant's fork is made just before its section, so
it starts from the state a graded run has there (every earlier answer correct, none of the section's own results yet)
and takes its changes with it, at the cost of one run of its section up to the first grade cell it fails. The suite hands that notebook to the class grader as a submission, so one sandboxed run of each solution
gives its grade, its budget figures and every mutant's verdict (`mutation_report` reads them back);
`python -m autograders.mutation LAB` runs it in a plain kernel.

Mutants live in autograders/mutants/<lab>.py as MUTANTS = {solution grade_id: {description: replacement}}. A
replacement is code that takes the place of the lines between ### BEGIN SOLUTION and ### END SOLUTION, at their
indentation (in a CUDA C source string the markers are C comments, `// ### BEGIN SOLUTION`, and the replacement is
C), or an edit of those lines: a pair (old, new), or a list of pairs, each `old` found exactly once in the answer.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent, indent

import nbformat
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


Edit = tuple[str, str]  # (text of the solution region, what replaces it): a mutant written as a change to the answer


def as_edits(replacement: Edit | list[Edit]) -> list[Edit]:
    """A mutant written as one edit (old, new) or a list of them, as a list of edits."""
    return [replacement] if isinstance(replacement[0], str) else list(replacement)


def mutant_code(replacement: str | Edit | list[Edit]) -> str:
    """The code a mutant brings into the answer: its replacement, or the new sides of its edits, one per line."""
    return replacement if isinstance(replacement, str) else "\n".join(new for _, new in as_edits(replacement))


def mutate(source: str, replacement: str | Edit | list[Edit]) -> str:
    """A cell's source with its solution region replaced by `replacement` (code, indented like the BEGIN marker), or
    changed by one edit (old, new) or a list of them, each `old` found exactly once in the region."""
    match = SOLUTION_REGION.search(source)
    if match is None:
        raise ValueError("cell has no ### BEGIN SOLUTION / ### END SOLUTION region")
    if isinstance(replacement, str):
        body = indent(dedent(replacement).strip("\n"), match["indent"])
    else:
        body = source[match.start():match.end()]
        for old, new in as_edits(replacement):
            if body.count(old) != 1:
                raise ValueError(f"mutant edit: expected {old!r} once in the solution, found it {body.count(old)} times")
            body = body.replace(old, new)
    return source[:match.start()] + body + source[match.end():]


def sections(nb) -> dict[str, list[int]]:
    """For each autograded exercise (solution cell with a solution region): its index and the cells up to the next."""
    starts = [i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("solution") and c.cell_type == "code"
              and SOLUTION_REGION.search(c.source)]
    bounds = starts[1:] + [len(nb.cells)]
    return {nbgrader_meta(nb.cells[s])["grade_id"]: list(range(s, e)) for s, e in zip(starts, bounds)}


@dataclass
class RunReport:
    seconds: float = math.nan  # the notebook's own cells, top to bottom (nan: the run did not reach its end)
    peak_rss_mb: float = math.nan
    failed_grade_cells: list[str] = field(default_factory=list)
    # exercise -> mutant -> the grade ids it failed, up to the first that raised or wrote to stderr (whole_sections: all)
    mutants: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what kept the run from telling: a mutant that never ran


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


# ------------------------------------------------------------------------------------------- the mutation notebook
ADDED = "tinyml_mutation"  # metadata key of the cells mutation_notebook adds: {"role": ..., ...}
_RUNNER = f"__import__('sys').modules[{forked_section.MODULE!r}]"
# The forked-section runner (autograders/forked_section.py), registered in the kernel as a module, not in its namespace.
REGISTER_FORKED_SECTION = (
    "exec(compile({source!r}, 'forked_section.py', 'exec'), __import__('sys').modules.setdefault({module!r}, "
    "__import__('types').ModuleType({module!r})).__dict__)").format(
        source=(ROOT / "autograders" / "forked_section.py").read_text(), module=forked_section.MODULE)


def mutation_notebook(nb, mutants: dict[str, dict[str, str]], cell_seconds: int = 120,
                      whole_sections: frozenset[tuple[str, str]] = frozenset()) -> nbformat.NotebookNode:
    """A copy of notebook `nb` (its solution) that is its own mutation run when executed top to bottom.

    Added: before the first cell, one that registers the forked-section runner and starts the clock; just before each
    exercise's section, one cell per mutant of it, which runs the mutated section in a fork of the kernel (each cell
    of it stopped after `cell_seconds`), from the state the solution's run has reached there, until the first grade
    cell that raises or writes to stderr (the mutant has lost points: the rest of its section is not run), or to the
    section's end for the (exercise, mutant) pairs in `whole_sections` (where the test is which cells a mutant costs);
    after the last cell, one
    that reports the run's seconds and peak memory (the mutants left out). The added cells are ordinary code cells,
    so the notebook can be graded like any submission (the class grader ignores cells it does not manage) and read
    back by `mutation_report`.
    """
    parts = sections(nb)
    if set(mutants) - set(parts):
        raise ValueError(f"mutants: expected exercises of the notebook {sorted(parts)}, got {sorted(set(mutants) - set(parts))}")

    def added(source: str, **meta) -> nbformat.NotebookNode:
        return nbformat.v4.new_code_cell(source, metadata={ADDED: meta})
    before = {indices[0]: exercise for exercise, indices in parts.items()}
    cells = [added(f"{REGISTER_FORKED_SECTION}\n{_RUNNER}.start()", role="start")]
    for index, cell in enumerate(nb.cells):
        exercise = before.get(index)
        if exercise is not None:
            code = [i for i in parts[exercise] if nb.cells[i].cell_type == "code"]
            graded = [n for n, i in enumerate(code) if nbgrader_meta(nb.cells[i]).get("grade")]
            for name, replacement in mutants.get(exercise, {}).items():
                sources = [mutate(nb.cells[i].source, replacement) if i == index else nb.cells[i].source for i in code]
                stop = None if (exercise, name) in whole_sections else graded
                cells.append(added(f"{_RUNNER}.run({sources!r}, {cell_seconds}, {stop!r})", role="mutant", exercise=exercise,
                                   mutant=name, seconds=forked_section.deadline(len(sources), cell_seconds) + 30))
        cells.append(copy.deepcopy(cell))
    cells.append(added(f"{_RUNNER}.report()", role="report"))
    return nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(nb.metadata),
                                    nbformat=nb.nbformat, nbformat_minor=nb.nbformat_minor)


def _marked(cell):
    """The JSON a runner cell printed after forked_section.MARKER, or None where it printed none."""
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")
    if forked_section.MARKER not in text:
        return None
    return json.loads(text[text.index(forked_section.MARKER) + len(forked_section.MARKER):].splitlines()[0])


def _forked_failures(cells: list, entries: list[dict]) -> list[str]:
    """The grade_ids of the grade cells among `cells` (a section's code cells) that lose points by the forked run's
    `entries`, one per cell: scored by nbgrader's own rule on a cell rebuilt from the entry."""
    failed = []
    for source_cell, entry in zip(cells, entries):
        meta = nbgrader_meta(source_cell)
        if not meta.get("grade"):
            continue
        cell = nbformat.v4.new_code_cell(source_cell.source, metadata=source_cell.metadata)
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


def mutation_report(executed) -> RunReport:
    """What an executed mutation notebook (mutation_notebook, run by any kernel or grader) says.

    The notebook's own cells: a grade cell that lost points, or an ungraded code cell that raised (a demonstration
    that fails on the solution is a broken lab though no points depend on it), is listed with its reason. A mutant's
    cell that was stopped (it outran the grader's cell limit) loses every grade cell of its section; one that did not
    run at all is a problem of the run, not a verdict.
    """
    report = RunReport()
    own = nbformat.v4.new_notebook(cells=[c for c in executed.cells if ADDED not in c.get("metadata", {})])
    for i, cell in enumerate(own.cells):
        if cell.cell_type != "code":
            continue
        if nbgrader_meta(cell).get("grade") and _failed(cell):
            report.failed_grade_cells.append(f"{nbgrader_meta(cell)['grade_id']} ({_why(cell)})")
        elif not nbgrader_meta(cell).get("grade") and _raised(cell):
            report.failed_grade_cells.append(f"ungraded cell {i} ({_why(cell)})")
    parts = sections(own)
    for cell in executed.cells:
        meta = cell.get("metadata", {}).get(ADDED)
        if meta is None or meta["role"] == "start":
            continue
        marked = _marked(cell)
        if meta["role"] == "report":
            if marked is None:
                report.problems.append("the run did not reach its last cell")
            else:
                report.seconds, report.peak_rss_mb = marked["seconds"], marked["peak_rss_mb"]
            continue
        code = [own.cells[i] for i in parts[meta["exercise"]] if own.cells[i].cell_type == "code"]
        if marked is None and not _raised(cell):
            report.problems.append(f"mutant {meta['exercise']}: {meta['mutant']} did not run")
            continue
        if marked is None:  # stopped from outside: as a hang, it costs every cell it did not finish
            marked = [{"error": True, "stderr": False, "result": None}] * len(code)
        report.mutants.setdefault(meta["exercise"], {})[meta["mutant"]] = _forked_failures(code, marked)
    return report


def run_with_mutants(notebook: Path, mutants: dict[str, dict[str, str]], timeout: int = 120,
                     whole_sections: frozenset[tuple[str, str]] = frozenset()) -> RunReport:
    """Run `notebook`'s mutation notebook in a plain kernel (one BLAS thread, as a graded run), no sandbox; for an
    author checking new mutants quickly. The suite runs the same notebook through the class grader instead."""
    nb = mutation_notebook(nbformat.read(notebook, as_version=4), mutants, timeout, whole_sections)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            timeout_func=lambda cell: cell.get("metadata", {}).get(ADDED, {}).get("seconds", timeout),
                            resources={"metadata": {"path": str(notebook.parent)}})
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    client.execute(env=dict(os.environ, **threads))
    return mutation_report(nb)


def main(argv: list[str] | None = None) -> int:
    """`python -m autograders.mutation LAB`: the solution's failures, time and memory, and the mutants that survive."""
    import argparse
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("lab")
    args = parser.parse_args(argv)
    report = run_with_mutants(ROOT / "solutions" / args.lab / f"{args.lab}.ipynb", load_mutants(args.lab))
    survivors = [f"{ex}: {name}" for ex, variants in report.mutants.items() for name, lost in variants.items() if not lost]
    print(f"{args.lab}: {report.seconds:.1f} s, peak {report.peak_rss_mb:.0f} MB; failing on the solution: "
          f"{report.failed_grade_cells or 'none'}; surviving mutants: {survivors or 'none'}; problems: "
          f"{report.problems or 'none'}")
    return 1 if survivors or report.failed_grade_cells or report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
