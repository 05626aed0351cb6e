"""The student bundle is the student workspace with the due labs revealed: no answer of a lab not due, no hidden test
of any lab, the due labs' reference in its library, and what a student needs to set it up."""
from pathlib import Path

import nbformat
import pytest

from autograders.answers import ROOT, answer_lines, gives_away
from autograders.bundle import write_bundle

TEXT = (".py", ".ipynb", ".md", ".cu", ".h", ".toml", ".txt")


def test_bundle_with_lab01_due(tmp_path):
    out = write_bundle(tmp_path / "student", due={"lab01_metrics"})
    for name in ("Makefile", "START.md", "requirements.txt", "lab01_metrics/lab01_metrics.ipynb",
                 "lib/data/MANIFEST.json", "lib/workspace.json"):
        assert (out / name).is_file(), f"{name} missing from the bundle"
    assert not (out / "lib" / "data").is_symlink(), "the bundle carries its data"
    assert not (out / "solutions").exists() and not (out / "autograders").exists() and not (out / "tests").exists()
    assert not list(out.rglob("*.solution.ipynb")), "a class bundle carries no solution notebook"
    lib = out / "lib" / "tinyml_lib"
    assert (lib / "metrics" / "__init__.py").read_text() == (ROOT / "tinyml_lib" / "metrics" / "__init__.py").read_text()
    not_due = answer_lines({"lab02_pruning", "lab03_quantization", "lab03b_low_bit", "lab04_nas", "lab04b_cheap_nas",
                            "lab05_distillation", "lab05b_tiny_training", "lab06_loops", "lab07_llm"})
    hidden = {line for lines in answer_lines(kind="HIDDEN TESTS").values() for line in lines}
    text = {p.relative_to(out).as_posix(): p.read_text(errors="ignore") for p in out.rglob("*")
            if p.is_file() and p.suffix in TEXT and "data" not in p.relative_to(out).parts[:2]}
    leaks = {name: found for name, body in text.items() if (found := gives_away(body, not_due))}
    assert not leaks, f"answers of labs not due in the bundle: {leaks}"
    assert not [line for line in hidden if line in "\n".join(text.values())], "hidden tests in the bundle"
    assert "HOROWITZ_45NM_PJ" in (lib / "metrics" / "__init__.py").read_text()   # constants stay in stubs too
    assert "is not in your library yet" in (lib / "pruning" / "__init__.py").read_text()
    nb = nbformat.read(out / "lab01_metrics" / "lab01_metrics.ipynb", as_version=4)
    assert nb.cells[0].source == nbformat.read(ROOT / "labs" / "lab01_metrics" / "lab01_metrics.ipynb",
                                               as_version=4).cells[0].source


def test_leak_detector_sees_a_copied_answer():
    answers = answer_lines({"lab01_metrics"})
    exercise, lines = max(answers.items(), key=lambda item: len(item[1]))
    assert exercise in gives_away("\n".join(lines), answers)
    assert not gives_away(sorted(lines)[0], answers), "one line in common is not an answer"


def test_the_bundles_make_lab_serves_it_without_instructor_tools(tmp_path):
    """`make lab` inside an unzipped bundle (its own Makefile; the set-up stamp faked, this interpreter used)."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    out = write_bundle(tmp_path / "student", due=set())
    (out / ".venv").mkdir()
    (out / ".venv" / ".installed").touch()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "s"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "w"))
    proc = subprocess.Popen(["make", "lab", f"PY={sys.executable}", "PORT=0"], cwd=out, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, info = time.monotonic() + 60, None
        while info is None and time.monotonic() < deadline:
            assert proc.poll() is None, "the bundle's make lab exited"
            found = list((tmp_path / "runtime").glob("jpserver-*.json"))
            info = json.loads(found[0].read_text()) if found else None
            time.sleep(0.3)
        assert info and Path(info["root_dir"]).resolve() == out.resolve()
        base, token = info["url"].rstrip("/"), info["token"]
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{base}/formgrader?token={token}", timeout=5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
