"""Round trip of every lab in solutions/ through nbgrader, with mutation tests and the run-time/memory budget.

For each lab: the release is current and validates to "no test passes"; the source, graded as a submission by the
class grader (sandboxed), scores full marks (the check `nbgrader validate` makes, in the grading path) within the lab
budget; the blank release scores zero on every autograded cell; every exercise, replaced by a plausible wrong answer,
loses points, and a crash in the last exercise costs exactly its cells. The graded solution is its own mutation run
(autograders/mutation.py): just before each exercise's section, each of its mutants runs that section in a fork of
the kernel, inside the same sandbox, so each solution runs once per suite. The labs are graded side by side, longest first, two notebooks at a
time (one single-threaded kernel per core, as the class grader runs them).
"""
from __future__ import annotations

import csv
import logging
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograders.classroom import exercise_columns, grade_class
from autograders.course import ROOT, lab_names, nbgrader, stale_releases
from autograders.sandbox import Limits, sandbox_problem
from autograders.mutation import (ADDED, load_mutants, mutation_notebook, mutation_report, nbgrader_meta, python_exercises,
                                  run_with_mutants, sections)
from tinyml_lib.export import stale_modules
from tinyml_lib.grading import target

LABS = lab_names()
pytestmark = pytest.mark.skipif(not LABS, reason="no lab in solutions/")


def source_of(lab: str) -> Path:
    return ROOT / "solutions" / lab / f"{lab}.ipynb"


def release_of(lab: str) -> Path:
    return ROOT / "labs" / lab / f"{lab}.ipynb"


def grade_cells(lab: str) -> dict[str, float]:
    """grade_id -> points of every autograded test cell of the source notebook."""
    nb = nbformat.read(source_of(lab), as_version=4)
    return {nbgrader_meta(c)["grade_id"]: nbgrader_meta(c)["points"] for c in nb.cells
            if nbgrader_meta(c).get("grade") and c.cell_type == "code"}


def exercise_tests(lab: str) -> dict[str, list[str]]:
    """Exercise (solution grade_id) -> the grade cells of its section."""
    return exercise_columns(nbformat.read(source_of(lab), as_version=4))


# Wall seconds of each lab's graded solution run (the solution, then every mutant) in the suite's grading, two sandboxes
# at a time on a 2-core VM. They only order the runs, longest lab first, so that no core idles at the end while it
# finishes alone; a lab not listed counts as the longest, and where pytest's cache is on the last run's figures take
# their place.
LAB_SECONDS = {"lab01_metrics": 96, "lab02_pruning": 267, "lab03_quantization": 85, "lab03b_low_bit": 94, "lab04_nas": 150,
               "lab04b_cheap_nas": 120, "lab05_distillation": 210, "lab05b_tiny_training": 251, "lab06_loops": 90,
               "lab07_llm": 269}
LAB_SECONDS_KEY = "tinyml/lab_seconds"
SIDE_BY_SIDE = min(2, os.cpu_count() or 1)  # labs run at once: one per core, two at most (the 2-core reference VM)
# The mutant every lab gets besides its own: the last exercise raising (or, in a kernel's C body, not compiling), as a
# student's bug would; it must cost exactly the grade cells of its section (it is the last one: nothing runs after).
CRASH = "crash: the answer raises (a student's bug)"


def lab_seconds(config) -> dict[str, float]:
    """LAB_SECONDS, with the last run's figures from pytest's cache where it is on."""
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    return {**LAB_SECONDS, **(cache.get(LAB_SECONDS_KEY, {}) if cache else {})}


def longest_first(labs: list[str], seconds: dict[str, float]) -> list[str]:
    """`labs` ordered by run time, longest (or never measured) first."""
    return sorted(labs, key=lambda lab: seconds.get(lab, math.inf), reverse=True)


# ------------------------------------------------------------------------------------------ static checks
def test_release_and_library_are_current():
    assert not stale_modules(), f"stale generated modules {stale_modules()}: run `make release`"
    assert not stale_releases(), "labs/ differs from a fresh `nbgrader generate_assignment`: run `make release`"


