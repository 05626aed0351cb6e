"""Your library: the labs' export cells write *your* answers into the tinyml_lib of your workspace.

In a student workspace (made by `make lab`), `tinyml_lib` is a copy of the course library in which each lab's
package (`metrics`, `pruning`, `quantization`, `llm`, ...) is one of: your own answers, written by the lab's last cell,
`export_lab("lab01_metrics")`; the reference, for a lab that is revealed (`make reveal LAB=...`); or stubs whose
error names the lab, section and function to finish. Later labs import from it, so Lab 02 counts MACs with *your*
Lab 01 `count_macs`.

    from tinyml_lib.student import export_lab, library_status
    export_lab("lab01_metrics")   # save the notebook first: the export reads the saved file
    library_status()              # where each lab's functions come from
"""
from __future__ import annotations

import ast
import json
import os
import time
from collections import defaultdict
from pathlib import Path

from tinyml_lib.export import LAB_NAME, exported_cells, exported_functions, stub_module

LIB = Path(__file__).resolve().parent
STATE = LIB.parent / "workspace.json"   # written by autograders/workspace.py next to the workspace's tinyml_lib
EXPORTED = "# Exported by tinyml_lib.student.export_lab from your notebook"


def in_workspace() -> bool:
    """True where this tinyml_lib is a student workspace's (not the course repository's, not a grading sandbox's)."""
    return STATE.is_file()


def read_state() -> dict:
    """The workspace's record: {"units": {lab: package}, "revealed": [lab], "exported": {lab: {...}}, ...}."""
    return json.loads(STATE.read_text()) if in_workspace() else {}


def _notebook(lab: str, notebook: str | os.PathLike | None) -> Path:
    """The notebook to export: the one given, else this kernel's notebook (JupyterLab says which), else <lab>.ipynb."""
    if notebook is None:
        session = os.environ.get("JPY_SESSION_NAME", "")
        notebook = session if session.endswith(".ipynb") and Path(session).parent.name == lab else f"{lab}.ipynb"
    path = Path(notebook)
    if not path.is_absolute() and not path.exists():
        path = STATE.parent.parent / lab / path.name
    if not path.is_file():
        raise FileNotFoundError(f"export_lab: no notebook {path}; pass notebook='path/to/{lab}.ipynb'")
    return path


def _unfinished(body: str) -> set[str]:
    """Functions of an export cell still holding the release's stub (`# YOUR CODE HERE` then a NotImplementedError)."""
    names = set()
    for node in ast.parse(body).body:
        if isinstance(node, ast.FunctionDef):
            text = ast.get_source_segment(body, node) or ""
            if "YOUR CODE HERE" in text and "raise NotImplementedError(" in text:
                names.add(node.name)
    return names


def _not_run(bodies: list[str]) -> int:
    """How many export cells' saved text this kernel has not run (edited after running, or never run)."""
    try:
        history = "\n".join(get_ipython().user_ns.get("In", []))  # noqa: F821 (IPython's input history)
    except NameError:
        return 0
    return sum(1 for body in bodies if body.strip().splitlines()[-1].strip() not in history)


def export_lab(lab: str, notebook: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Write the export cells of your saved notebook of `lab` into your workspace library.

    Functions you have not written yet (still `raise NotImplementedError(...)` under `# YOUR CODE HERE`) become
    stubs that name themselves, so a later lab that needs one tells you which to finish.

    Args:
        lab: the lab's name, e.g. "lab01_metrics".
        notebook: the notebook to read; default: this one (as JupyterLab reports it), else <lab>/<lab>.ipynb.
    Returns:
        {"exported": [function names], "unfinished": [function names]}; empty lists outside a workspace.
    """
    if not isinstance(lab, str) or not LAB_NAME.fullmatch(lab):
        raise ValueError(f"lab: expected a lab name like 'lab01_metrics', got {lab!r}")
    if not in_workspace():
        print(f"export_lab: {LIB} is not a student workspace's library, so nothing is exported "
              "(in your workspace, opened with `make lab`, this cell writes your answers into your library).")
        return {"exported": [], "unfinished": []}
    path = _notebook(lab, notebook)
    cells = exported_cells(path)
    if not cells:
        raise ValueError(f"export_lab: {path} has no `# export -> tinyml_lib/...` cells")
    sections = exported_functions(path)
    modules: dict[str, list[str]] = defaultdict(list)
    unfinished: set[str] = set()
    for rel, body in cells:
        modules[rel].append(body)
        unfinished |= _unfinished(body)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    where = {name: (lab, section) for name, section in sections.items()}
    for rel, bodies in modules.items():
        text = "\n\n".join(bodies)
        if unfinished & set(sections):
            text = stub_module(text, where, only=unfinished)
        target = LIB / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"{EXPORTED} {path.name} ({stamp}).\n# Edit the notebook and export again.\n" + text)
    state = read_state()
    state.setdefault("exported", {})[lab] = {"notebook": str(path), "time": stamp, "modules": sorted(modules)}
    STATE.write_text(json.dumps(state, indent=1) + "\n")
    done = sorted(set(sections) - unfinished)
    print(f"Exported {len(done)} of your functions from {path.name} into your library ({LIB}):")
    print("  " + ", ".join(done))
    if unfinished:
        print(f"Not written yet (stubs that say so): {', '.join(sorted(unfinished))}")
    if (stale := _not_run([body for _, body in cells])):
        print(f"Note: {stale} exported cell(s) differ from what this kernel ran: save the notebook (Ctrl-S) "
              "and export again if you changed them.")
    print("Other labs' kernels import it when they (re)start: Kernel > Restart Kernel in a lab already open.")
    return {"exported": done, "unfinished": sorted(unfinished)}


def library_status() -> dict[str, str]:
    """Where each lab's package of this library comes from: "yours (exported ...)", "reference" or "stubs"."""
    state = read_state()
    if not state:
        print(f"tinyml_lib at {LIB}: the course's own library (not a student workspace)")
        return {}
    status = {}
    for lab, unit in sorted(state.get("units", {}).items()):
        if lab in state.get("exported", {}):
            status[lab] = f"yours (exported {state['exported'][lab]['time']})"
        elif lab in state.get("revealed", []):
            status[lab] = "reference (revealed)"
        else:
            status[lab] = "stubs (export your answers at the end of the lab)"
        print(f"  tinyml_lib.{unit:<13s} {lab:<20s} {status[lab]}")
    return status
