"""The trusted re-check (autograders/recheck.py), the verdicts of a graded run (sandbox.settle_grades), the cgroup
limits (autograders/cgroups.py) and what grading reads of a submission folder (autograders/submission.py)."""
from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from autograders.cgroups import Cgroup
from autograders.course import ROOT
from autograders.recheck import cell_names, select_cells
from autograders.sandbox import RECHECK, Limits, execute_submission, sandbox_problem, settle_grades
from autograders.submission import find_notebook, merge_submission

LAB = "lab01_metrics"


def cells(*specs: tuple[str, str]) -> list[dict]:
    return [{"kind": kind, "id": f"c{i}", "source": source} for i, (kind, source) in enumerate(specs)]


def test_names_a_cell_binds_mutates_and_needs():
    bound, mutated, needs = cell_names("for x in xs:\n    y = f(x)\nmodel.train()\nz = lambda a: a + w\n"
                                       "def g(p):\n    q = p + r\n    return q\n")
    assert {"x", "y", "z", "g"} <= bound and "model" in mutated
    assert needs == {"xs", "f", "model", "w", "r"}, needs   # loop target, parameters and locals are not needs
    assert cell_names("def broken(:") is None


def test_tests_that_need_an_experiment_cell_are_left_out():
    spec = cells(("setup", "import numpy as np\nfrom lib import check"),
                 ("answer", "def f(x):\n    return 2 * x"),
                 ("plain", "RESULT = f(np.ones(3))\nnp.random.seed(1)\nplot.show()"),
                 ("test", "check(f(1) == 2)"),            # needs only the answer: re-checked
                 ("test", "check(RESULT.sum() == 6)"),     # needs the experiment: kernel only
                 ("test", "check(np.all(f(np.ones(2)) == 2))"))   # a call on a module taints nothing
    kept = [c["id"] for c in select_cells(spec)]
    assert kept == ["c0", "c1", "c3", "c5"], kept


def run_recheck(spec: list[dict]) -> list[dict]:
    job = {"cells": spec, "modules": ["tinyml_lib.grading", "tinyml_lib.timing", "time", "builtins"]}
    out = subprocess.run([sys.executable, "-P", str(RECHECK)], input=json.dumps(job), capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_recheck_restores_checkers_and_clock_and_reports_each_test():
    spec = cells(("setup", "import time\nfrom tinyml_lib.grading import check_equal\nimport tinyml_lib.grading as g"),
                 ("answer", "def f():\n    return 1\n"
                            "check_equal = lambda *a, **k: None\n"          # a checker redefined ...
                            "g.check_equal = check_equal\n"                # ... and patched in its module
                            "time.perf_counter = lambda: 0.0\n"
                            "print('to /dev/null')"),
                 ("test", "check_equal(f(), 2, 'f()')"),
                 ("test", "assert time.perf_counter() > 0"),
                 ("test", "check_equal(f(), 1, 'f()')"),
                 ("answer", "def broken(:\n    pass"),
                 ("test", "raise SystemExit(0)"))
    verdicts = run_recheck(spec)
    assert [v.get("id") for v in verdicts] == ["c2", "c3", "c4", "c6", None] and verdicts[-1] == {"done": True}
    assert [v.get("ok") for v in verdicts[:4]] == [False, True, True, False]
    assert "got 1, expected 2" in verdicts[0]["error"] and verdicts[3]["error"].startswith("SystemExit")


def grade_cell(gid: str, outputs: list) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("check()")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": gid, "points": 1, "solution": False, "locked": True}
    cell.outputs = outputs
    return cell


def test_verdicts_come_from_replies_and_the_recheck_not_from_outputs():
    stream = nbformat.v4.new_output("stream", name="stderr", text="a warning\n")
    shown = nbformat.v4.new_output("execute_result", data={"text/plain": "1000.0"}, execution_count=1)
    nb = nbformat.v4.new_notebook(cells=[grade_cell("passes", [stream, shown]), grade_cell("timed_out", []),
                                         grade_cell("fooled_kernel", []), grade_cell("kernel_only", []),
                                         grade_cell("never_ran", []), grade_cell("recheck_stopped", [])])
    replies = {0: (True, "", ""), 1: (False, "CellTimeoutError", "cell ran over 30 s"), 2: (True, "", ""),
               3: (True, "", ""), 5: (True, "", "")}
    rechecked = {"passes": (True, ""), "fooled_kernel": (False, "AssertionError: f(): expected 2, got 1"),
                 "recheck_stopped": None}   # in the re-check, which stopped before its verdict
    failed = settle_grades(nb, replies, rechecked, "the re-check ran over its time limit", "the kernel died")
    assert failed == ["fooled_kernel", "recheck_stopped"]
    kinds = [[o.output_type for o in c.outputs] for c in nb.cells]
    assert kinds == [["stream", "display_data"], ["error"], ["error"], [], ["error"], ["error"]], kinds
    assert "ran over its time limit" in nb.cells[5].outputs[0].evalue
    assert nb.cells[0].outputs[0].name == "stdout", "a passing cell's stderr is not read as a failure"
    assert nb.cells[1].outputs[0].ename == "CellTimeoutError"
    assert nb.cells[2].outputs[0].ename == "RecheckFailed" and "expected 2, got 1" in nb.cells[2].outputs[0].evalue
    assert nb.cells[4].outputs[0].evalue == "the kernel died"


def test_symlinked_notebook_and_forged_metadata(tmp_path):
    source = nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    release = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    (tmp_path / f"{LAB}.ipynb").symlink_to(ROOT / "solutions" / LAB / f"{LAB}.ipynb")
    path, note = find_notebook(tmp_path, LAB)
    assert path is None and "symbolic link" in note
    forged = nbformat.v4.new_code_cell("x = 1")
    forged.metadata["nbgrader"] = {"grade": True, "points": 99, "solution": True}
    submitted = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    submitted.cells.append(forged)
    merged = merge_submission(release, source, submitted)
    assert merged.cells[-1].source == "x = 1" and "nbgrader" not in merged.cells[-1].metadata


@pytest.mark.skipif(Cgroup.unavailable() is not None, reason=f"no cgroups: {Cgroup.unavailable()}")
def test_cgroup_counts_children_and_caps_processes():
    grow = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'b = bytearray(400 << 20); b[::4096] = b\"x\" * len(b[::4096])'], check=True)"
    with Cgroup(memory_bytes=200 << 20, processes=64) as group:
        child = subprocess.run([*group.prefix(), sys.executable, "-c", grow], capture_output=True)
        assert child.returncode != 0, "a child's 400 MB fits in a 200 MB group"
        forks = subprocess.run([*group.prefix(), "/bin/sh", "-c", "for i in $(seq 200); do sleep 2 & done; wait"],
                               capture_output=True, text=True)
        assert "fork" in forks.stderr.lower() or "resource" in forks.stderr.lower(), forks.stderr
        folders = list(group.folders)
    assert not any(f.exists() for f in folders), "the group was not removed"