@pytest.mark.parametrize("lab", LABS)
def test_notebook_structure(lab):
    nb = nbformat.read(source_of(lab), as_version=4)
    ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c)]
    assert len(ids) == len(set(ids)), f"duplicate grade_ids in {lab}"
    assert all(points > 0 for points in grade_cells(lab).values()), "every grade cell carries points"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "source committed with outputs"
    for exercise, tests in exercise_tests(lab).items():
        assert tests, f"exercise {exercise} has no grade cell in its section"


@pytest.mark.parametrize("lab", LABS)
def test_every_section_states_its_time_and_the_introduction_their_sum(lab):
    import re
    nb = nbformat.read(source_of(lab), as_version=4)
    minutes = {}
    for cell in nb.cells:
        heading = re.match(r"## (\d+)\. ", cell.source) if cell.cell_type == "markdown" else None
        if heading:
            stated = re.search(r"^\*About (\d+) minutes\.\*$", cell.source, re.M)
            assert stated, f"{lab} section {heading[1]} states no time (*About N minutes.* under its heading)"
            minutes[int(heading[1])] = int(stated[1])
    assert minutes and sorted(minutes) == list(range(1, len(minutes) + 1)), f"{lab}: sections {sorted(minutes)}"
    total = sum(minutes.values())
    said = f"About {total // 60} h {total % 60:02d} min of work" if total % 60 else f"About {total // 60} hours of work"
    assert said in nb.cells[0].source, f"{lab}: the introduction should say '{said}' (the sections' sum)"


@pytest.mark.parametrize("lab", LABS)
def test_every_exercise_has_mutants(lab):
    mutants, parts = load_mutants(lab), sections(nbformat.read(source_of(lab), as_version=4))
    assert set(mutants) == set(parts), f"mutants missing for {set(parts) - set(mutants)}, unknown {set(mutants) - set(parts)}"
    assert all(len(v) >= 1 for v in mutants.values())


# ------------------------------------------------------------------------------------------ nbgrader round trip
@pytest.fixture(scope="module")
def inverted_validations(request) -> dict[str, str]:
    """lab -> output of `nbgrader validate --invert` on its release; labs side by side (each is one process and one
    kernel), longest first."""
    def validate(lab: str) -> str:
        return nbgrader("validate", "--invert", str(release_of(lab))).stdout
    labs = longest_first(LABS, lab_seconds(request.config))
    with ThreadPoolExecutor(SIDE_BY_SIDE) as pool:
        return dict(zip(labs, pool.map(validate, labs)))


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_validate(inverted_validations, lab):
    # The source passing every test is checked by grading it (test_solution_scores_full_marks, in the sandbox) and by
    # the mutation run; running `nbgrader validate` on it too would add a whole run of every lab to the suite.
    inverted = inverted_validations[lab]
    assert "Success! The notebook does not pass any tests." in inverted, inverted[-3000:]


def crash_mutant(lab: str) -> tuple[str, str]:
    """(last exercise, the replacement that makes it crash): a Python answer raises, a kernel's C body is a compile
    error. A hang that costs only its cells is graded once, in Lab 01's class (the infinite_loop fixture of
    tests/test_classroom.py): each test cell that calls the loop costs a cell time-out, too dear to pay in every lab."""
    nb = nbformat.read(source_of(lab), as_version=4)
    last = list(sections(nb))[-1]
    return last, "raise RuntimeError('a student bug')" if last in python_exercises(nb) else "#error a student bug"


def mutants_of(lab: str) -> dict[str, dict[str, str]]:
    """The lab's mutants (autograders/mutants/<lab>.py) and CRASH."""
    mutants = {exercise: dict(variants) for exercise, variants in load_mutants(lab).items()}
    last, replacement = crash_mutant(lab)
    mutants.setdefault(last, {})[CRASH] = replacement
    return mutants


