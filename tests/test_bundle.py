"""The student bundle carries no solution text of a lab that is not due, and no hidden test of any lab."""
import subprocess
import sys

import nbformat
import pytest

from autograders.bundle import ROOT, answer_lines, gives_away, write_bundle

TEXT = (".py", ".ipynb", ".md", ".cu", ".h", ".toml", ".txt")


@pytest.fixture(scope="module")
def nothing_due(tmp_path_factory):
    return write_bundle(tmp_path_factory.mktemp("bundle") / "student", due=set())


def test_no_solution_or_hidden_test_in_the_bundle(nothing_due):
    answers = answer_lines(kind="SOLUTION")
    hidden = {line for lines in answer_lines(kind="HIDDEN TESTS").values() for line in lines}
    assert answers and hidden
    leaks = {p.relative_to(nothing_due).as_posix(): found for p in sorted(nothing_due.rglob("*"))
             if p.is_file() and p.suffix in TEXT and (found := gives_away(p.read_text(errors="ignore"), answers))}
    text = "\n".join(p.read_text(errors="ignore") for p in nothing_due.rglob("*") if p.is_file() and p.suffix in TEXT)
    assert not leaks, f"answer text in the bundle: {leaks}"
    assert not [line for line in hidden if line in text], "hidden tests in the bundle"
    assert not (nothing_due / "solutions").exists() and not (nothing_due / "autograders").exists()


def test_leak_detector_sees_a_copied_answer(tmp_path):
    answers = answer_lines({"lab01_metrics"})
    exercise, lines = max(answers.items(), key=lambda item: len(item[1]))
    assert exercise in gives_away("\n".join(lines), answers)
    assert not gives_away(sorted(lines)[0], answers), "one line in common is not an answer"


def test_stubbed_library_still_imports_and_says_why(nothing_due):
    code = ("import tinyml_lib.metrics as m, torch\n"
            "try:\n    m.count_params(torch.nn.Linear(2, 2))\nexcept NotImplementedError as e:\n    print('stub:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=nothing_due, capture_output=True, text=True, check=True)
    assert "not due yet" in out.stdout
    assert "HOROWITZ_45NM_PJ" in (nothing_due / "tinyml_lib" / "metrics.py").read_text()  # constants stay


def test_due_labs_keep_their_answers(tmp_path):
    out = write_bundle(tmp_path / "student", due={"lab01_metrics"})
    assert (out / "tinyml_lib" / "metrics.py").read_text() == (ROOT / "tinyml_lib" / "metrics.py").read_text()
    assert (out / "labs" / "lab01_metrics" / "lab01_metrics.ipynb").exists() and (out / "data" / "MANIFEST.json").exists()
