"""Grade a class: each submission in its own sandbox, in parallel on every core or on a Dask cluster.

    python -m autograders.classroom LAB                   # grading/submitted/<student>/LAB/*.ipynb
    python -m autograders.classroom LAB --import DIR|ZIP  # first copy <student>.ipynb files (an LMS export) in
    options: --workers N (default: all cores), --scheduler tcp://host:8786 (a running Dask cluster whose workers see
             this folder and have bubblewrap), --regrade (also submissions already graded), --cell-timeout S,
             --notebook-timeout S, --memory-gb G, --unsandboxed (refused unless given where no sandbox can be had)

What runs where: this process prepares every notebook (tests restored, autograders/submission.py) and its re-check
(autograders/recheck.py), Dask workers only execute them, each in a bubblewrap sandbox (autograders/sandbox.py), and
this process alone writes the gradebook, the autograded notebooks, the CSV of grades and the feedback. A submission
whose files and tests did not change since it was last graded is not graded again.

One submission cannot stop the class: whatever goes wrong while grading it (an unreadable notebook, forged metadata,
a kernel that breaks the protocol, a time limit, a worker lost) is caught, the student gets the score of what ran
(zero where nothing did) and a note in the CSV and the summary, and the batch goes on.
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
from autograders.cgroups import Cgroup
from autograders.recheck import recheck_spec
from autograders.sandbox import COURSE, HOME, Limits, execute_submission, sandbox_problem
from autograders.submission import find_notebook, fingerprint, merge_submission, side_files

STUDENT_ID = re.compile(r"[^A-Za-z0-9_.-]+")
SIDE_FILE_BYTES = 64 * 2**20     # a submission's other files: each at most this, all together at most 4x this


def grading_dir() -> Path:
    return Path(os.environ.get("TINYML_GRADING_DIR", ROOT / "grading"))


@dataclass
class Job:
    student: str
    folder: Path
    notebook: str | None        # the graded notebook (JSON) or None when there is nothing to run
    note: str = ""
    fingerprint: str = ""
    files: dict[str, str] = field(default_factory=dict)   # side files: name in the sandbox -> staged host copy
    recheck: dict | None = None


@dataclass
class ClassResult:
    scores: dict[str, dict[str, float]] = field(default_factory=dict)   # student -> grade cell -> score
    graded: list[str] = field(default_factory=list)                    # students graded in this run
    notes: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)            # per submission, in its sandbox
    recheck_seconds: dict[str, float] = field(default_factory=dict)    # per submission, its trusted re-check
    limits: str = ""                                                   # which limits held (limits_in_force)
    wall_seconds: float = 0.0


# ---------------------------------------------------------------------------------------------- inputs
def import_submissions(source: Path, lab: str, grading: Path) -> tuple[list[str], list[str]]:
    """Copy the notebooks of a folder or a zip (an LMS export) to grading/submitted/<student>/<lab>/<lab>.ipynb.

    The student is the notebook's name (`alice.ipynb`), or its top folder when it sits in one (`alice/lab.ipynb`),
    reduced to letters, digits, `_`, `.` and `-`. Names that reduce to the same student are not imported: no student
    overwrites another. Returns (students imported, sentences about what was not).
    """
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive, tempfile.TemporaryDirectory() as tmp:
            for index, info in enumerate(archive.infolist()):
                parts = [p for p in Path(info.filename).parts if p not in ("", ".", "..", "/")]
                if info.is_dir() or not parts or not parts[-1].endswith(".ipynb"):
                    continue
                folder = Path(tmp) / (parts[0] if len(parts) > 1 else "")  # never a path from the archive below it
                folder.mkdir(exist_ok=True)
                (folder / parts[-1]).write_bytes(archive.read(info))
            return import_submissions(Path(tmp), lab, grading)
    if not source.is_dir():
        raise ValueError(f"--import: expected a folder or a zip of <student>.ipynb notebooks, got {source}")
    found: dict[str, list[Path]] = {}
    for notebook in sorted(source.glob("*.ipynb")) + sorted(source.glob("*/*.ipynb")):
        name = notebook.stem if notebook.parent == source else notebook.parent.name
        student = STUDENT_ID.sub("_", name).strip("_.") or "unnamed"
        found.setdefault(student, []).append(notebook)
    students, problems = [], []
    for student, notebooks in sorted(found.items()):
        if len(notebooks) > 1:
            problems.append(f"not imported: {', '.join(str(n.relative_to(source)) for n in notebooks)} would all be "
                            f"student {student!r}; rename them and import again")
            continue
        dest = grading / "submitted" / student / lab / f"{lab}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(notebooks[0], dest)
        students.append(student)
    return students, problems


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


def load_notes(grading: Path, lab: str) -> dict[str, str]:
    """student -> the note of their last grading (kept so the CSV of a later run still says what happened)."""
    path = state_path(grading, lab).with_suffix(".notes.json")
    return json.loads(path.read_text()) if path.exists() else {}


def save_notes(grading: Path, lab: str, notes: dict[str, str]) -> None:
    state_path(grading, lab).parent.mkdir(parents=True, exist_ok=True)
    state_path(grading, lab).with_suffix(".notes.json").write_text(json.dumps(notes, indent=1))


def student_id(folder_name: str) -> str:
    """The gradebook id of a submission folder: its name, with bytes that are not UTF-8 written as \\xNN."""
    return os.fsencode(folder_name).decode("utf-8", "backslashreplace")


def stage_files(folder: Path, dest: Path) -> tuple[dict[str, str], str]:
    """Copy a submission's side files (not its notebooks) to `dest`; returns (sandbox name -> copy, note)."""
    files, skipped, total = {}, [], 0
    for path in side_files(folder):
        name = student_id(path.name)
        size = path.stat().st_size
        if path.suffix == ".ipynb" or name != path.name or name.startswith("."):
            continue
        if size > SIDE_FILE_BYTES or total + size > 4 * SIDE_FILE_BYTES:
            skipped.append(name)
            continue
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / name)
        files[name], total = str(dest / name), total + size
    return files, (f"files over the size limit not given to the notebook: {', '.join(skipped)}" if skipped else "")


