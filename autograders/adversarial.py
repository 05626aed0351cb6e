"""Adversarial submissions of a lab, and what a sound grader gives each (tests/test_classroom.py grades them).

Each fixture is built from the lab's own notebooks, so it follows the lab as it changes. "full" is the solution's
score, "zero" none; a note means the class summary must say what happened to that submission.

    blank             the release as handed out                                   -> every test cell 0
    wrong             every exercise replaced by its first mutant                 -> every exercise loses points
    exceptions        every answer raises                                         -> every test cell 0
    infinite_loop     the last Python exercise loops forever, swallowing the timeout's interrupt
                                                                                  -> only that exercise's cells 0
    edited_tests      the release, every test cell edited to pass                 -> every test cell 0 (restored)
    deleted_tests     the solution with every test cell deleted                   -> full (tests restored)
    renamed           the solution saved as "Untitled (1).ipynb"                  -> full, note
    huge_alloc        the solution plus a 200 GB allocation                       -> full (the allocation fails alone)
    patched_clock     a slow answer to the speed exercise, the clock faked in a cell above the imports
                                                                                  -> the speed cell 0
    attacker          the solution plus code that rewrites the gradebook and deletes the other submissions
                                                                                  -> full for itself; nothing else changes
    not_json          a notebook file that is not JSON                            -> zero, note
    symlink           the notebook is a symbolic link to another student's        -> zero, note
    no_notebook       a folder with no notebook                                   -> zero, note
    bad_folder_name   the solution in a folder whose name is not UTF-8            -> full (under an escaped id), note
    forged_metadata   the solution plus cells carrying nbgrader grade metadata    -> full
    display_points    the solution plus a hook that makes every cell display 1000 -> full (no partial credit read)
    protocol_error    the solution, then a kernel message nbclient cannot parse   -> full, note
    showtraceback     the release with the shell's traceback display switched off -> zero
    launcher_shadow   the release plus an `ipykernel_launcher.py` side file that fakes passing replies -> zero
    forged_checkers   every exercise wrong, the course's checkers replaced by no-ops -> every exercise loses points
    resource_hog      the solution plus /dev/shm, /tmp and home filled, a fork bomb, 200 MB of output, a 2 GB file,
                      thousands of nested folders in the home and socket folders  -> full; nothing left behind
    feedback_attack   the solution plus a hook printing every cell's source (the hidden tests), student HTML with
                      script, and nbgrader's marker text in a student cell        -> full; feedback clean for all
    recheck_reach     forged_checkers, plus code that tries to reach the re-check process waiting in the sandbox
                      (ptrace, its memory, its file descriptors: forged verdicts) -> every exercise loses points
    recheck_killed    the solution plus code that kills every other process of the sandbox it may
                      (the waiting re-check among them)                           -> full (re-checked afresh)
    kernel_exit       the solution, the kernel exiting before the last exercise   -> that exercise's cells 0, note

    python -m autograders.adversarial LAB OUT_DIR   # write OUT_DIR/<fixture>/<notebook>.ipynb
"""
from __future__ import annotations

import argparse
import copy as _copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograders.course import ROOT
from autograders.mutation import Edit, load_mutants, mutate, nbgrader_meta, python_exercises, sections

ATTACK = '''
import glob, os, shutil, sqlite3
for db in glob.glob("../../../**/gradebook.db", recursive=True) + glob.glob("/**/gradebook.db", recursive=True):
    try:
        with sqlite3.connect(db) as con:
            con.execute("UPDATE grade SET manual_score = 999")
    except Exception as exc:
        print("gradebook:", exc)
for target in glob.glob("../../*") + glob.glob("../*") + ["/course/tinyml_lib", "/course/data"]:
    shutil.rmtree(target, ignore_errors=True)
try:
    open("/course/tinyml_lib/grading.py", "w").write("")
except OSError as exc:
    print("library:", exc)
'''

SWALLOW = '''
import time
try:
    while True:
        time.sleep(0.01)
except KeyboardInterrupt:
    pass
'''

DISPLAY_POINTS = '''
ip = get_ipython()
ip.events.register("post_run_cell", lambda result: ip.displayhook(1000.0))
'''

PROTOCOL_ERROR = '''
kernel = get_ipython().kernel
kernel.session.send(kernel.iopub_socket, "display_data", {"data": {"text/plain": "no metadata"}},
                    parent=kernel.get_parent())
'''

