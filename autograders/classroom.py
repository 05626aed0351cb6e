"""Grade a class: each submission in its own sandbox, in parallel on every core or on a Dask cluster.

    python -m autograders.classroom LAB                   # grading/submitted/<student>/LAB/*.ipynb
    python -m autograders.classroom LAB --import DIR|ZIP  # first copy <student>.ipynb files (an LMS export) in
    options: --workers N (default: all cores), --scheduler tcp://host:8786 (a running Dask cluster whose workers see
             this folder and have bubblewrap), --regrade (also submissions already graded), --cell-timeout S,
             --notebook-timeout S, --memory-gb G, --unsandboxed (refused unless given where no sandbox can be had)

What runs where: this process prepares every notebook (tests restored, autograders/submission.py), Dask workers only
execute them, each in a bubblewrap sandbox (autograders/sandbox.py), and this process alone writes the gradebook, the
autograded notebooks, the CSV of grades and the feedback. A submission whose files and tests did not change since it
was last graded is not graded again.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from nbgrader.preprocessors import LimitOutput, SaveAutoGrades
from sqlalchemy.exc import SAWarning

from autograders.answers import IGNORE, stub_library, withhold_kernels
from autograders.course import ROOT, lab_names, nbgrader
from autograders.mutation import nbgrader_meta, sections
from autograders.sandbox import COURSE, HOME, Limits, execute_submission, sandbox_problem
from autograders.submission import find_notebook, fingerprint, merge_submission

STUDENT_ID = re.compile(r"[^A-Za-z0-9_.-]+")


def grading_dir() -> Path:
    return Path(os.environ.get("TINYML_GRADING_DIR", ROOT / "grading"))


@dataclass
class Job:
    student: str
    folder: Path
    notebook: str | None        # the graded notebook (JSON) or None when there is nothing to run
    note: str = ""
    fingerprint: str = ""


@dataclass
class ClassResult:
    scores: dict[str, dict[str, float]] = field(default_factory=dict)   # student -> grade cell -> score
    graded: list[str] = field(default_factory=list)                    # students graded in this run
    notes: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)            # per submission, in its sandbox
    wall_seconds: float = 0.0


# ---------------------------------------------------------------------------------------------- inputs
def import_submissions(source: Path, lab: str, grading: Path) -> list[str]:
    """Copy `<student>.ipynb` files from a folder or a zip (an LMS export) to grading/submitted/<student>/<lab>/."""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive, tempfile.TemporaryDirectory() as tmp:
            for info in archive.infolist():
                name = Path(info.filename).name  # never a path from the archive
                if name.endswith(".ipynb") and not info.is_dir():
                    (Path(tmp) / name).write_bytes(archive.read(info))
            return import_submissions(Path(tmp), lab, grading)
    if not source.is_dir():
        raise ValueError(f"--import: expected a folder or a zip of <student>.ipynb notebooks, got {source}")
    students = []
    for notebook in sorted(source.glob("*.ipynb")):
        student = STUDENT_ID.sub("_", notebook.stem).strip("_.") or "unnamed"
        dest = grading / "submitted" / student / lab / f"{lab}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(notebook, dest)
        students.append(student)
    return students


def prepare_course(lab: str, grading: Path, sandboxed: bool = True) -> tuple[Path, dict[str, str]]:
    """The course as the sandbox sees it: tinyml_lib with the answers of `lab` and later labs stubbed, data, kernels.

    Returns the folder to mount at /course and the extra read-only mounts (sandbox path -> host path).
    """
    course = grading / "sandbox" / lab / "course"
    if course.exists():
        shutil.rmtree(course)
    shutil.copytree(ROOT / "tinyml_lib", course / "tinyml_lib", ignore=IGNORE)
    stub_library(course / "tinyml_lib", {name for name in lab_names() if name < lab})
    due = {name for name in lab_names() if name < lab}
    shutil.copytree(ROOT / "kernels", course / "kernels", ignore=IGNORE)
    withhold_kernels(course / "kernels", due)
    mounts = {}
    if sandboxed:
        (course / "data").mkdir()
        mounts[f"{COURSE}/data"] = str(ROOT / "data")
    else:
        (course / "data").symlink_to(ROOT / "data")
    model_cache = Path(os.environ.get("TINYML_CACHE") or Path.home() / ".cache" / "tinyml_lib") / "smollm2-135m"
    if "smollm2" in (ROOT / "solutions" / lab / f"{lab}.ipynb").read_text().lower() and not model_cache.is_dir():
        build_model_cache()
    if model_cache.is_dir() and sandboxed:
        mounts[f"{HOME}/.cache/tinyml_lib/smollm2-135m"] = str(model_cache)
    return course, mounts


def build_model_cache() -> None:
    """Dequantise SmolLM2 into the user cache once, here, so that no sandbox builds its own copy."""
    import subprocess
    subprocess.run([sys.executable, "-c", "from tinyml_lib.lm.smollm2 import load_smollm2; load_smollm2()"],
                   cwd=ROOT, check=True)


def release_notebooks(lab: str, grading: Path) -> tuple:
    """(release, source) notebooks of `lab`; registers the lab in the gradebook (nbgrader generate_assignment)."""
    release_dir = grading / "release"
    nbgrader("generate_assignment", lab, "--force", f"--CourseDirectory.release_directory={release_dir}",
             grading_dir=grading)
    release = nbformat.read(release_dir / lab / f"{lab}.ipynb", as_version=4)
    return release, nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)


def state_path(grading: Path, lab: str) -> Path:
    return grading / "classroom" / f"{lab}.json"


def load_state(grading: Path, lab: str) -> dict[str, str]:
    """student -> fingerprint of the submission last graded."""
    path = state_path(grading, lab)
    return json.loads(path.read_text()) if path.exists() else {}


def save_state(grading: Path, lab: str, state: dict[str, str]) -> None:
    state_path(grading, lab).parent.mkdir(parents=True, exist_ok=True)
    state_path(grading, lab).write_text(json.dumps(state, indent=1))


def plan(lab: str, grading: Path, release, source, regrade: bool) -> list[Job]:
    """One job per submission that changed since it was last graded (every submission with `regrade`)."""
    state = load_state(grading, lab)
    tests_version = (ROOT / "solutions" / lab / f"{lab}.ipynb").read_bytes()
    jobs = []
    for folder in sorted((grading / "submitted").glob(f"*/{lab}")):
        student, digest = folder.parent.name, fingerprint(folder, tests_version)
        if not regrade and state.get(student) == digest and (grading / "autograded" / student / lab).is_dir():
            continue
        path, note = find_notebook(folder, lab)
        notebook = None
        if path is not None:
            try:
                submitted = nbformat.read(path, as_version=4)
                notebook = nbformat.writes(merge_submission(release, source, submitted))
            except Exception as exc:  # not a notebook: graded as empty
                note = f"{path.name} is not a readable notebook ({type(exc).__name__}: {exc})"
        jobs.append(Job(student, folder, notebook, note, digest))
    return jobs


# ---------------------------------------------------------------------------------------------- outputs
def save_grades(lab: str, student: str, executed, grading: Path, timestamp: str | None = None) -> None:
    """Write one executed notebook's scores to the gradebook and its autograded copy (the single writer)."""
    db_url = f"sqlite:///{grading / 'gradebook.db'}"
    with Gradebook(db_url) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own autograde raises the same on a new submission
        gb.update_or_create_student(student)
        gb.update_or_create_submission(lab, student, **({"timestamp": timestamp} if timestamp else {}))
    resources = {"nbgrader": {"notebook": lab, "assignment": lab, "student": student, "db_url": db_url}}
    executed, resources = LimitOutput().preprocess(executed, resources)
    executed, resources = SaveAutoGrades().preprocess(executed, resources)
    out = grading / "autograded" / student / lab
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    nbformat.write(executed, out / f"{lab}.ipynb")


