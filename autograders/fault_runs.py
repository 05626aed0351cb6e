"""Run pytest in many repository views, each in a fork of one process that has imported the heavy modules once.

    python -P autograders/fault_runs.py < jobs.json > results.json

The planted-fault test (tests/test_planted_faults.py) runs a few fast tests in one repository view per fault. As a
fresh `python -m pytest` each run paid about 5 s of imports (torch, numpy, pytest) for 1-3 s of tests. Here the
imports are paid once: this process imports PRELOADED, nothing of the course, then forks a child per job. The child
moves into its view (working directory, sys.path, PYTHONPATH for the processes it starts) and runs pytest there, so
the course's modules (the faulty one included) are imported from the view, as in a fresh process.

Started with -P and as a file, not a module, so that neither the repository nor this folder is on sys.path.
Input: a JSON list of {"view": path, "tests": [node ids], "timeout": seconds}; `workers` children at a time (argv[1],
default 2). Output: a JSON list, in the input's order, of {"code": pytest's exit code (or -signal), "out": the last
3000 characters of its output}.
"""
import json
import os
import signal
import sys
import tempfile
import time

PRELOADED = ("numpy", "torch", "pytest", "nbformat")   # not hypothesis: a pytest plugin, it must load after pytest starts


def _child(job: dict, out_fd: int) -> None:
    import pytest
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.chdir(job["view"])
    os.environ["PYTHONPATH"] = job["view"]
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    sys.dont_write_bytecode = True
    sys.path.insert(0, job["view"])
    code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-m", "", *job["tests"]])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


def run(jobs: list[dict], workers: int) -> list[dict]:
    results: list[dict | None] = [None] * len(jobs)
    running: dict[int, tuple[int, float, object]] = {}   # pid -> (job index, deadline, output file)
    pending = list(range(len(jobs)))
    while pending or running:
        while pending and len(running) < workers:
            index = pending.pop(0)
            out = tempfile.TemporaryFile()
            pid = os.fork()
            if pid == 0:
                try:
                    _child(jobs[index], out.fileno())
                finally:
                    os._exit(70)
            running[pid] = (index, time.monotonic() + jobs[index]["timeout"], out)
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for pid_, (index, deadline, _) in running.items():
                if time.monotonic() > deadline:
                    os.kill(pid_, signal.SIGKILL)
            time.sleep(0.05)
            continue
        index, _, out = running.pop(pid)
        out.seek(0)
        text = out.read().decode(errors="replace")
        out.close()
        code = os.waitstatus_to_exitcode(status)
        results[index] = {"code": code, "out": text[-3000:]}
    return results


def main() -> None:
    for name in PRELOADED:
        __import__(name)
    jobs = json.load(sys.stdin)
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    json.dump(run(jobs, workers), sys.stdout)


if __name__ == "__main__":
    main()