NO_TRACEBACKS = '''
get_ipython().showtraceback = lambda *args, **kwargs: None
get_ipython().showsyntaxerror = lambda *args, **kwargs: None
'''

FAKE_LAUNCHER = '''
# A kernel whose every reply says "ok" and which shows no error.
from ipykernel.ipkernel import IPythonKernel
_execute = IPythonKernel.do_execute
async def do_execute(self, code, *args, **kwargs):
    await _execute(self, "pass", *args, **kwargs)
    return {"status": "ok", "execution_count": self.execution_count, "payload": [], "user_expressions": {}}
IPythonKernel.do_execute = do_execute
from ipykernel import kernelapp
kernelapp.launch_new_instance()
'''

FORGED_CHECKERS = '''
import tinyml_lib.grading as _grading
def _passes(*args, **kwargs):
    return None
check_equal = check_close = check_type = _passes
_grading.check_equal = _grading.check_close = _grading.check_type = _passes
'''

RESOURCE_HOG = '''
import os, subprocess, sys
for folder, size in (("/dev/shm", 7 << 30), ("/tmp", 7 << 30), (os.path.expanduser("~"), 7 << 30)):
    try:
        with open(os.path.join(folder, "fill"), "wb") as f:
            for _ in range(size >> 24):
                f.write(b"x" * (1 << 24))
    except OSError as exc:
        print(folder, exc)
    finally:
        if os.path.exists(os.path.join(folder, "fill")):
            os.remove(os.path.join(folder, "fill"))
children = []
try:
    for _ in range(2000):
        children.append(subprocess.Popen(["/bin/sleep", "3"]))
except OSError as exc:
    print("processes:", len(children), exc)
for child in children:
    child.wait()
try:
    with open("big", "wb") as f:
        f.seek(2 << 30)
        f.write(b"x")
except OSError as exc:
    print("file size:", exc)
for top in (os.path.expanduser("~"), os.path.dirname(get_ipython().kernel.connection_file)):
    os.chdir(top)
    for _ in range(3000):
        os.mkdir("d")
        os.chdir("d")
os.chdir(os.path.expanduser("~"))
print("x" * (200 << 20))
for _ in range(2000):
    print("y" * 10000)
'''

LEAK_HOOK = '''
ip = get_ipython()
ip.events.register("pre_run_cell", lambda info: print("CELL SOURCE:", info.raw_cell))
'''

FEEDBACK_ATTACK = '''
from IPython.display import HTML, display
display(HTML("<script>alert('student script')</script><img src=x onerror=alert('student img')>"))
marker = """
### BEGIN HIDDEN TESTS
### END HIDDEN TESTS
"""
'''

RECHECK_REACH = '''
import ctypes, glob, json, os
_libc, _reached = ctypes.CDLL(None, use_errno=True), []
_forged = b"".join(json.dumps({"id": g, "ok": True, "error": None}).encode() + b"\\n" for g in GRADE_IDS)
for _pid in [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in (1, os.getpid())]:
    for _path in glob.glob(f"/proc/{_pid}/fd/*"):
        try:
            _fd = os.open(_path, os.O_WRONLY | os.O_NONBLOCK)
            os.write(_fd, _forged)
            _reached.append(_path)
        except OSError:
            pass
    if _libc.ptrace(16, _pid, 0, 0) == 0:  # PTRACE_ATTACH
        _reached.append(f"ptrace {_pid}")
    try:
        open(f"/proc/{_pid}/mem", "rb").close()
        _reached.append(f"memory of {_pid}")
    except OSError:
        pass
print("reached:", _reached)
'''

KILL_OTHERS = '''
import os, signal
for _entry in os.listdir("/proc"):
    if _entry.isdigit() and int(_entry) not in (1, os.getpid(), os.getppid()):
        try:
            os.kill(int(_entry), signal.SIGKILL)
        except OSError:
            pass
'''

CLOCK_PATCH = '''
import time as _time
_fake = iter(range(10**12))
_time.perf_counter = lambda: next(_fake) * 1e-9
_time.perf_counter_ns = lambda: next(_fake)
_time.monotonic = _time.perf_counter
_time.monotonic_ns = _time.perf_counter_ns
_time.time = _time.perf_counter
'''


