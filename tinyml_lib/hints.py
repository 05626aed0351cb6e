"""Hints in a student workspace: a cell that fails because of an exercise says which exercise to run or finish.

* A blank exercise raises `NotImplementedError("count_params (§1 ...): replace this line with your code")`; a cell run
  later that fails with another error (a KeyError from a dict the exercise should have filled, ...) gets one more
  line: "finish `count_params` (§1 Parameters and model size) first".
* A NameError for a name that an exercise cell of the open notebook defines (`count_params`, `REDUCE_TREE_SRC`) says
  which section's exercise cell to run first.
Loaded by the workspace's IPython start-up file only, never in grading (a hint is printed to stdout and changes no
output that nbgrader grades).
"""
from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

# The release's stubs ("<name> (§N Title): replace this line ...") and the library's ("<name> (Lab NN §N Title) is not
# in your library yet ...") both open their message with the function and where the lab teaches it.
STUB = re.compile(r"^(?P<name>\w+) \((?P<where>(?:Lab \d+ )?§.+?)\)(?=: | is not in your library)")


def unfinished_from(error: BaseException | None) -> tuple[str, str] | None:
    """(name, where) of the exercise a NotImplementedError comes from, or None for any other error."""
    if isinstance(error, NotImplementedError) and error.args and (match := STUB.match(str(error.args[0]))):
        return match["name"], match["where"]
    return None


def exercise_names(notebook: str | os.PathLike) -> dict[str, str]:
    """Names that the exercise cells (nbgrader solution cells) of `notebook` define -> the section they are in."""
    from tinyml_lib.export import sectioned
    names = {}
    for section, cell in sectioned(json.loads(Path(notebook).read_text())["cells"]):
        if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("solution"):
            try:
                tree = ast.parse("".join(cell["source"]))
            except SyntaxError:
                continue
            for node in tree.body:
                targets = [node] if isinstance(node, ast.FunctionDef) else getattr(node, "targets", [])
                for target in targets:
                    if (name := getattr(target, "name", None) or getattr(target, "id", None)):
                        names.setdefault(name, section)
    return names


class Hints:
    """Remembers the exercises a cell stopped at; after a later failure, names those still unfinished."""

    def __init__(self, shell, notebook: str | None = None):
        self.shell, self.pending = shell, {}
        self.notebook = notebook if notebook is not None else os.environ.get("JPY_SESSION_NAME", "")
        self._names: dict[str, str] | None = None

    def names(self) -> dict[str, str]:
        """What the open notebook's exercise cells define (read once; empty if it cannot be read)."""
        if self._names is None:
            try:
                self._names = exercise_names(self.notebook) if self.notebook.endswith(".ipynb") else {}
            except (OSError, ValueError, KeyError):
                self._names = {}
        return self._names

    def still_stubbed(self, name: str) -> bool:
        fn = self.shell.user_ns.get(name)
        code = getattr(fn, "__code__", None)
        return code is None or any(isinstance(c, str) and STUB.match(c) for c in code.co_consts)

    def post_run_cell(self, result) -> None:
        error = result.error_in_exec
        if error is None:
            return
        if (stub := unfinished_from(error)) is not None:
            self.pending[stub[0]] = stub[1]
            return
        if isinstance(error, NameError) and (section := self.names().get(getattr(error, "name", None) or "")):
            print(f"hint: `{error.name}` is defined by the exercise cell of {section}: run that cell first "
                  "(and the cells above it), then this one again.")
            return
        self.pending = {n: w for n, w in self.pending.items() if self.still_stubbed(n)}
        if self.pending:
            todo = "; ".join(f"`{name}` ({where})" for name, where in self.pending.items())
            print(f"hint: an earlier cell stopped at an unfinished exercise; this cell may need it: finish {todo} "
                  "first, run its cell, then run the cells below it again.")


def register(shell, notebook: str | None = None) -> Hints:
    """Hook the hints into an IPython shell (the workspace's start-up file calls this); `notebook` defaults to the one
    JupyterLab started the kernel for."""
    hints = Hints(shell, notebook)
    shell.events.register("post_run_cell", hints.post_run_cell)
    return hints