def _graded_notebook(code: str, test: str = "assert ANSWER == 2"):
    """A notebook of one plain cell `code`, one answer cell and one test cell; its re-check job (recheck_spec's form)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code), nbformat.v4.new_code_cell("ANSWER = 2"), nbformat.v4.new_code_cell(test)]
    nb.cells[1].metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "answer", "locked": False}
    nb.cells[2].metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 1, "solution": False, "locked": True}
    job = {"cells": [{"kind": "answer", "id": "answer", "source": "ANSWER = 2"}, {"kind": "test", "id": "t", "source": test}],
           "modules": ["tinyml_lib.grading", "tinyml_lib.timing", "time", "builtins"], "preload": ["numpy"]}
    return nbformat.writes(nb), job


def _outputs(run: dict) -> str:
    return "".join(o.get("text", "") for c in nbformat.reads(run["notebook"], 4).cells for o in c.get("outputs", []))


@pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox: {sandbox_problem()}")
def test_the_waiting_recheck_is_out_of_the_kernels_reach():
    # The re-check process forked by the launcher: no ptrace, no memory, no file descriptor of it (or of the
    # launcher) is open to the kernel's code, so no forged verdict line reaches the grader.
    from autograders.adversarial import RECHECK_REACH
    # The test passes in the kernel (the plain cell ran there) and fails in the re-check (it runs no plain cell):
    # only a forged verdict line could make it count.
    nb, job = _graded_notebook("GRADE_IDS = ['t']\n" + RECHECK_REACH + "\nPLAIN = 1", test="assert 'PLAIN' in globals()")
    run = execute_submission(nb, {}, str(ROOT), recheck=job)
    assert "reached: []" in _outputs(run), _outputs(run)
    assert run["recheck_failed"] == ["t"] and not run["recheck_fresh"], run["stopped"]


@pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox: {sandbox_problem()}")
def test_a_killed_recheck_runs_again_in_a_fresh_sandbox_and_a_dead_kernel_is_seen_at_once():
    from autograders.adversarial import KILL_OTHERS
    nb, job = _graded_notebook(KILL_OTHERS)
    run = execute_submission(nb, {}, str(ROOT), recheck=job)
    assert run["recheck_failed"] == [] and run["stopped"] is None and run["recheck_fresh"], run
    nb, job = _graded_notebook("import os\nos._exit(3)")
    run = execute_submission(nb, {}, str(ROOT), recheck=job, limits=Limits(cell_seconds=60))
    assert "the kernel died" in run["stopped"] and run["seconds"] < 30, run