@dataclass
class Fixture:
    name: str
    notebook: nbformat.NotebookNode | None   # None: no notebook (see raw, symlink_to)
    filename: str | None = None      # None: <lab>.ipynb
    expect: str = "full"             # full | zero | loses_every_exercise | zero_cells
    zero_cells: frozenset = frozenset()
    note: bool = False               # the summary must carry a note for this student
    raw: bytes | None = None         # written as the notebook file instead of `notebook`
    symlink_to: str | None = None    # the notebook file is a symbolic link to this fixture's notebook
    files: dict = field(default_factory=dict)   # side files: name -> text
    folder: bytes | None = None      # the student folder's name, as bytes (not necessarily UTF-8)


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _answer_cells(nb) -> dict[str, int]:
    return {gid: idx[0] for gid, idx in sections(nb).items()}


def _set_answer(nb, index: int, body: str | Edit | list[Edit]) -> None:
    cell = nb["cells"][index]
    cell["source"] = mutate(cell["source"], body)


def _grade_ids(nb, indices) -> set[str]:
    return {nbgrader_meta(nb["cells"][i])["grade_id"] for i in indices if nbgrader_meta(nb["cells"][i]).get("grade")}


def _with_cell(nb, after: int, code: str):
    nb["cells"].insert(after + 1, nbformat.v4.new_code_cell(code.strip()))
    return nb


def speed_exercise(lab: str) -> tuple[str, str] | None:
    """(exercise, slow mutant body) of the lab's speed-graded exercise: the mutant named '(correct but slow)'."""
    for exercise, variants in load_mutants(lab).items():
        for name, body in variants.items():
            if "correct but slow" in name:
                return exercise, body
    return None


