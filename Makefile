# The two commands of the README:  `make lab`  (set up, then JupyterLab on your workspace/)  and  `make test`  (set up, then
# every test).
# Both need only Python 3.11, pip and the package registries. Set PYTHON to pick the interpreter.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8888
# PyTorch's wheel index: empty = PyPI (on Linux x86_64 a CUDA build of several GB); https://download.pytorch.org/whl/cpu
# for the CPU build only.
TORCH_INDEX ?=
STAMP  := $(VENV)/.installed

.PHONY: setup lab reveal instructor test test-fast library release check-release autograde feedback grades bundle gpu-extras clean

setup: $(STAMP)

# torch goes first and pinned: an unpinned torch (or one pulled in by another package) is a multi-GB CUDA build.
$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (tinyml)"
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get install -y -qq bubblewrap >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null); } || \
	  echo "note: bubblewrap (bwrap) is missing and could not be installed: grading refuses to run until it is (apt-get install bubblewrap)"
	touch $(STAMP)

# Student: your own workspace (git-ignored) made from the release, JupyterLab on it; prints the URL it really got.
lab: setup
	$(PY) -m autograders.workspace lab --port $(PORT)

# Self-learner: the reference answers of LAB fill in your library (and its solution notebook is copied in).
reveal: setup
	$(PY) -m autograders.workspace reveal $(LAB)

# Instructor: JupyterLab on the course root, nbgrader's Formgrader and assignment tools on.
instructor: setup
	$(PY) -m jupyter lab --no-browser --ip 127.0.0.1 --port $(PORT) $(if $(filter 0,$(shell id -u)),--allow-root,)

# The fast tests a file per core (pytest-xdist); then the slow ones, which use both cores themselves (two kernels or
# sandboxes at a time), so that no speed check runs at a load above two.
test: setup
	$(PY) -m pytest -m "not slow and not browser" -n 2 --dist loadfile --durations=12
	$(PY) -m pytest -m "slow or browser" --durations=12

test-fast: setup
	$(PY) -m pytest -m "not slow and not browser"

library: setup
	$(PY) -m tinyml_lib.export

release: setup
	$(PY) -m autograders.course release

check-release: setup
	$(PY) -m autograders.course check-release

# Instructor: put submissions in grading/submitted/<student>/<lab>/<lab>.ipynb (or FROM=folder-or-zip of <student>.ipynb),
# then `make autograde LAB=lab01_metrics`: every submission in its own sandbox, in parallel, grades CSV and feedback.
autograde: setup
	$(PY) -m autograders.classroom $(LAB) $(if $(FROM),--import $(FROM),) $(ARGS)

feedback: setup
	$(PY) -m autograders.course feedback $(LAB)

grades: setup
	$(PY) -m autograders.course grades

# Student bundle: `make bundle DUE="lab01_metrics"` -> dist/student-bundle(.zip), no answers of labs not yet due.
bundle: setup
	$(PY) -m autograders.bundle --due $(DUE) --zip

gpu-extras: setup
	$(PY) -m pip install -r requirements-gpu.txt

clean:
	rm -rf $(VENV) grading test-artifacts .pytest_cache   # never workspace/: it holds the student's work
