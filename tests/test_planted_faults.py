"""Planted faults in the trusted code (autograders/faults.py): each must make one of its named fast tests fail.

Each fault runs in a view of the repository (symbolic links, the one patched file written out) with its own pytest
run, two at a time, each in a fork of a process that imported torch and pytest once (autograders/fault_runs.py). The
view without any fault must pass the same tests: otherwise a "caught" fault would prove nothing.
"""
from __future__ import annotations

import pytest

from autograders.faults import FAULTS, mirror, run_tests


def test_every_fault_applies_to_the_code_as_it_is():
    for fault in FAULTS:
        fault.planted()
    assert len({f.name for f in FAULTS}) == len(FAULTS), "fault names must be unique"


@pytest.mark.slow
def test_every_planted_fault_is_caught_by_a_fast_test(tmp_path):
    every_test = tuple(sorted({t for f in FAULTS for t in f.tests}))
    runs = [(mirror(tmp_path / "clean"), every_test)]
    runs += [(mirror(tmp_path / f"fault{i:02d}", {f.path: f.planted()}), f.tests) for i, f in enumerate(FAULTS)]
    (clean_code, clean_out), *results = run_tests(runs, workers=2)
    assert clean_code == 0, f"the named tests must pass without a fault:\n{clean_out}"
    survivors = [f"{fault.path}: {fault.name} (pytest exit {code})\n{out}"
                 for fault, (code, out) in zip(FAULTS, results) if code != 1]
    print(f"{len(FAULTS) - len(survivors)} of {len(FAULTS)} planted faults caught")
    assert not survivors, "planted faults that no named test caught (exit 1 = a test failed):\n" + "\n".join(survivors)