def write_submissions(lab: str, grading: Path) -> Limits:
    """The two submissions of `lab` in `grading`/submitted: the solution as its own mutation run, the blank release;
    returns the limits to grade them with."""
    solution = mutation_notebook(nbformat.read(source_of(lab), as_version=4), mutants_of(lab),
                                 whole_sections=frozenset({(crash_mutant(lab)[0], CRASH)}))
    for student, notebook in (("solution", solution), ("blank", nbformat.read(release_of(lab), as_version=4))):
        dest = grading / "submitted" / student / lab / f"{lab}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, dest)
    return grading_limits(solution)


def grading_limits(solution) -> Limits:
    """The lab budget per cell; per notebook three budgets and each mutant cell's own deadline (its section's cells
    at forked_section's limit each): `solution`, the mutation notebook graded, runs its mutants too."""
    budget = int(target("budgets.lab_seconds"))
    mutants = sum(c.metadata[ADDED].get("seconds", 0) for c in solution.cells if ADDED in c.metadata)
    return Limits(cell_seconds=budget, notebook_seconds=3 * budget + mutants, threads=1)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, request):
    """Grade, per lab, two submissions (the solution as its own mutation run, the blank release) with the class grader,
    each in its own sandbox, in a throwaway grading folder (and gradebook) per lab: work/<lab>. Returns (work, lab ->
    the solution's mutation report, read from its graded notebook).

    The labs are graded at once, longest first, each by a grade_class process of its own (its folder's only writer), on
    one Dask cluster of two single-threaded workers (`--scheduler`, autograders/classroom.py): two sandboxes at a time,
    as lab by lab, but no core waits while one lab's last submission runs alone or the next lab is being prepared. One
    lab more than there are workers is enough for that, and keeps the preparing (imports, copies) from piling up.
    """
    from dask.distributed import LocalCluster
    work = tmp_path_factory.mktemp("grading")
    limits = {lab: write_submissions(lab, work / lab) for lab in LABS}
    sandboxed = sandbox_problem() is None
    labs = longest_first(LABS, lab_seconds(request.config))
    with (LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=0, dashboard_address=None,
                       silence_logs=logging.CRITICAL) as cluster,
          ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool):
        runs = [pool.submit(grade_class, lab, work / lab, workers=2, scheduler=cluster.scheduler_address,
                            limits=limits[lab], sandboxed=sandboxed, progress=False) for lab in labs]
        results = dict(zip(labs, (run.result() for run in runs)))
    if getattr(request.config, "cache", None):
        request.config.cache.set(LAB_SECONDS_KEY, {lab: round(r.seconds["solution"]) for lab, r in results.items()
                                                   if "solution" in r.seconds})
    reports = {lab: mutation_report(nbformat.read(work / lab / "autograded" / "solution" / lab / f"{lab}.ipynb", 4))
               for lab in LABS}
    return work, reports, results


def scores(work: Path, lab: str, student: str) -> dict[str, float]:
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        sub = gb.find_submission_notebook(lab, lab, student)
        return {g.name: g.score for g in sub.grades if g.auto_score is not None or g.cell.max_score}


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_solution_scores_full_marks(graded, lab):
    work, _, results = graded
    got, expected = scores(work / lab, lab, "solution"), grade_cells(lab)
    lost = {k: v for k, v in expected.items() if got.get(k) != v}
    assert not lost, f"the solution lost points on {lost} (got {got}; {results[lab].notes.get('solution')})"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_blank_release_scores_zero(graded, lab):
    work, _, _ = graded
    got = scores(work / lab, lab, "blank")
    assert set(got) >= set(grade_cells(lab))
    assert all(v == 0 for v in got.values()), f"the blank release earned points: { {k: v for k, v in got.items() if v} }"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_solution_within_budget(graded, lab):
    report = graded[1][lab]
    print(f"{lab}: {report.seconds:.1f} s, peak RSS {report.peak_rss_mb:.0f} MB (sandboxed, with the grader's re-check "
          f"{graded[2][lab].recheck_seconds.get('solution', 0):.1f} s after)")
    assert not report.problems, report.problems
    assert not report.failed_grade_cells, f"cells failed on the solution: {report.failed_grade_cells}"
    assert report.seconds <= target("budgets.lab_seconds"), f"{lab} ran {report.seconds:.0f} s"
    assert report.peak_rss_mb <= target("budgets.lab_peak_mb"), f"{lab} peaked at {report.peak_rss_mb:.0f} MB"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_every_mutant_loses_points(graded, lab):
    report = graded[1][lab]
    assert not report.problems, report.problems
    assert set(report.mutants) == set(mutants_of(lab)), "every exercise's mutants ran"
    survivors = [f"{ex}: {name}" for ex, variants in report.mutants.items()
                 for name, failed in variants.items() if not failed]
    assert not survivors, f"wrong answers that keep full marks: {survivors}"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_a_crash_costs_only_its_cells(graded, lab):
    last, _ = crash_mutant(lab)
    lost = graded[1][lab].mutants.get(last, {}).get(CRASH)
    assert lost is not None, "the crash mutant did not run"
    assert set(lost) == set(exercise_tests(lab)[last]), f"cells lost {sorted(lost)}, expected {exercise_tests(lab)[last]}"


