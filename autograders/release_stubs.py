"""Stubs that teach: the student release says, at every blank answer, what to write and where the lab explains it.

nbgrader replaces each solution region by its code stub (nbgrader_config.py):

    # YOUR CODE HERE
    raise NotImplementedError()

`teach_stubs` rewrites every such stub of a generated release (`autograders.course.generate_release` calls it):

* in a Python function, the exception names the function and the lab section that teaches it:
      # YOUR CODE HERE
      raise NotImplementedError("count_params (§1 Parameters and model size): replace this line with your code")
* inside a CUDA C or C source string (a triple-quoted string open at the stub), both lines become one C comment, so
  the kernel or function skeleton around it still compiles and its tests fail with a readable message:
      // YOUR CODE HERE (reduce_tree, §8 A first CUDA C kernel: ...): the kernel compiles as given; its tests fail until you write it

The section is the nearest `## N. Title` heading above the cell. Cells whose source changes get their nbgrader
checksum recomputed, so the release stays consistent for nbgrader.
"""
from __future__ import annotations

import re

import nbformat

from tinyml_lib.export import sectioned  # the same sections the library's stubs name

STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")  # the two lines of nbgrader_config.py's code stub
DEF = re.compile(r"^(?P<indent>[ \t]*)(?:async[ \t]+)?def[ \t]+(?P<name>\w+)[ \t]*\(")
KERNEL = re.compile(r"(?:__global__[\w\s*]*?|\bvoid\s+)\b(?P<name>\w+)\s*\(")   # a CUDA kernel or a C function
TRIPLE = re.compile(r"'''|\"\"\"")


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]


def _open_string(lines: list[str], upto: int) -> bool:
    """Whether a triple-quoted string is open at the start of line `upto` (quotes counted in order, by kind)."""
    quote = None
    for line in lines[:upto]:
        for match in TRIPLE.finditer(line):
            if quote is None:
                quote = match[0]
            elif match[0] == quote:
                quote = None
    return quote is not None


def _function(lines: list[str], at: int) -> str | None:
    """The nearest `def name(` above line `at` that is indented less than it."""
    width = len(_indent(lines[at]))
    for line in reversed(lines[:at]):
        match = DEF.match(line)
        if match and len(match["indent"]) < width:
            return match["name"]
    return None


def _kernel(lines: list[str], at: int) -> str | None:
    """The nearest `__global__ ... name(` (a CUDA kernel) or `void name(` (a C function, Lab 06) above line `at`."""
    for line in reversed(lines[:at]):
        if match := KERNEL.search(line):
            return match["name"]
    return None


def python_stub(indent: str, name: str | None, section: str) -> str:
    what = f"{name} ({section})" if name else section
    message = f"{what}: replace this line with your code"
    return f"{indent}raise NotImplementedError({_py_str(message)})"


def c_stub(indent: str, name: str | None, section: str) -> str:
    where = f"{name}, {section}" if name else section
    return f"{indent}// YOUR CODE HERE ({where}): the kernel compiles as given; its tests fail until you write it"


def _py_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def teach_source(source: str, section: str, fallback: str | None = None) -> str:
    """`source` with every nbgrader stub rewritten (see the module docstring); `fallback` names a stub in no function."""
    lines = source.split("\n")
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        indent = _indent(line)
        if line == indent + STUB[0] and nxt == indent + STUB[1]:
            if _open_string(lines, i):
                out.append(c_stub(indent, _kernel(lines, i), section))
            else:
                out += [line, python_stub(indent, _function(lines, i) or fallback, section)]
            i += 2
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def teach_stubs(nb):
    """Rewrite, in place, every nbgrader code stub of a release notebook (nbformat v4 node); returns `nb`."""
    from nbgrader.utils import compute_checksum

    for section, cell in sectioned(nb.cells):
        if cell.cell_type != "code" or STUB[1] not in cell.source:
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        new = teach_source(cell.source, section, meta.get("grade_id"))
        if new != cell.source:
            cell.source = new
            if "checksum" in meta:
                meta["checksum"] = compute_checksum(cell)
    return nb


def teach_release_file(path) -> None:
    """Rewrite the stubs of the release notebook at `path`, in place (written as nbformat writes it)."""
    nb = nbformat.read(path, as_version=4)
    nbformat.write(teach_stubs(nb), path)
