"""The student bundle carries no solution text of a lab that is not due, and no hidden test of any lab."""
import re
import subprocess
import sys

import nbformat
import pytest

from autograders.bundle import ROOT, write_bundle

REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(?P<body>.*?)### END \1", re.S)


def answer_lines(kind: str) -> set[str]:
    """Distinctive lines (>= 25 characters) inside SOLUTION or HIDDEN TESTS regions of every source notebook."""
    lines = set()
    for notebook in (ROOT / "solutions").glob("*/*.ipynb"):
        for cell in nbformat.read(notebook, as_version=4).cells:
            for match in REGION.finditer(cell.source):
                if match[1] == kind:
                    lines |= {l.strip() for l in match["body"].splitlines() if len(l.strip()) >= 25}
    return lines


def bundle_text(folder) -> str:
    return "\n".join(p.read_text(errors="ignore") for p in folder.rglob("*")
                     if p.is_file() and p.suffix in (".py", ".ipynb", ".md", ".cu", ".h", ".toml", ".txt"))


@pytest.fixture(scope="module")
def nothing_due(tmp_path_factory):
    return write_bundle(tmp_path_factory.mktemp("bundle") / "student", due=set())


def test_no_solution_or_hidden_test_in_the_bundle(nothing_due):
    text = bundle_text(nothing_due)
    solutions, hidden = answer_lines("SOLUTION"), answer_lines("HIDDEN TESTS")
    assert solutions and hidden
    leaked = [line for line in solutions | hidden if line in text]
    assert not leaked, f"answer text in the bundle: {leaked[:5]}"
    assert not (nothing_due / "solutions").exists() and not (nothing_due / "autograders").exists()


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