def blank_result(release) -> nbformat.NotebookNode:
    """What a missing or unreadable submission is graded as: every test cell failed."""
    nb = nbformat.from_dict(json.loads(nbformat.writes(release)))
    for cell in nb.cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("grade"):
            cell.outputs = [nbformat.v4.new_output("error", ename="NoSubmission", evalue="nothing to grade",
                                                   traceback=["NoSubmission: nothing to grade"])]
    return nb


def read_scores(lab: str, grading: Path) -> dict[str, dict[str, float]]:
    """student -> grade cell -> score, from the gradebook."""
    scores = {}
    with Gradebook(f"sqlite:///{grading / 'gradebook.db'}") as gb:
        for submission in gb.find_assignment(lab).submissions:
            notebook = submission.notebooks[0]
            scores[submission.student_id] = {g.name: g.score for g in notebook.grades if g.cell.max_score}
    return scores


def exercise_columns(source) -> dict[str, list[str]]:
    """Exercise -> its grade cells, in notebook order (the columns of the summary)."""
    cells = source.cells
    return {ex: [nbgrader_meta(cells[i])["grade_id"] for i in idx if nbgrader_meta(cells[i]).get("grade")]
            for ex, idx in sections(source).items()}


def write_summary(lab: str, source, scores: dict, notes: dict, out: Path) -> str:
    """CSV per student and exercise (with total) at `out`; returns the same table as text."""
    columns = exercise_columns(source)
    header = ["student", *columns, "total", "note"]
    rows = [[student, *[f"{sum(cells.get(g, 0) or 0 for g in grade_ids):g}" for grade_ids in columns.values()],
             f"{sum(v or 0 for v in cells.values()):g}", notes.get(student, "")]
            for student, cells in sorted(scores.items())]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [header, *rows])


