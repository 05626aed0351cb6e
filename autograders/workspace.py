"""The student workspace: a git-ignored folder with the student's own copies of the labs and their own library.

    python -m autograders.workspace lab [--port 8888]   # make or update workspace/, serve JupyterLab on it
    python -m autograders.workspace sync                # make or update workspace/ only
    python -m autograders.workspace reveal LAB          # self-learners: the reference answers of LAB in the library

Layout (`$TINYML_WORKSPACE`, default <repo>/workspace):

    lab01_metrics/lab01_metrics.ipynb   the student's copy, made from labs/ on first sync and never overwritten;
                                        an updated release lands beside it as lab01_metrics.release-<date>.ipynb
    lib/tinyml_lib/                     the library the labs import (PYTHONPATH): infrastructure from the course,
                                        each lab's package the student's own export, the reference (revealed) or stubs
    lib/kernels/, lib/data              kernel sources (answers of unrevealed labs withheld), the shipped data
    lib/workspace.json                  which labs are revealed, exported, and which release each copy came from
    .jupyter/, .ipython/                the student's JupyterLab (nbgrader's instructor tools off) and IPython start-up

Nothing of an unrevealed lab's answers is in it or on its Python path (tests/test_workspace.py checks). The
instructor's student bundle (autograders/bundle.py) is this folder, made with the due labs revealed, zipped.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from autograders.answers import IGNORE, ROOT, lab_names, lab_units, stub_library, withhold_kernels
from tinyml_lib.student import EXPORTED

WORKSPACE = Path(os.environ.get("TINYML_WORKSPACE") or ROOT / "workspace")
# nbgrader's instructor tools (Formgrader, Create Assignment, Course List) and its exchange-based student tools.
NBGRADER_LAB = "@jupyter/nbgrader"
NBGRADER_SERVER = ["formgrader", "validate_assignment", "assignment_list", "course_list"]
STARTUP = '''# Student workspace start-up (written by autograders/workspace.py): a cell that fails after an unfinished
# exercise says which exercise to finish first.
from tinyml_lib.hints import register as _register

_register(get_ipython())
del _register
'''


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_state(ws: Path) -> dict:
    path = ws / "lib" / "workspace.json"
    return json.loads(path.read_text()) if path.is_file() else {"revealed": [], "exported": {}, "releases": {}}


def write_state(ws: Path, state: dict) -> None:
    (ws / "lib" / "workspace.json").write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")


def copy_labs(ws: Path, state: dict) -> list[str]:
    """Copy each released lab in; a lab whose release changed since its copy lands beside it. Returns messages."""
    messages = []
    for lab in lab_names():
        release = ROOT / "labs" / lab / f"{lab}.ipynb"
        if not release.is_file():
            continue
        mine, sha = ws / lab / f"{lab}.ipynb", _sha(release)
        mine.parent.mkdir(parents=True, exist_ok=True)
        if not mine.exists():
            shutil.copyfile(release, mine)
            messages.append(f"new lab: {lab}/{lab}.ipynb")
        elif state["releases"].get(lab) != sha and _sha(mine) != sha:
            beside = mine.with_name(f"{lab}.release-{time.strftime('%Y-%m-%d')}.ipynb")
            shutil.copyfile(release, beside)
            messages.append(f"{lab} was updated: your copy is unchanged; the new release is beside it, "
                            f"{beside.relative_to(ws)} (move your answers over, or keep working in yours)")
        state["releases"][lab] = sha
    return messages


def _student_files(unit_dir: Path) -> dict[str, str]:
    """The modules a student's export wrote into a unit of their library (relative path -> text)."""
    if not unit_dir.exists():
        return {}
    files = unit_dir.rglob("*.py") if unit_dir.is_dir() else [unit_dir]
    return {p.relative_to(unit_dir.parent).as_posix(): p.read_text() for p in files
            if p.read_text().startswith(EXPORTED)}


def build_library(lib: Path, state: dict, copy_data: bool = False) -> None:
    """lib/tinyml_lib from the course's, each lab's unit the student's own, the reference (revealed) or stubs."""
    revealed, fresh = set(state["revealed"]), lib / "tinyml_lib.new"
    if fresh.exists():
        shutil.rmtree(fresh)
    shutil.copytree(ROOT / "tinyml_lib", fresh, ignore=IGNORE)
    stub_library(fresh, revealed)
    for unit in lab_units().values():
        for rel, text in _student_files(lib / "tinyml_lib" / unit).items():
            (fresh / rel).write_text(text)
    if (lib / "tinyml_lib").exists():
        shutil.rmtree(lib / "tinyml_lib")
    fresh.rename(lib / "tinyml_lib")
    if (lib / "kernels").exists():
        shutil.rmtree(lib / "kernels")
    shutil.copytree(ROOT / "kernels", lib / "kernels", ignore=IGNORE)
    withhold_kernels(lib / "kernels", revealed)
    data = lib / "data"
    if copy_data and not data.is_dir():
        shutil.copytree(ROOT / "data", data, ignore=IGNORE)
    elif not copy_data and not data.exists():
        data.symlink_to(ROOT / "data", target_is_directory=True)


