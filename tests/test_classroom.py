"""Class grading (autograders/classroom.py): the adversarial fixtures and copies of the solution in one parallel run.

Every fixture gets what a sound grader gives it, with a note where something went wrong; nothing outside each sandbox
changes (other submissions, the gradebook's other rows, the course) and nothing is left behind; the batch completes;
a sequential run gives the same scores; re-running grades nothing, and after one student is added only that student;
the feedback shows no hidden test and no live student script, for every student.
"""
from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograders import classroom
from autograders.adversarial import write_fixtures
from autograders.course import ROOT, lab_names
from autograders.sandbox import Limits, sandbox_problem
from autograders.submission import merge_submission

LAB = "lab01_metrics"
COPIES = 6
LIMITS = Limits(cell_seconds=30, notebook_seconds=600, threads=1)
needs_sandbox = pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox: {sandbox_problem()}")
pytestmark = [pytest.mark.skipif(LAB not in lab_names(), reason=f"{LAB} missing")]


def full_marks() -> dict[str, float]:
    nb = nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    return {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["points"] for c in nb.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")}


def tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def add_solution(grading: Path, student: str) -> None:
    dest = grading / "submitted" / student / LAB
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "solutions" / LAB / f"{LAB}.ipynb", dest / f"{LAB}.ipynb")


def student_of(fixture) -> str:
    """The gradebook id a fixture is graded under."""
    return classroom.student_id(os.fsdecode(fixture.folder)) if fixture.folder else fixture.name


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    grading = tmp_path_factory.mktemp("class")
    made = write_fixtures(LAB, grading / "submitted")
    for i in range(COPIES):
        add_solution(grading, f"solution{i:02d}")
    submitted_before = tree_digest(grading / "submitted")
    course_before = {name: tree_digest(ROOT / name) for name in ("tinyml_lib", "data", "solutions", "labs")}
    groups_before = cgroups()
    result = classroom.grade_class(LAB, grading, workers=2, limits=LIMITS, progress=False)
    assert cgroups() <= groups_before, f"cgroups left behind: {sorted(cgroups() - groups_before)}"
    return grading, made, result, submitted_before, course_before


def cgroups() -> set[str]:
    """The grading cgroups on this machine (other grading runs may hold some while this one runs)."""
    from autograders.cgroups import CGROUP_ROOT
    return {str(p) for p in CGROUP_ROOT.glob("*/**/tinyml-grade-*")}


def cells_lost(scores: dict[str, float]) -> set[str]:
    return {k for k, v in full_marks().items() if scores.get(k) != v}


@needs_sandbox
@pytest.mark.slow
def test_every_submission_graded_and_solutions_get_full_marks(graded_class):
    _, made, result, _, _ = graded_class
    assert set(result.scores) == {student_of(f) for f in made.values()} | {f"solution{i:02d}" for i in range(COPIES)}
    for i in range(COPIES):
        assert not cells_lost(result.scores[f"solution{i:02d}"]), f"solution{i:02d} lost {cells_lost(result.scores[f'solution{i:02d}'])}"
        assert not result.notes.get(f"solution{i:02d}"), result.notes[f"solution{i:02d}"]
    ratios = [(result.seconds[s] + result.recheck_seconds[s]) / result.seconds[s] for s in result.seconds
              if s.startswith("solution")]
    print({s: f"{t:.1f} s + re-check {result.recheck_seconds[s]:.1f} s" for s, t in sorted(result.seconds.items())},
          f"grading / notebook run: {min(ratios):.2f}-{max(ratios):.2f}", f"wall {result.wall_seconds:.0f} s",
          result.limits)


@needs_sandbox
@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["blank", "wrong", "exceptions", "infinite_loop", "edited_tests", "deleted_tests",
                                     "renamed", "huge_alloc", "patched_clock", "attacker", "not_json", "symlink",
                                     "no_notebook", "bad_folder_name", "forged_metadata", "display_points",
                                     "protocol_error", "showtraceback", "launcher_shadow", "forged_checkers",
                                     "resource_hog", "feedback_attack", "recheck_reach", "recheck_killed",
                                     "kernel_exit"])