def plan(lab: str, grading: Path, release, source, regrade: bool) -> list[Job]:
    """One job per submission that changed since it was last graded (every submission with `regrade`).

    Never raises for a submission: what cannot be read becomes a job with no notebook (graded as zero) and a note.
    """
    state = load_state(grading, lab)
    tests_version = (ROOT / "solutions" / lab / f"{lab}.ipynb").read_bytes()
    staging = grading / "sandbox" / lab / "files"
    if staging.exists():
        shutil.rmtree(staging)
    jobs = []
    for folder in sorted((grading / "submitted").glob(f"*/{lab}")):
        student = student_id(folder.parent.name)
        try:
            jobs.extend(_job(lab, grading, folder, student, state, tests_version, release, source, regrade,
                             staging / f"{len(jobs):05d}"))
        except Exception as exc:  # noqa: BLE001 -- whatever is in the folder, the class goes on
            jobs.append(Job(student, folder, None, f"submission not readable ({type(exc).__name__}: {str(exc)[:200]})"))
    return jobs


def _job(lab, grading, folder, student, state, tests_version, release, source, regrade, staging) -> list[Job]:
    """The job of one submission folder (none if it was graded as it is); see plan."""
    digest = fingerprint(folder, tests_version)
    if not regrade and state.get(student) == digest and (grading / "autograded" / student / lab).is_dir():
        return []
    notes = [] if student == folder.parent.name else [f"folder name is not UTF-8: graded as {student}"]
    path, note = find_notebook(folder, lab)
    notes.append(note)
    if path is None:
        return [Job(student, folder, None, "; ".join(n for n in notes if n), digest)]
    try:
        submitted = nbformat.read(path, as_version=4)
        merged = merge_submission(release, source, submitted)
    except Exception as exc:  # noqa: BLE001 -- not JSON, not a notebook: graded as empty
        notes.append(f"{student_id(path.name)} is not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})")
        return [Job(student, folder, None, "; ".join(n for n in notes if n), digest)]
    files, note = stage_files(folder, staging)
    notes.append(note)
    answers = {c.metadata.nbgrader["grade_id"]: c.source for c in merged.cells
               if c.get("metadata", {}).get("nbgrader", {}).get("solution") and not c.metadata.nbgrader.get("grade")}
    return [Job(student, folder, nbformat.writes(merged), "; ".join(n for n in notes if n), digest, files,
                recheck_spec(release, source, answers, set()))]


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
    nb = nbformat.reads(nbformat.writes(release), as_version=4)
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
    if sandboxed and Cgroup.unavailable() is None:
        Cgroup.sweep()  # what a killed run left
    jobs = plan(lab, grading, release, source, regrade)
    n_workers = workers or os.cpu_count() or 1
    limits = limits or Limits(threads=max(1, (os.cpu_count() or 1) // n_workers))
    state = load_state(grading, lab)
    runnable = [j for j in jobs if j.notebook is not None]
    result.limits = limits_in_force(sandboxed)
    for job in jobs:
        result.notes[job.student] = job.note
        if job.notebook is None:
            _record(lab, job, blank_result(release), release, grading, state, result)
    if runnable:
        from dask.distributed import as_completed
        from tqdm.auto import tqdm
        with _client(n_workers, scheduler) as client:
            futures = {client.submit(execute_submission, job.notebook, job.files, str(course), limits, mounts,
                                     str(grading / "sandbox"), sandboxed, job.recheck,
                                     key=f"grade-{lab}-{index}", pure=False): job
                       for index, job in enumerate(runnable)}
            for future in tqdm(as_completed(futures), total=len(futures), desc=f"grading {lab}", disable=not progress):
                job = futures[future]
                try:
                    run = future.result()
                except Exception as exc:  # noqa: BLE001 -- a worker lost or a run that broke: this student only
                    _note(result, job.student, f"grading failed: {type(exc).__name__}: {str(exc)[:200]}")
                    _record(lab, job, blank_result(release), release, grading, state, result)
                    continue
                result.seconds[job.student] = run["seconds"]
                result.recheck_seconds[job.student] = run["recheck_seconds"]
                _note(result, job.student, run["stopped"])
                if run["recheck_failed"]:
                    _note(result, job.student, f"passed in the notebook but not when re-run with only the answer "
                                               f"cells: {', '.join(run['recheck_failed'])}")
                _record(lab, job, nbformat.reads(run["notebook"], as_version=4), release, grading, state, result)
    save_state(grading, lab, state)
    if (grading / "sandbox" / lab / "files").exists():
        shutil.rmtree(grading / "sandbox" / lab / "files")
    result.graded = [j.student for j in jobs]
    result.scores = read_scores(lab, grading)
    result.notes = {student: note for student, note in load_notes(grading, lab).items() if student in result.scores}
    result.wall_seconds = time.perf_counter() - start
    return result


def _note(result: ClassResult, student: str, note: str | None) -> None:
    if note:
        result.notes[student] = "; ".join(filter(None, [result.notes.get(student), note]))


def _record(lab: str, job: Job, graded, release, grading: Path, state: dict, result: ClassResult) -> None:
    """Save one student's grades (a blank result with a note if the graded notebook cannot be saved) and state."""
    try:
        save_grades(lab, job.student, graded, grading)
    except Exception as exc:  # noqa: BLE001 -- forged outputs or metadata nbgrader cannot score
        _note(result, job.student, f"graded as empty: its results could not be saved ({type(exc).__name__}: "
                                   f"{str(exc)[:200]})")
        save_grades(lab, job.student, blank_result(release), grading)
    state[job.student] = job.fingerprint
    save_state(grading, lab, state)  # after each: an interrupted run keeps what it graded
    save_notes(grading, lab, dict(load_notes(grading, lab), **{job.student: result.notes.get(job.student, "")}))


def limits_in_force(sandboxed: bool) -> str:
    """One sentence: which limits hold in this run (cgroups or per-process limits, sandbox or not)."""
    if not sandboxed:
        return "no sandbox: per-process limits only (address space, file size); tmpfs and process counts unlimited"
    problem = Cgroup.unavailable()
    if problem is None:
        return "sandboxed; a cgroup per run limits memory (tmpfs and children counted) and processes"
    return (f"sandboxed; no cgroups ({problem}): address space per process and size-capped tmpfs mounts, "
            "process count not limited")


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
        students, problems = import_submissions(args.source, args.lab, grading)
        print(f"imported {len(students)} submissions from {args.source}", *problems, sep="\n")
    workers = args.workers or os.cpu_count() or 1
    limits = Limits(cell_seconds=args.cell_timeout, notebook_seconds=args.notebook_timeout,
                    memory_bytes=int(args.memory_gb * 2**30), threads=max(1, (os.cpu_count() or 1) // workers))
    result = grade_class(args.lab, grading, workers, args.scheduler, limits, args.regrade, sandboxed=not problem)
    source = nbformat.read(ROOT / "solutions" / args.lab / f"{args.lab}.ipynb", as_version=4)
    table = write_summary(args.lab, source, result.scores, result.notes, grading / f"{args.lab}_grades.csv")
    print(table)
    print(f"graded {len(result.graded)} of {len(result.scores)} submissions in {result.wall_seconds:.0f} s "
          f"({result.limits}); grades in {grading / f'{args.lab}_grades.csv'}")
    if result.graded and not args.no_feedback:
        failed = generate_feedback(args.lab, grading, result.graded)
        print(f"feedback in {grading / 'feedback'}" + (f"; none for {', '.join(failed)} (see above)" if failed else ""))
    return 0


def generate_feedback(lab: str, grading: Path, students: list[str]) -> list[str]:
    """nbgrader feedback for the class; if that fails, student by student, so one cannot stop the others.
    Returns the students whose feedback could not be made."""
    if nbgrader("generate_feedback", lab, "--force", grading_dir=grading, check=False).returncode == 0:
        return []
    failed = []
    for student in students:
        proc = nbgrader("generate_feedback", lab, "--force", f"--student={student}", grading_dir=grading, check=False)
        if proc.returncode != 0:
            print(f"feedback for {student} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            failed.append(student)
    return failed


if __name__ == "__main__":
    sys.exit(main())