@pytest.mark.slow
def test_feedback_and_grade_export(graded):
    lab = LABS[0]
    work = graded[0] / lab
    nbgrader("generate_feedback", lab, "--force", grading_dir=work)
    assert (work / "feedback" / "solution" / lab / f"{lab}.html").exists()
    out = work / "grades.csv"
    nbgrader("export", "--to", str(out), grading_dir=work)
    rows = {r["student_id"]: r for r in csv.DictReader(out.open()) if r["assignment"] == lab}
    assert float(rows["solution"]["score"]) == sum(grade_cells(lab).values())
    assert float(rows["blank"]["score"]) == 0


def test_mutation_runner_reports_what_fails_on_a_solution(tmp_path):
    """A grade cell that raises and an ungraded cell that raises both count against a solution, with the reason;
    a mutant's failed grade cells are listed by id."""
    grade = {"grade": True, "grade_id": "test_f", "locked": True, "points": 1, "schema_version": 3, "solution": False,
             "task": False}
    answer = {"grade": False, "grade_id": "f", "locked": False, "schema_version": 3, "solution": True, "task": False}
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                                  metadata={"nbgrader": answer}),
        nbformat.v4.new_code_cell("assert f() == 1, 'f() should be 1'", metadata={"nbgrader": grade}),
        nbformat.v4.new_code_cell("raise ValueError('a demonstration broke')"),
    ])
    path = tmp_path / "lab.ipynb"
    nbformat.write(nb, path)
    report = run_with_mutants(path, {"f": {"returns 2": "return 2"}}, timeout=60)
    assert report.failed_grade_cells == ["ungraded cell 2 (ValueError: a demonstration broke)"]
    assert report.mutants == {"f": {"returns 2": ["test_f"]}}


def test_forked_mutants_fail_as_nbgrader_would_and_leave_the_kernel_untouched(tmp_path):
    """Each mutant's section runs in a fork of the kernel: stderr from Python or from the file descriptor, a hang
    (interruptible or not), a dying fork and partial credit all cost the test cell, as in nbgrader; a mutant's change
    to the kernel's state does not reach the next mutant nor the kernel."""
    grade = {"grade": True, "grade_id": "test_f", "locked": True, "points": 2, "schema_version": 3, "solution": False,
             "task": False}
    answer = {"grade": False, "grade_id": "f", "locked": False, "schema_version": 3, "solution": True, "task": False}
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("state = []"),
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                                  metadata={"nbgrader": answer}),
        nbformat.v4.new_code_cell("assert f() == 1 and 'mutant' not in state, (f(), state)\nstate.append('f ran')\n"
                                  "if f() == 'partial':\n    1.0", metadata={"nbgrader": grade}),
    ])
    path = tmp_path / "lab.ipynb"
    nbformat.write(nb, path)
    mutants = {"returns 2": "return 2",
               "leaves state": "state.append('mutant')\nreturn 1",
               "python stderr": "import sys; print('careful', file=sys.stderr)\nreturn 1",
               "fd stderr": "import os; os.write(2, b'from C')\nreturn 1",
               "hangs": "while True:\n    pass",
               "hangs, ignoring the alarm": "import signal; signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                                            "while True:\n    pass",
               "kills its process": "import os; os._exit(3)",
               "partial credit": "return 'partial'",
               "correct": "return 1"}
    report = run_with_mutants(path, {"f": mutants}, timeout=2)
    assert report.failed_grade_cells == []
    got = report.mutants["f"]
    assert got.pop("correct") == [], "a correct answer (after one that changed the state) keeps its points"
    assert got == {name: ["test_f"] for name in mutants if name != "correct"}


