"""Turn what a student handed in into the notebook the grader runs, whatever they did to it.

Like nbgrader's autograde, the student's notebook is the base and the cells the instructor manages are restored from
the instructor's copy: locked cells (instructions, settings, imports) and every test cell, the test cells with their
hidden tests. Unlike it, a managed cell the student deleted is put back where it was (after the managed cell before
it), so deleting a test cell cannot skip it; answer cells and the cells a student added stay as they are, minus any
nbgrader metadata of their own (a cell a student marks as graded is not one).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nbformat

from autograders.mutation import nbgrader_meta


def _grade_id(cell) -> str | None:
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) else None


def _text(source) -> str:
    """A cell source as text (a list of lines in a hand-edited notebook, or anything else, is joined or dropped)."""
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def _is_answer(cell) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("solution")) and not meta.get("grade") and not meta.get("locked")


def merge_submission(release, source, submitted):
    """The notebook to grade (nbformat v4 node), outputs cleared.

    Args:
        release: the student release (nbformat node): managed cells with their metadata, blank answers.
        source: the instructor's notebook: the test cells with hidden tests, by grade_id.
        submitted: the student's notebook (nbformat node), possibly edited in any way.
    """
    tests = {_grade_id(c): c.source for c in source.cells if nbgrader_meta(c).get("grade")}
    managed = [nbformat.from_dict(c) for c in release.cells if _grade_id(c) is not None]
    by_id = {_grade_id(c): c for c in managed}
    graded, seen = nbformat.v4.new_notebook(metadata=release.metadata), set()
    for cell in submitted.cells:
        gid = _grade_id(cell)
        if gid in seen or (gid is not None and gid not in by_id):
            continue  # a duplicated or foreign managed cell
        if gid is not None:
            seen.add(gid)
            cell = nbformat.from_dict(by_id[gid]) if not _is_answer(by_id[gid]) else nbformat.from_dict(
                dict(by_id[gid], source=_text(cell.get("source", ""))))
            cell.source = tests.get(gid, cell.source)
        else:
            cell = nbformat.from_dict(cell)
            cell.get("metadata", {}).pop("nbgrader", None)
        graded.cells.append(nbformat.from_dict(cell))
    for previous, cell in zip([None, *managed], managed):  # re-insert deleted managed cells in release order
        gid = _grade_id(cell)
        if gid in seen:
            continue
        ids = [_grade_id(c) for c in graded.cells]
        at = ids.index(_grade_id(previous)) + 1 if previous is not None and _grade_id(previous) in ids else 0
        restored = nbformat.from_dict(cell)
        restored.source = tests.get(gid, restored.source)
        graded.cells.insert(at, restored)
        seen.add(gid)
    for cell in graded.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return graded


def find_notebook(folder: Path, lab: str) -> tuple[Path | None, str]:
    """The notebook to grade in a student's folder, and a note: `lab.ipynb`, else the only notebook there (renamed).

    A symbolic link is never followed: it could point at another student's notebook or a file of the grader's.
    """
    expected = folder / f"{lab}.ipynb"
    if expected.is_symlink():
        return None, f"{expected.name} is a symbolic link, not a notebook: not graded"
    if expected.is_file():
        return expected, ""
    notebooks = sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.is_symlink())
    if len(notebooks) == 1:
        return notebooks[0], f"graded {notebooks[0].name} (expected {expected.name})"
    if not notebooks:
        return None, f"no notebook in {folder}"
    return None, f"{len(notebooks)} notebooks and none named {expected.name}: {', '.join(p.name for p in notebooks)}"


def side_files(folder: Path) -> list[Path]:
    """The regular files directly in a submission folder (what grading reads of it; subfolders are not looked into,
    so no depth of nesting can slow it down), symbolic links excluded."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.is_symlink())


def fingerprint(folder: Path, *extra: bytes) -> str:
    """sha256 of the regular files of a submission folder (names and contents) plus `extra` (the tests' version)."""
    digest = hashlib.sha256()
    for path in side_files(folder):
        digest.update(os.fsencode(path.name) + b"\0" + path.read_bytes() + b"\0")
    for blob in extra:
        digest.update(blob)
    return digest.hexdigest()
