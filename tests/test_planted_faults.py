"""Planted faults in the trusted code (autograders/faults.py): each must make one of its named fast tests fail.

Each fault runs in a view of the repository (symbolic links, the one patched file written out) with its own
pytest process, two at a time. The view without any fault must pass the same tests first: otherwise a "caught"
fault would prove nothing.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from autograders.faults import FAULTS, Fault, mirror, run_tests


def test_every_fault_applies_to_the_code_as_it_is():
    for fault in FAULTS:
        fault.planted()
    assert len({f.name for f in FAULTS}) == len(FAULTS), "fault names must be unique"


@pytest.mark.slow
def test_every_planted_fault_is_caught_by_a_fast_test(tmp_path):
    every_test = tuple(sorted({t for f in FAULTS for t in f.tests}))
    clean = run_tests(mirror(tmp_path / "clean"), every_test)
    assert clean.returncode == 0, f"the named tests must pass without a fault:\n{clean.stdout[-3000:]}"

    def caught(item: tuple[int, Fault]) -> tuple[Fault, int, str]:
        index, fault = item
        view = mirror(tmp_path / f"fault{index:02d}", {fault.path: fault.planted()})
        run = run_tests(view, fault.tests)
        return fault, run.returncode, run.stdout[-1500:]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(caught, enumerate(FAULTS)))
    survivors = [f"{fault.path}: {fault.name} (pytest exit {code})\n{out}" for fault, code, out in results if code != 1]
    print(f"{len(FAULTS) - len(survivors)} of {len(FAULTS)} planted faults caught")
    assert not survivors, "planted faults that no named test caught (exit 1 = a test failed):\n" + "\n".join(survivors)