def test_adversarial_fixture_gets_what_a_sound_grader_gives(graded_class, fixture):
    _, made, result, _, _ = graded_class
    if fixture not in made:
        pytest.skip(f"{LAB} has no {fixture} fixture")
    spec = made[fixture]
    got = result.scores[student_of(spec)]
    lost, every = cells_lost(got), set(full_marks())
    if spec.expect == "zero":
        assert all(v == 0 for v in got.values()) and set(got) == every, f"{fixture} earned {got}"
    elif spec.expect == "full":
        assert not lost, f"{fixture} lost {sorted(lost)} ({result.notes.get(student_of(spec))})"
    elif spec.expect == "zero_cells":
        assert lost == set(spec.zero_cells) and all(got[k] == 0 for k in spec.zero_cells), \
            f"{fixture}: lost {sorted(lost)}, expected exactly {sorted(spec.zero_cells)}"
    elif spec.expect == "loses_every_exercise":
        for exercise, grade_ids in classroom.exercise_columns(nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", 4)).items():
            assert lost & set(grade_ids), f"{fixture}: exercise {exercise} kept full marks"
    if spec.note:
        assert result.notes.get(student_of(spec)), f"{fixture}: no note says what happened"


@needs_sandbox
@pytest.mark.slow
def test_nothing_outside_the_sandboxes_changed_and_nothing_left_behind(graded_class):
    grading, _, _, submitted_before, course_before = graded_class
    assert tree_digest(grading / "submitted") == submitted_before, "a submission folder changed during grading"
    assert {name: tree_digest(ROOT / name) for name in course_before} == course_before, "the course changed"
    with Gradebook(f"sqlite:///{grading / 'gradebook.db'}") as gb:
        manual = [g for s in gb.find_assignment(LAB).submissions for g in s.notebooks[0].grades if g.manual_score is not None]
    assert not manual, f"manual scores appeared: {[(g.student.id, g.name, g.manual_score) for g in manual]}"
    left = [p.name for p in (grading / "sandbox").iterdir() if p.name != LAB]
    assert not left and not (grading / "sandbox" / LAB / "files").exists(), f"left behind: {left}"


@needs_sandbox
@pytest.mark.slow
def test_grades_csv_and_feedback_without_hidden_tests(graded_class):
    grading, made, result, _, _ = graded_class
    source = nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    table = classroom.write_summary(LAB, source, result.scores, result.notes, grading / "grades.csv")
    assert "renamed" in table and "Untitled (1).ipynb" in table
    rows = (grading / "grades.csv").read_text().splitlines()
    assert len(rows) == 1 + len(result.scores)
    assert classroom.generate_feedback(LAB, grading, sorted(result.scores)) == []
    regions = [m for c in source.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
               for m in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", c.source, re.S)]
    hidden = [line.strip() for region in regions for line in region.splitlines() if len(line.strip()) > 30]
    assert hidden
    for student in ("wrong", "feedback_attack"):
        page = (grading / "feedback" / student / LAB / f"{LAB}.html").read_text()
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        assert "check_equal(count_params(nn.Linear(3, 4)), 3 * 4 + 4" in text, "the feedback shows the visible tests"
        assert not [line for line in hidden if line in text], f"hidden tests leak into {student}'s feedback"
        # (the student's code is shown, escaped: only a live tag counts)
        assert not re.search(r"<script>\s*alert\('student|<img[^>]*onerror", page), f"live student HTML in {student}'s"
    wrong = html.unescape(re.sub(r"<[^>]+>", "", (grading / "feedback" / "wrong" / LAB / f"{LAB}.html").read_text()))
    assert re.search(r"AssertionError: [^\n]*expected", wrong), "the failing checks' messages are shown"
    for student in result.scores:
        assert (grading / "feedback" / student / LAB / f"{LAB}.html").exists(), f"no feedback for {student}"


@needs_sandbox
@pytest.mark.slow
def test_regrading_grades_nothing_new_then_only_the_new_student_and_sequential_agrees(graded_class, tmp_path):
    grading, _, first, _, _ = graded_class
    unchanged = classroom.grade_class(LAB, grading, workers=2, limits=LIMITS, progress=False)
    assert unchanged.graded == [] and unchanged.scores == first.scores and unchanged.notes == first.notes
    add_solution(grading, "late")
    again = classroom.grade_class(LAB, grading, workers=2, limits=LIMITS, progress=False)
    assert again.graded == ["late"]
    assert not cells_lost(again.scores["late"])
    assert {s: v for s, v in again.scores.items() if s != "late"} == first.scores
    # sequential grading of three students gives the parallel run's scores
    for student in ("wrong", "patched_clock", "solution00"):
        shutil.copytree(grading / "submitted" / student, tmp_path / "submitted" / student)
    sequential = classroom.grade_class(LAB, tmp_path, workers=1, limits=LIMITS, progress=False)
    assert sequential.scores == {s: first.scores[s] for s in ("wrong", "patched_clock", "solution00")}


def test_merge_restores_edited_and_deleted_test_cells():
    source = nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    release = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    student = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    tests = [c for c in student.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    tests[0].source = "pass"
    student.cells = [c for c in student.cells if c is not tests[1]]
    student.cells.append(nbformat.v4.new_code_cell("print('mine')"))
    merged = merge_submission(release, source, student)
    by_id = {c.metadata.nbgrader["grade_id"]: c for c in merged.cells if c.get("metadata", {}).get("nbgrader")}
    source_ids = [c.metadata.nbgrader["grade_id"] for c in source.cells if c.get("metadata", {}).get("nbgrader")]
    assert [i for i in source_ids if i in by_id] == source_ids, "every managed cell present, in order"
    for c in source.cells:
        if c.get("metadata", {}).get("nbgrader", {}).get("grade"):
            assert by_id[c.metadata.nbgrader["grade_id"]].source == c.source, "test cells come from the instructor"
    assert merged.cells[-1].source == "print('mine')"


def test_grading_refuses_without_a_sandbox(monkeypatch, capsys):
    monkeypatch.setattr(classroom, "sandbox_problem", lambda: "bubblewrap (bwrap) is not installed")
    assert classroom.main([LAB]) == 2
    assert "refusing to grade" in capsys.readouterr().err


def test_import_of_an_lms_export_zip(tmp_path):
    import zipfile
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as archive:
        archive.writestr("ada lovelace/lab01.ipynb", "{}")     # a folder per student
        archive.writestr("grace.ipynb", "{}")                  # or one notebook per student
        archive.writestr("../evil.ipynb", "{}")
        archive.writestr("bob.ipynb", '{"who": 1}')            # two notebooks that would both be "bob"
        archive.writestr("bob/lab01.ipynb", '{"who": 2}')
    students, problems = classroom.import_submissions(tmp_path / "export.zip", LAB, tmp_path / "g")
    assert sorted(students) == ["ada_lovelace", "evil", "grace"]
    assert len(problems) == 1 and "bob" in problems[0] and "rename" in problems[0]
    assert not (tmp_path / "g" / "submitted" / "bob").exists(), "neither bob overwrites the other"
    assert (tmp_path / "g" / "submitted" / "evil" / LAB / f"{LAB}.ipynb").exists()
    assert not (tmp_path / "evil.ipynb").exists()
    with pytest.raises(ValueError, match="expected a folder or a zip"):
        classroom.import_submissions(tmp_path / "missing", LAB, tmp_path / "g")
