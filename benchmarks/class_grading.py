"""What sandboxed class grading costs: overhead per submission, and a whole class on every core.

    python benchmarks/class_grading.py --lab lab01_metrics --students 40

1. The solution notebook run plainly (nbclient, the course kernel, as a student runs it): T.
2. The same notebook graded alone by the class grader (sandbox, all cores for its one kernel): the kernel run K and
   the trusted re-check of its tests R (autograders/recheck.py, forked by autograders/launcher.py). Grading costs
   (K + R) / T of the notebook's own run (budget: <= 1.25); (K + R) / K is the re-check's share alone.
3. `--students` copies graded in parallel (one sandbox per core): wall time vs the budget students * T / cores * 1.2.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # autograders/

import nbformat
from nbclient import NotebookClient

from autograders import classroom
from autograders.course import ROOT
from autograders.sandbox import Limits


def plain_run(lab: str) -> float:
    nb = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "labs" / lab)}}).execute()
    return time.perf_counter() - start


def class_run(lab: str, students: int, workers: int) -> classroom.ClassResult:
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(students):
            dest = Path(tmp) / "submitted" / f"s{i:03d}" / lab
            dest.mkdir(parents=True)
            shutil.copy(ROOT / "solutions" / lab / f"{lab}.ipynb", dest)
        cores = os.cpu_count() or 1
        return classroom.grade_class(lab, Path(tmp), workers=workers, progress=False,
                                     limits=Limits(threads=max(1, cores // workers)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="lab01_metrics")
    parser.add_argument("--students", type=int, default=40, help="0: the single-submission figures only")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    plain = plain_run(args.lab)
    alone = class_run(args.lab, 1, workers=1)
    sandboxed, recheck = next(iter(alone.seconds.values())), next(iter(alone.recheck_seconds.values()))
    print(f"{args.lab}: plain run T = {plain:.1f} s; graded alone: kernel run K = {sandboxed:.1f} s in its sandbox, "
          f"re-check R = {recheck:.1f} s; grading / notebook run (K + R) / T = {(sandboxed + recheck) / plain:.2f} "
          f"(budget 1.25), (K + R) / K = {(sandboxed + recheck) / sandboxed:.2f}; "
          f"{alone.wall_seconds:.1f} s with set-up and gradebook")
    if not args.students:
        return
    whole = class_run(args.lab, args.students, workers=cores)
    budget = args.students * plain / cores * 1.2
    full = sum(1 for s in whole.scores.values() if all(v is not None for v in s.values()))
    print(f"{args.students} submissions on {cores} cores: {whole.wall_seconds:.0f} s (budget {budget:.0f} s = "
          f"{args.students} x {plain:.1f} s / {cores} x 1.2); {full} graded")


if __name__ == "__main__":
    main()
