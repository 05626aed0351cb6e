"""Headless nbgrader commands for the course (no JupyterHub, no exchange). The repository is the course root.

    python -m autograders.course release            # export the library, regenerate labs/ from solutions/
    python -m autograders.course check-release      # exit 1 if labs/ or tinyml_lib's generated modules are stale
    python -m autograders.course feedback LAB       # HTML feedback into grading/feedback/
    python -m autograders.course grades [CSV]       # export every grade to a CSV (default grading/grades.csv)

nbgrader reports a failing notebook with exit code 0 and a score of 0, so callers read scores from the gradebook.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from autograders.answers import ROOT, lab_names

def nbgrader(*args: str, grading_dir: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader command from the course root; `grading_dir` overrides where submissions and the gradebook live."""
    # nbgrader runs `alembic` (the gradebook's migrations) by name: put this interpreter's scripts first on PATH.
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if grading_dir is not None:
        env["TINYML_GRADING_DIR"] = str(grading_dir)
    cmd = [sys.executable, "-m", "nbgrader", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def export_library() -> None:
    """Write tinyml_lib's generated modules from the solution notebooks."""
    subprocess.run([sys.executable, "-m", "tinyml_lib.export"], cwd=ROOT, check=True)


def generate_release(lab: str, release_dir: Path) -> Path:
    """Generate the student notebook of `lab` into `release_dir`/lab (nbgrader generate_assignment, no gradebook),
    with stubs that say what to write and where (autograders/release_stubs.py)."""
    from autograders.release_stubs import teach_release_file
    nbgrader("generate_assignment", lab, "--force", "--no-db",
             f"--CourseDirectory.release_directory={release_dir}")
    notebook = release_dir / lab / f"{lab}.ipynb"
    teach_release_file(notebook)
    return notebook


def _notebook_json(path: Path) -> dict:
    return json.loads(path.read_text())


def stale_releases() -> list[str]:
    """Labs whose committed labs/<lab>/<lab>.ipynb differs from a fresh generate_assignment of the source."""
    stale = []
    with tempfile.TemporaryDirectory() as tmp:
        for lab in lab_names():
            fresh, committed = generate_release(lab, Path(tmp)), ROOT / "labs" / lab / f"{lab}.ipynb"
            if not committed.exists() or _notebook_json(fresh) != _notebook_json(committed):
                stale.append(lab)
    return stale


def release() -> None:
    """Regenerate the library and every student notebook in labs/."""
    export_library()
    for lab in lab_names():
        print(f"released {generate_release(lab, ROOT / 'labs').relative_to(ROOT)}")


def check_release() -> int:
    """Exit status 1 (with a message) if the committed library or release is stale."""
    from tinyml_lib.export import stale_modules
    problems = [f"stale library module {p.relative_to(ROOT)}" for p in stale_modules()]
    problems += [f"stale release labs/{lab}" for lab in stale_releases()]
    for line in problems:
        print(f"{line}: run `make release` and commit the result")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="headless nbgrader commands for the course")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release")
    sub.add_parser("check-release")
    sub.add_parser("feedback").add_argument("lab")
    sub.add_parser("grades").add_argument("csv", nargs="?", default=str(ROOT / "grading" / "grades.csv"))
    args = parser.parse_args(argv)
    if args.command == "release":
        release()
    elif args.command == "check-release":
        return check_release()
    elif args.command == "feedback":
        print(nbgrader("generate_feedback", args.lab, "--force").stderr)
    elif args.command == "grades":
        print(nbgrader("export", "--to", args.csv).stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
