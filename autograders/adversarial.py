"""Adversarial submissions of a lab, and what a sound grader gives each (tests/test_classroom.py grades them).

Each fixture is built from the lab's own notebooks, so it follows the lab as it changes:

    blank           the release as handed out                      -> every test cell 0
    wrong           every exercise replaced by its first mutant     -> every exercise loses points
    exceptions      every answer raises                            -> every test cell 0
    infinite_loop   the solution, last Python exercise loops forever      -> only that exercise's cells 0
    edited_tests    the release, every test cell edited to pass    -> every test cell 0 (tests restored)
    deleted_tests   the solution with every test cell deleted      -> full marks (tests restored)
    renamed         the solution saved as "Untitled (1).ipynb"     -> full marks
    huge_alloc      the solution plus a 200 GB allocation          -> full marks (the allocation fails alone)
    patched_clock   a slow answer to the speed exercise that fakes the clock -> the speed cell 0
    attacker        the solution plus code that rewrites the gradebook and deletes the other submissions
                                                                   -> full marks for itself; nothing else changes

    python -m autograders.adversarial LAB OUT_DIR   # write OUT_DIR/<fixture>/<notebook>.ipynb
"""
from __future__ import annotations

import argparse
import copy as _copy
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograders.course import ROOT
from autograders.mutation import load_mutants, mutate, nbgrader_meta, python_exercises, sections

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
    notebook: nbformat.NotebookNode
    filename: str | None = None      # None: <lab>.ipynb
    expect: str = "full"             # full | zero | loses_every_exercise | zero_cells
    zero_cells: frozenset = frozenset()


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _answer_cells(nb) -> dict[str, int]:
    return {gid: idx[0] for gid, idx in sections(nb).items()}


def _set_answer(nb, index: int, body: str) -> None:
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
    _set_answer(looping, answers[last], "while True:\n    pass")
    out.append(Fixture("infinite_loop", looping, expect="zero_cells", zero_cells=frozenset(_grade_ids(source, parts[last]))))

    edited = _copy.deepcopy(release)
    for cell in edited["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            cell["source"] = "print('all tests pass')"
    out.append(Fixture("edited_tests", edited, expect="zero"))

    deleted = _copy.deepcopy(source)
    deleted["cells"] = [c for c in deleted["cells"] if not c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    out.append(Fixture("deleted_tests", deleted))
    out.append(Fixture("renamed", _copy.deepcopy(source), filename="Untitled (1).ipynb"))

    first_answer = min(answers.values())
    out.append(Fixture("huge_alloc", _with_cell(_copy.deepcopy(source), first_answer,
                                                "import numpy as np\nbig = np.ones(200 * 2**30, dtype=np.uint8)")))
    out.append(Fixture("attacker", _with_cell(_copy.deepcopy(source), first_answer, ATTACK)))

    speed = speed_exercise(lab)
    if speed is not None:
        exercise, slow = speed
        clocked = _with_cell(_copy.deepcopy(source), answers[exercise] - 1, CLOCK_PATCH)
        _set_answer(clocked, answers[exercise] + 1, slow)
        speed_cells = {g for g in _grade_ids(source, parts[exercise]) if g.startswith("speed_")}
        out.append(Fixture("patched_clock", clocked, expect="zero_cells", zero_cells=frozenset(speed_cells)))
    return out


def write_fixtures(lab: str, out: Path, students: dict[str, Fixture] | None = None) -> dict[str, Fixture]:
    """Write every fixture as a submission folder out/<fixture>/<lab>/; returns fixture name -> Fixture."""
    made = {f.name: f for f in fixtures(lab)}
    for fixture in made.values():
        folder = out / fixture.name / lab
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(fixture.notebook, folder / (fixture.filename or f"{lab}.ipynb"))
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
