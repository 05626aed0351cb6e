"""Write the student bundle: the student workspace, made with the due labs revealed, plus what sets it up; zipped.

    python -m autograders.bundle --due lab01_metrics [--out dist/student-bundle] [--zip]

One mechanism with `make lab` (autograders/workspace.py): the labs, and a library whose packages are the reference
for the due labs and stubs (naming lab, section and function) for the others; kernel sources that answer a kernel
exercise of a lab not due are withheld; the data is copied in. solutions/, autograders/ (mutants hold wrong *and*
right answers) and tests/ stay out. A student unzips it and runs `make lab` inside (its own small Makefile).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from autograders.answers import ROOT
from autograders.workspace import sync

SETUP_FILES = ["requirements.txt", "requirements-dev.txt", "requirements-nodeps.txt", "LICENSE"]
MAKEFILE = """\
# Student bundle: `make lab` sets up .venv (Python 3.11) and opens JupyterLab on these labs with this library
# (.jupyter/ turns nbgrader's instructor tools off; .ipython/ adds the hints after a failing cell).
PYTHON ?= python3.11
PORT ?= 8888
TORCH_INDEX ?=
PY := .venv/bin/python

lab: .venv/.installed
	PYTHONPATH=$(CURDIR)/lib IPYTHONDIR=$(CURDIR)/.ipython JUPYTER_CONFIG_DIR=$(CURDIR)/.jupyter \
	  $(PY) -m jupyterlab --no-browser --ip 127.0.0.1 --port $(PORT) --ServerApp.root_dir=$(CURDIR) \
	  $(if $(filter 0,$(shell id -u)),--allow-root,)

.venv/.installed: requirements.txt requirements-dev.txt requirements-nodeps.txt
\ttest -x $(PY) || $(PYTHON) -m venv .venv
\t$(PY) -m pip install --quiet --upgrade pip
\t$(PY) -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
\t$(PY) -m pip install --quiet -r requirements-dev.txt
\t$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
\ttouch .venv/.installed
"""
START = """\
# Your lab bundle

Run `make lab` here (Python 3.11 and a C++ compiler needed; the first run installs for a few minutes), open the
URL it prints and start with the first lab folder. Each lab's last cell exports your answers into `lib/`, the
library later labs import. Labs marked due by your instructor use the reference library where you have not
exported your own. Hand in the notebook `labNN_topic/labNN_topic.ipynb` of each lab (Lab 03 comes in two parts,
`lab03_quantization` and `lab03b_low_bit`: two notebooks).
Without `make`: see the course README ("Set-up without make"), with `PYTHONPATH=lib` for JupyterLab.
"""


def write_bundle(out: Path, due: set[str]) -> Path:
    """The workspace for a class: labs, library (due labs revealed), kernels, data, set-up files; `out` replaced."""
    if out.exists():
        shutil.rmtree(out)
    sync(out, reveal=set(due), solutions=False, copy_data=True)
    for name in SETUP_FILES:
        shutil.copy2(ROOT / name, out / name)
    (out / "Makefile").write_text(MAKEFILE)
    (out / "START.md").write_text(START)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", nargs="*", default=[], help="labs whose answers may ship in the library")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "student-bundle")
    parser.add_argument("--zip", action="store_true", help="also write <out>.zip")
    args = parser.parse_args(argv)
    out = write_bundle(args.out, set(args.due))
    if args.zip:
        shutil.make_archive(str(out), "zip", out)
    print(f"student bundle in {out} (answers included for: {', '.join(sorted(args.due)) or 'no lab'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