def write_config(ws: Path) -> None:
    """The student's JupyterLab settings (nbgrader's extension off) and IPython start-up (hints after an error)."""
    labconfig = ws / ".jupyter" / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": {NBGRADER_LAB: True}}, indent=1))
    off = {f"nbgrader.server_extensions.{name}": False for name in NBGRADER_SERVER}
    (ws / ".jupyter" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": off}}, indent=1))
    startup = ws / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-tinyml-hints.py").write_text(STARTUP)


def sync(ws: Path = WORKSPACE, reveal: set[str] = frozenset(), solutions: bool = True, copy_data: bool = False) -> list[str]:
    """Make or update the workspace `ws`; `reveal` adds labs whose reference fills in (and, with `solutions`, whose
    solution notebook is copied in as <lab>/<lab>.solution.ipynb). Returns what changed, as messages."""
    unknown = set(reveal) - set(lab_names())
    if unknown:
        raise ValueError(f"reveal: expected lab names from {lab_names()}, got {sorted(unknown)}")
    (ws / "lib").mkdir(parents=True, exist_ok=True)
    state = read_state(ws)
    state["units"] = lab_units()
    state["revealed"] = sorted(set(state["revealed"]) | set(reveal))
    messages = copy_labs(ws, state)
    build_library(ws / "lib", state, copy_data)
    write_config(ws)
    for lab in sorted(reveal):
        messages.append(f"revealed: {lab} (the reference fills in where you have not exported your own)")
        if solutions:
            shutil.copyfile(ROOT / "solutions" / lab / f"{lab}.ipynb", ws / lab / f"{lab}.solution.ipynb")
            messages.append(f"  its solution notebook: {lab}/{lab}.solution.ipynb")
    write_state(ws, state)
    return messages


def kernel_env(ws: Path) -> dict[str, str]:
    """Environment of the student's JupyterLab and of every kernel it starts: the workspace library first."""
    return dict(os.environ, PYTHONPATH=str(ws / "lib"), IPYTHONDIR=str(ws / ".ipython"),
                JUPYTER_CONFIG_DIR=str(ws / ".jupyter"))


def jupyter_command(ws: Path, port: int) -> list[str]:
    """JupyterLab on the workspace, on 127.0.0.1 (nbgrader's extensions are off in the workspace's own config)."""
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", f"--port={port}",
           f"--ServerApp.root_dir={ws}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    return cmd + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])


def running_server(ws: Path) -> dict | None:
    """A JupyterLab already serving `ws` (its server info: url, token, pid), or None."""
    from jupyter_core.paths import jupyter_runtime_dir
    for info_file in Path(jupyter_runtime_dir()).glob("jpserver-*.json"):
        try:
            info = json.loads(info_file.read_text())
            os.kill(info["pid"], 0)
        except (OSError, ValueError, KeyError):
            continue
        if Path(info.get("root_dir", "")).resolve() == ws.resolve():
            return info
    return None


def serve(ws: Path, port: int) -> int:
    """Serve JupyterLab on `ws` and print the URL it really got (or the URL of the one already serving it)."""
    from jupyter_core.paths import jupyter_runtime_dir
    if (info := running_server(ws)) is not None:
        print(f"JupyterLab already serves your workspace: {info['url'].rstrip('/')}/lab?token={info['token']}")
        return 0
    proc = subprocess.Popen(jupyter_command(ws, port), env=kernel_env(ws), cwd=ws)
    info_file = Path(jupyter_runtime_dir()) / f"jpserver-{proc.pid}.json"
    for _ in range(600):
        if proc.poll() is not None:
            return proc.returncode
        if info_file.is_file():
            info = json.loads(info_file.read_text())
            print(f"\nYour workspace ({ws}) is open at: {info['url'].rstrip('/')}/lab?token={info['token']}\n",
                  flush=True)
            break
        time.sleep(0.1)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=WORKSPACE)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("lab").add_argument("--port", type=int, default=8888)
    sub.add_parser("sync")
    sub.add_parser("reveal").add_argument("labs", nargs="+")
    args = parser.parse_args(argv)
    ws = args.workspace.resolve()
    for line in sync(ws, reveal=set(args.labs) if args.command == "reveal" else set()):
        print(line)
    if args.command == "lab":
        return serve(ws, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
