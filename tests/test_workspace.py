"""The student workspace: no answer of an unrevealed lab in it or on its Python path, the student's exports become
their library (kept across syncs), a revealed lab gets the reference, an updated lab lands beside the student's copy."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograders.answers import ROOT, answer_lines, gives_away, lab_names, lab_units
from autograders.mutation import load_mutants, mutant_code
from autograders.workspace import kernel_env, read_state, sync, write_state

TEXT = (".py", ".ipynb", ".md", ".cu", ".h", ".toml", ".txt", ".json")
POINTER = re.compile(r"\b(kernels/[\w.]+\.cuh?|tinyml_lib/[\w/]+\.py)\b")


def texts(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text(errors="ignore") for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix in TEXT and "data" not in p.relative_to(folder).parts[:2]}


def run_in(ws: Path, code: str, cwd: Path | None = None) -> str:
    """Run `code` as a workspace kernel would (same environment), in `cwd` (default: Lab 01's folder)."""
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd or ws / "lab01_metrics", env=kernel_env(ws),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("ws") / "workspace"
    sync(ws)
    return ws


def mutant_lines() -> dict[str, set[str]]:
    """Per mutant ("lab/exercise/description"), its own lines: in no student release and in no answer (the answers
    have a test of their own, and a mutant shares most of its lines with the answer)."""
    public = "\n".join(p.read_text() for p in (ROOT / "labs").glob("*/*.ipynb"))
    public += "\n".join(line for lines in answer_lines(kind="SOLUTION").values() for line in lines)
    found = {}
    for lab in lab_names():
        for exercise, mutants in load_mutants(lab).items():
            for description, code in mutants.items():
                lines = {line.strip() for line in mutant_code(code).splitlines() if len(line.strip()) >= 25}
                found[f"{lab}/{exercise}/{description}"] = {l for l in lines if json.dumps(l)[1:-1] not in public}
    return {name: lines for name, lines in found.items() if lines}


def test_fresh_workspace_holds_no_answer_hidden_test_or_mutant(fresh):
    answers = answer_lines(kind="SOLUTION")
    hidden = {line for lines in answer_lines(kind="HIDDEN TESTS").values() for line in lines}
    mutants = mutant_lines()
    assert answers and hidden and mutants
    files = texts(fresh)
    assert any(name.startswith("lib/tinyml_lib/metrics") for name in files) and "lab01_metrics/lab01_metrics.ipynb" in files
    leaks = {name: found for name, text in files.items() if (found := gives_away(text, answers))}
    assert not leaks, f"answer text in the workspace: {leaks}"
    everything = "\n".join(files.values())
    assert not [line for line in hidden if line in everything], "hidden tests in the workspace"
    assert not gives_away(everything, mutants), "mutant code in the workspace"


def test_python_path_reaches_only_the_workspace_library(fresh):
    code = ("import importlib, importlib.util as u, json, pkgutil, sys, tinyml_lib\n"
            "mods = {m.name: importlib.util.find_spec(m.name).origin for m in "
            "pkgutil.walk_packages(tinyml_lib.__path__, 'tinyml_lib.')}\n"
            "print(json.dumps({'path': sys.path, 'lib': tinyml_lib.__file__, 'mods': mods,\n"
            "  'other': [n for n in ('autograders', 'solutions', 'tests', 'labs') if u.find_spec(n)]}))")
    seen = json.loads(run_in(fresh, code))
    lib = fresh / "lib" / "tinyml_lib"
    assert Path(seen["lib"]).is_relative_to(lib)
    assert seen["mods"] and all(Path(origin).is_relative_to(lib) for origin in seen["mods"].values())
    assert seen["other"] == [], "the course's instructor folders are importable from the workspace"
    answers = answer_lines(kind="SOLUTION")
    for entry in seen["path"]:
        folder = Path(entry or fresh / "lab01_metrics").resolve()
        if folder.is_dir() and (folder.is_relative_to(ROOT) or folder.is_relative_to(fresh)):
            leaks = {n: f for n, t in texts(folder).items() if (f := gives_away(t, answers))}
            assert not leaks, f"answers on the Python path, under {folder}: {leaks}"


def test_lab_text_points_to_no_file_holding_an_answer(fresh):
    answers = answer_lines(kind="SOLUTION")
    pointers = set()
    for lab in lab_names():
        for cell in nbformat.read(fresh / lab / f"{lab}.ipynb", as_version=4).cells:
            pointers |= set(POINTER.findall(cell.source))
    assert pointers, "the labs name library and kernel files (the test looks at them)"
    for pointer in sorted(pointers):
        target = fresh / "lib" / pointer
        assert target.is_file(), f"lab text points to {pointer}, which the workspace does not have"
        assert not gives_away(target.read_text(), answers), f"lab text points to {pointer}, which holds an answer"


def test_stub_names_lab_section_and_function_and_a_withheld_kernel_says_why(fresh):
    out = run_in(fresh, (
        "import torch, tinyml_lib.metrics as m\n"
        "try:\n    m.count_params(torch.nn.Linear(2, 2))\nexcept NotImplementedError as e:\n    print(e)\n"
        "from tinyml_lib.kernels import load_kernel\n"
        "try:\n    load_kernel('../lib/kernels/int8_gemm.cu', 'int8_gemm_v3')\nexcept FileNotFoundError as e:\n    print(e)\n"))
    assert "count_params (Lab 01 §1 Parameters and model size)" in out and "make reveal LAB=lab01_metrics" in out
    assert "int8_gemm.cu: this file answers a graded kernel exercise of lab03b_low_bit" in out


def answered_notebook(ws: Path, lab: str, answered: set[str]) -> Path:
    """The student's copy of `lab` with the functions in `answered` written (the reference's bodies pasted in)."""
    solution = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source
                for c in nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4).cells}
    path = ws / lab / f"{lab}.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in answered:
            cell.source = "\n".join(l for l in solution[cell.metadata.nbgrader.grade_id].splitlines() if "### " not in l)
    nbformat.write(nb, path)
    return path