# ---------------------------------------------------------------------------------------------- the run
@contextmanager
def _client(workers: int | None, scheduler: str | None):
    """A Dask client: on the cluster at `scheduler`, else on a local cluster (one process per sandbox) closed after."""
    from dask.distributed import Client, LocalCluster
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    # No dashboard; the scheduler's own HTTP routes (health, metrics) listen on loopback at a free port, not on :8787.
    with LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True, memory_limit=0,
                      dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        yield client


def grade_class(lab: str, grading: Path | None = None, workers: int | None = None, scheduler: str | None = None,
                limits: Limits | None = None, regrade: bool = False, sandboxed: bool = True,
                progress: bool = True) -> ClassResult:
    """Grade every new or changed submission of `lab`; returns the class's scores (all students, not only new ones)."""
    if lab not in lab_names():
        raise ValueError(f"lab: expected one of {lab_names()}, got {lab!r}")
    grading = grading or grading_dir()
    start, result = time.perf_counter(), ClassResult()
    release, source = release_notebooks(lab, grading)
    course, mounts = prepare_course(lab, grading, sandboxed)
    jobs = plan(lab, grading, release, source, regrade)
    n_workers = workers or os.cpu_count() or 1
    limits = limits or Limits(threads=max(1, (os.cpu_count() or 1) // n_workers))
    state = load_state(grading, lab)
    runnable = [j for j in jobs if j.notebook is not None]
    for job in jobs:
        result.notes[job.student] = job.note
        if job.notebook is None:
            save_grades(lab, job.student, blank_result(release), grading)
            state[job.student] = job.fingerprint
    if runnable:
        from dask.distributed import as_completed
        from tqdm.auto import tqdm
        with _client(n_workers, scheduler) as client:
            futures = {client.submit(execute_submission, job.notebook, str(job.folder), str(course), limits, mounts,
                                     str(grading / "sandbox"), sandboxed, key=f"grade-{lab}-{job.student}"): job
                       for job in runnable}
            for future in tqdm(as_completed(futures), total=len(futures), desc=f"grading {lab}", disable=not progress):
                job, run = futures[future], future.result()
                save_grades(lab, job.student, nbformat.reads(run["notebook"], as_version=4), grading)
                result.seconds[job.student] = run["seconds"]
                if run["stopped"]:
                    result.notes[job.student] = "; ".join(filter(None, [job.note, run["stopped"]]))
                state[job.student] = job.fingerprint
                save_state(grading, lab, state)  # after each: an interrupted run keeps what it graded
    save_state(grading, lab, state)
    result.graded = [j.student for j in jobs]
    result.scores = read_scores(lab, grading)
    result.wall_seconds = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab")
    parser.add_argument("--import", dest="source", type=Path, help="folder or zip of <student>.ipynb to add first")
    parser.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: all cores)")
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    parser.add_argument("--regrade", action="store_true", help="grade every submission again")
    parser.add_argument("--cell-timeout", type=int, default=Limits.cell_seconds)
    parser.add_argument("--notebook-timeout", type=int, default=Limits.notebook_seconds)
    parser.add_argument("--memory-gb", type=float, default=Limits.memory_bytes / 2**30)
    parser.add_argument("--unsandboxed", action="store_true",
                        help="run kernels without a sandbox where none can be had (students' code then runs as you)")
    parser.add_argument("--no-feedback", action="store_true")
    args = parser.parse_args(argv)
    grading = grading_dir()
    problem = sandbox_problem()
    if problem and not args.unsandboxed:
        print(f"refusing to grade: {problem}.\nGrading runs students' code; without a sandbox it could read the "
              "gradebook and other submissions. Pass --unsandboxed to grade anyway.", file=sys.stderr)
        return 2
    if problem:
        print(f"WARNING: grading WITHOUT a sandbox ({problem})", file=sys.stderr)
    if args.source:
        print(f"imported {len(import_submissions(args.source, args.lab, grading))} submissions from {args.source}")
    workers = args.workers or os.cpu_count() or 1
    limits = Limits(cell_seconds=args.cell_timeout, notebook_seconds=args.notebook_timeout,
                    memory_bytes=int(args.memory_gb * 2**30), threads=max(1, (os.cpu_count() or 1) // workers))
    result = grade_class(args.lab, grading, workers, args.scheduler, limits, args.regrade, sandboxed=not problem)
    source = nbformat.read(ROOT / "solutions" / args.lab / f"{args.lab}.ipynb", as_version=4)
    table = write_summary(args.lab, source, result.scores, result.notes, grading / f"{args.lab}_grades.csv")
    print(table)
    print(f"graded {len(result.graded)} of {len(result.scores)} submissions in {result.wall_seconds:.0f} s; "
          f"grades in {grading / f'{args.lab}_grades.csv'}")
    if result.graded and not args.no_feedback:
        nbgrader("generate_feedback", args.lab, "--force", grading_dir=grading)
        print(f"feedback in {grading / 'feedback'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
