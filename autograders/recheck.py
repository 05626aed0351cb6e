"""The trusted re-check: a submission's tests run again in a fresh process, out of the student's reach.

In the graded notebook the student's code runs in the kernel that then runs the tests, so it can rewrite what
judges it (the shell's traceback display, the kernel's replies, a checker, the clock). A test cell therefore counts
only if it also passes here: a fresh Python process, in its own sandbox, that runs

    the release's locked cells (imports, settings, baselines)  -- trusted, from the instructor's copy
    the student's answer cells                                   -- the only student code
    the test cells with their hidden tests                       -- trusted, from the instructor's copy

in notebook order, and nothing else the student wrote. Tests that need the notebook's ungraded experiment cells
(training runs, scans: as costly as the notebook itself) are left out (`select_cells`) and count on the kernel run
alone; `recheck_spec` lists them. Before any student code runs it imports the checkers and the
timer and snapshots them; before each test cell it restores the checking modules' attributes (the course's checkers
and timer, numpy, time, builtins) and the names the trusted cells bound, so an answer cell that redefined or
patched them has no effect on the test. Every cell is compiled before any student code runs. The verdicts go out on
a copy of stdout made at start; what the cells print goes to /dev/null.

What this does not stop: an answer function that, while a test calls it, rewrites a checking module or forges a
verdict line still runs in the same process as that test. It would have to do so here and in the kernel alike.

Grader side: `recheck_spec` builds the job. In a graded sandbox the launcher (autograders/launcher.py) forks the
process that runs it before any student code runs, so the imports are shared with the kernel; where that process is
gone, this file runs as a script (`python -P recheck.py < spec.json`) in a fresh sandbox. Either way it prints one
JSON line per test cell: {"id": grade_id, "ok": bool, "error": "Name: msg"}.
"""
from __future__ import annotations

import ast
import json
import os
import sys

# Modules whose attributes are restored before every test cell: the course's checkers and timer, and what they use.
PROTECTED = ("tinyml_lib.grading", "tinyml_lib.timing", "numpy", "numpy.testing", "time", "builtins")
MESSAGE_CHARS = 500


# ------------------------------------------------------------------------------------------- which cells run
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
          ast.GeneratorExp)


def _root(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _names(node: ast.AST) -> tuple[set[str], set[str], set[str]]:
    """(names a simple statement binds, names it mutates, names it reads), approximately and on the safe side.

    A binding is an assignment, def, class or import. A mutation is an attribute or item assignment or a method-call
    statement (`model.train()`, `x[0] = 1`, `xs.append(1)`) on a name. A function, lambda or comprehension binds only
    its own name; what it reads counts less its parameters and locals.
    """
    binds, mutates, reads = set(), set(), set()
    todo = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, SCOPES):
            inner = set().union(*(_names(c)[0] for c in ast.iter_child_nodes(item)))
            reads |= set().union(*(_names(c)[2] for c in ast.iter_child_nodes(item))) - inner
            if hasattr(item, "name"):
                binds.add(item.name)
            continue
        if isinstance(item, ast.Name):
            (binds if isinstance(item.ctx, ast.Store) else reads).add(item.id)
        elif isinstance(item, ast.ClassDef):
            binds.add(item.name)
        elif isinstance(item, (ast.Import, ast.ImportFrom)):
            binds |= {(a.asname or a.name).split(".")[0] for a in item.names}
        elif isinstance(item, (ast.Attribute, ast.Subscript)) and isinstance(item.ctx, (ast.Store, ast.Del)):
            mutates |= {_root(item)} - {None}
        elif isinstance(item, ast.Expr) and isinstance(item.value, ast.Call) and isinstance(item.value.func, ast.Attribute):
            mutates |= {_root(item.value.func)} - {None}
        elif isinstance(item, ast.arg):
            binds.add(item.arg)
        elif isinstance(item, ast.ExceptHandler) and item.name:
            binds.add(item.name)
        todo.extend(ast.iter_child_nodes(item))
    return binds, mutates, reads


def _flow(statements: list[ast.stmt], state: tuple[set[str], set[str], set[str]]) -> None:
    """Add to state = (bound, mutated, needed) what `statements` do in order: a name read before any statement of
    the cell bound it is needed. A loop's or `with`'s target is bound before its body reads it."""
    bound, mutated, needed = state
    for statement in statements:
        heads = {ast.For: ["iter"], ast.AsyncFor: ["iter"], ast.While: ["test"], ast.If: ["test"],
                 ast.With: ["items"], ast.AsyncWith: ["items"], ast.Try: []}
        if type(statement) not in heads:
            binds, mutates, reads = _names(statement)
            needed |= reads - bound
            bound |= binds
            mutated |= mutates
            continue
        for field in heads[type(statement)]:
            for part in (getattr(statement, field) if isinstance(getattr(statement, field), list)
                         else [getattr(statement, field)]):
                binds, mutates, reads = _names(part)
                needed |= reads - bound
                bound |= binds
                mutated |= mutates
        if isinstance(statement, (ast.For, ast.AsyncFor)):
            bound |= _names(statement.target)[0]
        _flow(statement.body, state)
        for handler in getattr(statement, "handlers", []):
            bound |= {handler.name} - {None}
            _flow(handler.body, state)
        _flow(getattr(statement, "orelse", []) + getattr(statement, "finalbody", []), state)