def test_export_writes_the_students_library_and_sync_keeps_it(tmp_path):
    ws = tmp_path / "workspace"
    sync(ws)
    answered_notebook(ws, "lab01_metrics", {"count_params", "model_size_bytes"})
    out = run_in(ws, "from tinyml_lib.student import export_lab\nprint(export_lab('lab01_metrics'))")
    assert "'exported': ['count_params', 'model_size_bytes']" in out
    sync(ws, reveal={"lab01_metrics"}, solutions=False)   # a later sync, even a reveal, keeps the student's own
    module = (ws / "lib" / "tinyml_lib" / "metrics" / "__init__.py").read_text()
    assert module.startswith("# Exported by tinyml_lib.student.export_lab from your notebook lab01_metrics.ipynb")
    out = run_in(ws, (
        "import torch, tinyml_lib.metrics as m\nprint('mine', m.count_params(torch.nn.Linear(3, 4)))\n"
        "try:\n    m.count_macs(torch.nn.Linear(3, 4), (1, 3))\nexcept NotImplementedError as e:\n    print(e)\n"
        "from tinyml_lib.student import library_status\nlibrary_status()"), cwd=ws / "lab02_pruning")
    assert "mine 16" in out and "count_macs (Lab 01 §2 MACs and FLOPs) is not in your library yet" in out
    assert re.search(r"lab01_metrics\s+yours \(exported", out) and re.search(r"lab02_pruning\s+stubs", out)


def test_reveal_fills_in_the_reference_and_its_kernels(tmp_path):
    ws = tmp_path / "workspace"
    messages = sync(ws, reveal={"lab02_pruning"})
    assert any("revealed: lab02_pruning" in m for m in messages)
    assert (ws / "lib" / "tinyml_lib" / "pruning" / "__init__.py").read_text() == \
        (ROOT / "tinyml_lib" / "pruning" / "__init__.py").read_text()
    assert (ws / "lib" / "kernels" / "sparse_matvec.cu").read_text() == (ROOT / "kernels" / "sparse_matvec.cu").read_text()
    assert (ws / "lab02_pruning" / "lab02_pruning.solution.ipynb").is_file()
    assert "is not in your library yet" in (ws / "lib" / "tinyml_lib" / "quantization" / "linear.py").read_text()
    with pytest.raises(ValueError, match="expected lab names"):
        sync(ws, reveal={"lab99_nothing"})


