"""Round trip of every lab in solutions/ through nbgrader, with mutation tests and the run-time/memory budget.

For each lab: the release is current and validates to "no test passes"; the source, graded as a submission by the
class grader (sandboxed), scores full marks (the check `nbgrader validate` makes, in the grading path); the blank
release scores zero on every autograded cell; a submission with an exception in one exercise (and, in the first lab,
an infinite loop in another) loses exactly those exercises' points; every exercise, replaced by a plausible wrong
answer, loses points; the solution runs within the lab budget.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograders.classroom import exercise_columns, grade_class
from autograders.course import ROOT, lab_names, nbgrader, stale_releases
from autograders.sandbox import Limits, sandbox_problem
from autograders.mutation import load_mutants, mutate, nbgrader_meta, python_exercises, run_with_mutants, sections
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
def test_every_exercise_has_mutants(lab):
    mutants, parts = load_mutants(lab), sections(nbformat.read(source_of(lab), as_version=4))
    assert set(mutants) == set(parts), f"mutants missing for {set(parts) - set(mutants)}, unknown {set(mutants) - set(parts)}"
    assert all(len(v) >= 1 for v in mutants.values())


# ------------------------------------------------------------------------------------------ nbgrader round trip
@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_validate(lab):
    # The source passing every test is checked by grading it (test_solution_scores_full_marks, in the sandbox) and by
    # the mutation run; running `nbgrader validate` on it too would add a whole run of every lab to the suite.
    inverted = nbgrader("validate", "--invert", str(release_of(lab))).stdout
    assert "Success! The notebook does not pass any tests." in inverted, inverted[-3000:]


def broken_submission(lab: str, hang: bool) -> tuple[dict, set[str]]:
    """The solution with the last exercise raising and, if `hang`, the last Python one before it looping forever; returns
    (notebook, failing cells). The loop costs a cell time-out per test cell that calls it, so only one lab has it."""
    nb = json.loads(source_of(lab).read_text())
    parts, tests = sections(nbformat.reads(json.dumps(nb), as_version=4)), exercise_tests(lab)
    last, python = list(parts)[-1], python_exercises(nbformat.reads(json.dumps(nb), as_version=4))
    # The last exercise is a kernel in every lab: its body is C, where a bug that stops the cell is a compile error.
    broken = {last: "raise RuntimeError('a student bug')" if last in python else "#error a student bug"}
    if hang:
        broken[[e for e in python if e != last][-1]] = "while True:\n    pass"
    for exercise, code in broken.items():
        cell = nb["cells"][parts[exercise][0]]
        cell["source"] = mutate("".join(cell["source"]), code)
    return nb, set().union(*(tests[exercise] for exercise in broken))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade, per lab, three submissions (solution, blank release, broken) with the class grader, in a throwaway
    gradebook: each in its own sandbox, two at a time (autograders/classroom.py)."""
    work = tmp_path_factory.mktemp("grading")
    results = {}
    for lab in LABS:
        broken, failing = broken_submission(lab, hang=lab == LABS[0])
        for student, notebook in (("solution", source_of(lab)), ("blank", release_of(lab)), ("broken", broken)):
            dest = work / "submitted" / student / lab / f"{lab}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(notebook, dict):
                dest.write_text(json.dumps(notebook))
            else:
                shutil.copy(notebook, dest)
        budget = int(target("budgets.lab_seconds"))
        limits = Limits(cell_seconds=30 if lab == LABS[0] else budget, notebook_seconds=3 * budget, threads=1)
        grade_class(lab, work, workers=2, limits=limits, progress=False, sandboxed=sandbox_problem() is None)
        results[lab] = failing
    return work, results


def scores(work: Path, lab: str, student: str) -> dict[str, float]:
    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        sub = gb.find_submission_notebook(lab, lab, student)
        return {g.name: g.score for g in sub.grades if g.auto_score is not None or g.cell.max_score}


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_solution_scores_full_marks(graded, lab):
    work, _ = graded
    got, expected = scores(work, lab, "solution"), grade_cells(lab)
    lost = {k: v for k, v in expected.items() if got.get(k) != v}
    assert not lost, f"the solution lost points on {lost} (got {got})"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_blank_release_scores_zero(graded, lab):
    work, _ = graded
    got = scores(work, lab, "blank")
    assert set(got) >= set(grade_cells(lab))
    assert all(v == 0 for v in got.values()), f"the blank release earned points: { {k: v for k, v in got.items() if v} }"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_crash_and_hang_cost_only_their_cells(graded, lab):
    work, failing_by_lab = graded
    failing = failing_by_lab[lab]
    got, expected = scores(work, lab, "broken"), grade_cells(lab)
    zero = {k for k, v in got.items() if v == 0}
    assert zero == failing, f"cells at zero {sorted(zero)}, expected exactly {sorted(failing)}"
    assert all(got[k] == expected[k] for k in expected if k not in failing)


@pytest.mark.slow
def test_feedback_and_grade_export(graded):
    work, _ = graded
    lab = LABS[0]
    nbgrader("generate_feedback", lab, "--force", grading_dir=work)
    assert (work / "feedback" / "solution" / lab / f"{lab}.html").exists()
    out = work / "grades.csv"
    nbgrader("export", "--to", str(out), grading_dir=work)
    rows = {r["student_id"]: r for r in csv.DictReader(out.open()) if r["assignment"] == lab}
    assert float(rows["solution"]["score"]) == sum(grade_cells(lab).values())
    assert float(rows["blank"]["score"]) == 0


# ------------------------------------------------------------------------------------------ mutants and budget
@pytest.fixture(scope="module")
def mutation_reports():
    return {lab: run_with_mutants(source_of(lab), load_mutants(lab)) for lab in LABS}


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_solution_within_budget(mutation_reports, lab):
    report = mutation_reports[lab]
    print(f"{lab}: {report.seconds:.1f} s, peak RSS {report.peak_rss_mb:.0f} MB")
    assert not report.failed_grade_cells, f"cells failed on the solution: {report.failed_grade_cells}"
    assert report.seconds <= target("budgets.lab_seconds"), f"{lab} ran {report.seconds:.0f} s"
    assert report.peak_rss_mb <= target("budgets.lab_peak_mb"), f"{lab} peaked at {report.peak_rss_mb:.0f} MB"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_every_mutant_loses_points(mutation_reports, lab):
    survivors = [f"{ex}: {name}" for ex, variants in mutation_reports[lab].mutants.items()
                 for name, failed in variants.items() if not failed]
    assert not survivors, f"wrong answers that keep full marks: {survivors}"


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