def cell_names(source: str) -> tuple[set[str], set[str], set[str]] | None:
    """(names a cell binds, names it mutates, names it reads before binding them); None if it does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    state = (set(), set(), set())
    _flow(tree.body, state)
    return state


def _modules(cells: list[dict]) -> set[str]:
    """Names any cell binds by an import (a call on a module, such as a plot, is not a mutation of state we track)."""
    found = set()
    for cell in cells:
        try:
            found |= {(a.asname or a.name).split(".")[0] for n in ast.walk(ast.parse(cell["source"]))
                      if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        except SyntaxError:
            pass
    return found


def imported_modules(cells: list[dict]) -> list[str]:
    """Dotted names of the modules that the locked ("setup") cells import: what a graded sandbox imports up front."""
    found = set()
    for cell in cells:
        if cell["kind"] != "setup":
            continue
        try:
            tree = ast.parse(cell["source"])
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
    return sorted(found)


def select_cells(cells: list[dict]) -> list[dict]:
    """The cells a re-check runs: the locked, answer and test cells that do not depend on an ungraded ("plain") cell.

    Plain cells are the notebook's experiments (training, scans, plots): re-running them would cost as much as the
    notebook. A name bound or mutated by a plain cell is tainted, and so is every name bound by a cell that reads a
    tainted name (a rebinding by an untainted cell clears it; an imported module is never tainted); tainted cells are
    left out, and their tests count on the notebook run alone. A cell that does not parse is tainted. `cells` are dicts with "kind" and "source"; the
    result keeps their order.
    """
    modules, tainted, keep = _modules(cells), set(), []
    for cell in cells:
        names = cell_names(cell["source"])
        if names is None or cell["kind"] == "plain" or names[2] & tainted:
            tainted |= (names[0] | names[1]) - modules if names is not None else set()
            continue
        tainted -= names[0]
        keep.append(cell)
    return keep


def recheck_spec(release, source, answers: dict[str, str], skip: set[str]) -> dict:
    """The job of a re-check (JSON-able).

    Args:
        release: the student release (nbformat node): locked, answer, test and plain cells, in order.
        source: the instructor's notebook: test cells with hidden tests, solution cells (for the names answers define).
        answers: grade_id of an answer cell -> the student's source.
        skip: grade_ids of test cells not to run (they failed in the notebook; a pass here would not count).
    """
    def meta(cell):
        return cell.get("metadata", {}).get("nbgrader", {})

    tests = {meta(c).get("grade_id"): c.source for c in source.cells if meta(c).get("grade")}
    solution_names = set()
    for cell in source.cells:
        if cell.cell_type == "code" and meta(cell).get("solution") and not meta(cell).get("grade"):
            solution_names |= (cell_names(cell.source) or (set(), set(), set()))[0]
    cells = []
    for cell in release.cells:
        if cell.cell_type != "code":
            continue
        m, gid = meta(cell), meta(cell).get("grade_id")
        if m.get("grade"):
            if gid not in skip:
                cells.append({"kind": "test", "id": gid, "source": tests.get(gid, cell.source)})
        elif m.get("solution"):
            cells.append({"kind": "answer", "id": gid, "source": answers.get(gid, cell.source)})
        else:
            cells.append({"kind": "setup" if m.get("locked") else "plain", "id": gid, "source": cell.source})
    for cell in cells:  # what a trusted cell binds is restored before each test, except the answers' own names
        if cell["kind"] in ("setup", "plain"):
            cell["protect"] = sorted((cell_names(cell["source"]) or (set(), set(), set()))[0] - solution_names)
    selected = select_cells(cells)
    rechecked = {c["id"] for c in selected if c["kind"] == "test"}
    return {"cells": selected, "modules": list(PROTECTED), "preload": imported_modules(cells),
            "kernel_only": [c["id"] for c in cells if c["kind"] == "test" and c["id"] not in rechecked]}


# ------------------------------------------------------------------------------------------- the runner
def _message(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + " ..."


def run(spec: dict, verdicts) -> None:
    """Execute `spec` (see recheck_spec) in this process; write one JSON line per test cell to `verdicts`."""
    import importlib

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()  # get_ipython() and display() behave as in the notebook
    compiled = []
    for index, cell in enumerate(spec["cells"]):
        try:
            code = compile(shell.transform_cell(cell["source"]), f"<{cell['kind']} {cell.get('id') or index}>", "exec")
        except BaseException as exc:  # a syntax error in an answer: its cell fails
            code = exc
        compiled.append((cell, code))
    modules = [importlib.import_module(name) for name in spec["modules"]]
    snapshot = [(vars(m), dict(vars(m))) for m in modules]
    namespace, trusted, write, run_code = shell.user_ns, {}, verdicts.write, exec  # bound before student code

    def restore():
        for current, saved in snapshot:
            for key, value in saved.items():
                if current.get(key) is not value:
                    current[key] = value
        namespace.update(trusted)

    for cell, code in compiled:
        if cell["kind"] == "test":
            restore()
        try:
            if isinstance(code, BaseException):
                raise code
            run_code(code, namespace)
            error = None
        except BaseException as exc:  # noqa: BLE001 -- SystemExit and KeyboardInterrupt from student code too
            error = _message(exc)
        if cell["kind"] in ("setup", "plain"):
            protect = cell["protect"] if "protect" in cell else (cell_names(cell["source"]) or (set(),))[0]
            trusted.update({k: namespace[k] for k in protect if k in namespace})
        if cell["kind"] == "test":
            write(json.dumps({"id": cell["id"], "ok": error is None, "error": error}) + "\n")
            verdicts.flush()
    write(json.dumps({"done": True}) + "\n")
    verdicts.flush()


def main() -> None:
    verdicts = os.fdopen(os.dup(1), "w")
    spec = json.load(sys.stdin)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    import tinyml_lib.grading  # noqa: F401 -- the checkers and the timer, captured before any student code
    import tinyml_lib.timing  # noqa: F401
    run(spec, verdicts)
    verdicts.close()
    os._exit(0)  # no atexit hook or finaliser a student registered runs after the verdicts


if __name__ == "__main__":
    main()