def test_an_updated_release_lands_beside_the_students_copy(tmp_path):
    ws = tmp_path / "workspace"
    sync(ws)
    mine = ws / "lab01_metrics" / "lab01_metrics.ipynb"
    mine.write_text(mine.read_text().replace("Efficiency metrics", "Efficiency metrics (my notes)", 1))
    before = mine.read_text()
    state = read_state(ws)
    state["releases"]["lab01_metrics"] = "an older release"
    write_state(ws, state)
    messages = sync(ws)
    assert mine.read_text() == before, "a sync wrote over the student's notebook"
    beside = list((ws / "lab01_metrics").glob("lab01_metrics.release-*.ipynb"))
    assert len(beside) == 1 and any("lab01_metrics was updated" in m for m in messages)
    assert sync(ws) == [], "a second sync with nothing new says nothing"


# Labs whose answers are all C in the notebook, with no export cell: nothing of theirs goes into the library.
C_ONLY = {"lab06_loops"}


def test_each_lab_has_one_package_and_infrastructure_lives_apart():
    units = lab_units()
    assert set(units) == set(lab_names()) - C_ONLY and len(set(units.values())) == len(units)
    for unit in units.values():
        assert (ROOT / "tinyml_lib" / unit / "__init__.py").is_file(), f"tinyml_lib/{unit} is not a package"
        for module in (ROOT / "tinyml_lib" / unit).rglob("*.py"):
            text = module.read_text()
            generated = text.startswith("# Generated by `make library`")
            assert generated or not [n for n in ast.parse(text).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))], \
                f"{module.relative_to(ROOT)}: hand-written code inside a lab's package (move it to the infrastructure)"


def test_the_course_tools_import_each_other_without_a_circle():
    """autograders/*.py, with imports inside functions counted too: the graph of who imports whom has no cycle."""
    modules = {p.stem: p for p in (ROOT / "autograders").glob("*.py") if p.stem != "__init__"}
    graph = {name: {alias.name.split(".")[1] if isinstance(node, ast.Import) else node.module.split(".")[1]
                    for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in (node.names if isinstance(node, ast.Import) else node.names[:1])
                    if ((alias.name if isinstance(node, ast.Import) else node.module or "").startswith("autograders."))}
             for name, path in modules.items()}

    def cycle_from(name, path):
        for nxt in sorted(graph.get(name, ())):
            if nxt in path:
                return path[path.index(nxt):] + [nxt]
            if (found := cycle_from(nxt, path + [nxt])):
                return found
        return None

    cycles = [c for name in graph if (c := cycle_from(name, [name]))]
    assert not cycles, f"import circle among the course tools: {' -> '.join(cycles[0])}"
    assert graph["workspace"] and graph["bundle"] == {"answers", "workspace"}


def test_make_lab_prints_the_url_it_got_and_a_second_one_prints_the_running_one(tmp_path):
    import os
    import signal
    import time
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "s"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "w"))
    cmd = [sys.executable, "-m", "autograders.workspace", "--workspace", str(tmp_path / "ws"), "lab", "--port", "0"]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             start_new_session=True)
    try:
        deadline, url = time.monotonic() + 90, None
        while url is None and time.monotonic() < deadline:
            line = first.stdout.readline()
            if match := re.search(r"is open at: (http://127\.0\.0\.1:(\d+)/lab\?token=\w+)", line):
                url = match[1]
        assert url and not url.startswith("http://127.0.0.1:0/"), "the first `make lab` printed no real URL"
        second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0 and f"already serves your workspace: {url}" in second.stdout
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=20)