def test_a_mutant_starts_from_the_state_before_its_section(tmp_path):
    """A mutant's fork starts where a graded run of it would: the solution's results of its own section (or of a later
    one) do not exist there, so a crash costs the test of a value the section computes; the solution's earlier
    sections did run; and the budget figures leave the mutants' runs out."""
    def meta(grade_id: str, grade: bool) -> dict:
        return {"nbgrader": {"grade": grade, "grade_id": grade_id, "locked": grade, "points": 1 if grade else 0,
                             "schema_version": 3, "solution": not grade, "task": False}}
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", metadata=meta("f", False)),
        nbformat.v4.new_code_cell("value = f()"),
        nbformat.v4.new_code_cell("assert value == 1", metadata=meta("test_value", True)),
        nbformat.v4.new_code_cell("def g():\n    ### BEGIN SOLUTION\n    return value + 1\n    ### END SOLUTION",
                                  metadata=meta("g", False)),
        nbformat.v4.new_code_cell("later = g()\nimport time; time.sleep(1)"),
        nbformat.v4.new_code_cell("assert later == 2", metadata=meta("test_later", True)),
    ])
    path = tmp_path / "lab.ipynb"
    nbformat.write(nb, path)
    report = run_with_mutants(path, {"f": {"raises": "raise RuntimeError('a student bug')"},
                                     "g": {"raises": "raise RuntimeError('a student bug')",
                                           "slow but right": "import time; time.sleep(3)\nreturn value + 1"}}, timeout=30)
    assert report.failed_grade_cells == [] and report.problems == []
    assert report.mutants == {"f": {"raises": ["test_value"]}, "g": {"raises": ["test_later"], "slow but right": []}}
    assert 1 <= report.seconds < 3, f"the solution's own cells took about 1 s, reported {report.seconds:.1f} s"


def test_a_mutant_stops_at_its_first_lost_grade_cell_unless_its_whole_section_is_asked(tmp_path):
    """A mutant's fork stops at the first grade cell that raises: the cells after it are neither run nor counted (a
    marker file shows they did not run); a mutant in `whole_sections` runs to the end and costs every cell it fails;
    a grade cell that fails by partial credit alone does not stop the fork."""
    def meta(grade_id: str, grade: bool, points: int = 1) -> dict:
        return {"nbgrader": {"grade": grade, "grade_id": grade_id, "locked": grade, "points": points if grade else 0,
                             "schema_version": 3, "solution": not grade, "task": False}}
    marker = tmp_path / "ran"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", metadata=meta("f", False)),
        nbformat.v4.new_code_cell("assert f() != 'partial'\n0.5 if f() == 'half' else None", metadata=meta("test_first", True, 2)),
        nbformat.v4.new_code_cell(f"open({str(marker)!r}, 'a').write('x')"),
        nbformat.v4.new_code_cell("assert f() == 1", metadata=meta("test_second", True)),
    ])
    path = tmp_path / "lab.ipynb"
    nbformat.write(nb, path)
    mutants = {"raises": "raise RuntimeError('a student bug')", "again": "raise RuntimeError('a student bug')",
               "half": "return 'half'"}
    report = run_with_mutants(path, {"f": mutants}, timeout=30, whole_sections=frozenset({("f", "again")}))
    assert report.failed_grade_cells == [] and report.problems == []
    assert report.mutants["f"] == {"raises": ["test_first"], "again": ["test_first", "test_second"],
                                   "half": ["test_first", "test_second"]}
    assert marker.read_text() == "xxx", "the solution, the whole-section mutant and the partial-credit one ran the cell"