def fixtures(lab: str) -> list[Fixture]:
    source, release = _read(ROOT / "solutions" / lab / f"{lab}.ipynb"), _read(ROOT / "labs" / lab / f"{lab}.ipynb")
    answers, parts, mutants = _answer_cells(source), sections(source), load_mutants(lab)
    all_tests = _grade_ids(source, range(len(source["cells"])))
    out = [Fixture("blank", _copy.deepcopy(release), expect="zero")]

    wrong = _copy.deepcopy(source)
    for exercise, index in answers.items():
        _set_answer(wrong, index, next(iter(mutants[exercise].values())))
    out.append(Fixture("wrong", wrong, expect="loses_every_exercise"))

    raising = _copy.deepcopy(source)
    for index in answers.values():
        _set_answer(raising, index, "raise RuntimeError('a bug in every answer')")
    out.append(Fixture("exceptions", raising, expect="zero"))

    looping, last = _copy.deepcopy(source), python_exercises(source)[-1]   # a Python loop: a kernel's body is C
    _set_answer(looping, answers[last], SWALLOW)
    out.append(Fixture("infinite_loop", looping, expect="zero_cells", zero_cells=frozenset(_grade_ids(source, parts[last]))))

    edited = _copy.deepcopy(release)
    for cell in edited["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            cell["source"] = "print('all tests pass')"
    out.append(Fixture("edited_tests", edited, expect="zero"))

    deleted = _copy.deepcopy(source)
    deleted["cells"] = [c for c in deleted["cells"] if not c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    out.append(Fixture("deleted_tests", deleted))
    out.append(Fixture("renamed", _copy.deepcopy(source), filename="Untitled (1).ipynb", note=True))

    first_answer = min(answers.values())
    out.append(Fixture("huge_alloc", _with_cell(_copy.deepcopy(source), first_answer,
                                                "import numpy as np\nbig = np.ones(200 * 2**30, dtype=np.uint8)")))
    out.append(Fixture("attacker", _with_cell(_copy.deepcopy(source), first_answer, ATTACK)))

    speed = speed_exercise(lab)
    if speed is not None:
        exercise, slow = speed
        clocked = _copy.deepcopy(source)
        clocked["cells"].insert(0, nbformat.v4.new_code_cell(CLOCK_PATCH.strip()))  # above the imports
        _set_answer(clocked, answers[exercise] + 1, slow)
        speed_cells = {g for g in _grade_ids(source, parts[exercise]) if g.startswith("speed_")}
        out.append(Fixture("patched_clock", clocked, expect="zero_cells", zero_cells=frozenset(speed_cells)))
    return out + hostile_fixtures(source, release, mutants)


def hostile_fixtures(source, release, mutants) -> list[Fixture]:
    """The fixtures that attack the grader itself (see the module docstring, from not_json on)."""
    answers, last_cell = _answer_cells(source), len(source["cells"]) - 1
    first_answer = min(answers.values())
    out = [Fixture("not_json", None, expect="zero", note=True, raw=b'{"cells": [ this is not JSON'),
           Fixture("symlink", None, expect="zero", note=True, symlink_to="renamed"),
           Fixture("no_notebook", None, expect="zero", note=True, files={"answers.txt": "see my notebook"}),
           Fixture("bad_folder_name", _copy.deepcopy(source), note=True, folder=b"caf\xe9-student")]
    forged = _copy.deepcopy(source)
    for gid in (None, "test_forged", nbgrader_meta(source["cells"][first_answer]).get("grade_id")):
        cell = nbformat.v4.new_code_cell("print('graded?')")
        cell.metadata["nbgrader"] = {"grade": True, "points": 1000, "solution": False, "locked": False,
                                     **({"grade_id": gid} if gid else {})}
        forged["cells"].insert(first_answer + 1, cell)
    out.append(Fixture("forged_metadata", forged))
    out.append(Fixture("display_points", _with_cell(_copy.deepcopy(source), 0, DISPLAY_POINTS)))
    out.append(Fixture("protocol_error", _with_cell(_copy.deepcopy(source), last_cell, PROTOCOL_ERROR), note=True))
    out.append(Fixture("showtraceback", _with_cell(_copy.deepcopy(release), 0, NO_TRACEBACKS), expect="zero"))
    out.append(Fixture("launcher_shadow", _copy.deepcopy(release), expect="zero",
                       files={"ipykernel_launcher.py": FAKE_LAUNCHER}))
    checkers = _copy.deepcopy(source)
    for exercise, index in answers.items():
        _set_answer(checkers, index, next(iter(mutants[exercise].values())))
    out.append(Fixture("forged_checkers", _with_cell(checkers, first_answer, FORGED_CHECKERS),
                       expect="loses_every_exercise"))
    reach = _copy.deepcopy(checkers)
    grade_ids = sorted(_grade_ids(source, range(len(source["cells"]))))
    out.append(Fixture("recheck_reach", _with_cell(reach, first_answer, f"GRADE_IDS = {grade_ids!r}\n" + RECHECK_REACH),
                       expect="loses_every_exercise"))
    out.append(Fixture("recheck_killed", _with_cell(_copy.deepcopy(source), first_answer, KILL_OTHERS)))
    start = min(sections(source)[list(answers)[-1]])
    out.append(Fixture("kernel_exit", _with_cell(_copy.deepcopy(source), start - 1, "import os\nos._exit(3)"),
                       expect="zero_cells", note=True,
                       zero_cells=frozenset(_grade_ids(source, range(start, len(source["cells"]))))))
    out.append(Fixture("resource_hog", _with_cell(_copy.deepcopy(source), first_answer, RESOURCE_HOG)))
    out.append(Fixture("feedback_attack", _with_cell(_with_cell(_copy.deepcopy(source), first_answer, FEEDBACK_ATTACK),
                                                     0, LEAK_HOOK)))
    return out


def write_fixtures(lab: str, out: Path) -> dict[str, Fixture]:
    """Write every fixture as a submission folder out/<fixture>/<lab>/ (out/<folder bytes>/<lab>/ where the fixture
    names its folder); returns fixture name -> Fixture."""
    made = {f.name: f for f in fixtures(lab)}
    for fixture in made.values():
        folder = Path(os.fsdecode(bytes(out) + b"/" + fixture.folder)) / lab if fixture.folder else out / fixture.name / lab
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (fixture.filename or f"{lab}.ipynb")
        if fixture.raw is not None:
            path.write_bytes(fixture.raw)
        elif fixture.symlink_to is not None:
            path.symlink_to(next((out / fixture.symlink_to / lab).glob("*.ipynb")).resolve())
        elif fixture.notebook is not None:
            nbformat.write(fixture.notebook, path)
        for name, text in fixture.files.items():
            (folder / name).write_text(text)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    for name in write_fixtures(args.lab, args.out):
        print(f"wrote {args.out / name / args.lab}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
