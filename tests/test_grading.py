"""tinyml_lib.grading: messages that say what went wrong, speed checks that report ratios, memory checks, targets."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tinyml_lib import grading
from tinyml_lib.grading import (assert_peak_memory, assert_speedup, check_close, check_equal, check_type,
                                measure_peak_memory, target, target_info)


def message(fn, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as err:
        fn(*args, **kwargs)
    return str(err.value)


def test_check_equal_names_first_mismatch():
    msg = message(check_equal, np.array([[1, 2], [3, 5]]), np.array([[1, 2], [3, 4]]), "counts")
    assert "counts" in msg and "index (1, 1)" in msg and "got 5" in msg and "expected 4" in msg and "1 of 4" in msg


def test_check_equal_shapes_and_scalars():
    assert "shape (3,), expected shape (2,)" in message(check_equal, [1, 2, 3], [1, 2], "v")
    assert "got 7, expected 8" in message(check_equal, 7, 8, "n")
    assert "got 'memory', expected 'compute'" in message(check_equal, "memory", "compute", "bound")
    check_equal(torch.tensor([1, 2]), np.array([1, 2]))
    check_equal({"a", "b"}, {"b", "a"})


def test_check_close_tolerances_and_message():
    check_close(1.0 + 1e-7, 1.0)
    msg = message(check_close, np.array([1.0, 2.0, 3.5]), np.array([1.0, 2.0, 3.0]), "y", rtol=1e-3)
    assert "index (2,)" in msg and "3.5" in msg and "rtol=0.001" in msg
    assert "got 2.0, expected 1.0" in message(check_close, 2.0, 1.0, "x")


def test_hint_is_appended_to_the_failure_message_only():
    assert message(check_equal, 12, 16, "params", hint="biases counted?") == "params: got 12, expected 16; hint: biases counted?"
    assert message(check_equal, [1, 2, 3], [1, 2], "v", hint="h").endswith("expected shape (2,); hint: h")
    assert message(check_equal, "a", "b", "s", hint="h").endswith("; hint: h")
    assert message(check_equal, np.array([1, 2]), np.array([1, 3]), "v", hint="h").endswith("got 2, expected 3; hint: h")
    msg = message(check_close, np.array([1.0, 2.5]), np.array([1.0, 2.0]), "y", hint="bits, not bytes?")
    assert "index (1,)" in msg and msg.endswith("(rtol=1e-05, atol=1e-08); hint: bits, not bytes?")
    assert message(check_close, 2.0, 1.0, "x", hint="h").endswith("; hint: h")
    assert "hint" not in message(check_close, 2.0, 1.0, "x") and "hint" not in message(check_equal, 1, 2)
    check_equal(3, 3, "n", hint="never shown")  # a passing check says nothing
    check_close(1.0, 1.0, "x", hint="never shown")


def test_check_type():
    check_type(3, int)
    assert "expected a int or float, got str" in message(check_type, "3", (int, float), "n")


def test_targets_table():
    assert target("lab01.batched_speedup") == target_info("lab01.batched_speedup")["value"] > 1
    with pytest.raises(KeyError, match="known targets"):
        target("lab01.no_such_target")


def spin(ms: float) -> None:
    # A fixed amount of CPU work (about `ms` milliseconds on an idle core), not a wall-clock wait: under load both
    # sides of a speed check slow down alike, as real code does.
    x = 0
    for i in range(int(ms * 20_000)):
        x += i


def test_assert_speedup_passes_and_reports_ratio(capsys):
    result = assert_speedup(lambda: spin(0.5), lambda: spin(5), 3.0)
    assert result.passed and 5 < result.ratio < 20
    assert "speedup" in capsys.readouterr().out


def test_assert_speedup_fails_after_retries_with_ratio():
    calls = []
    msg = message(assert_speedup, lambda: (calls.append(1), spin(2)), lambda: spin(3), 2.0, retries=2)
    assert "needed >= 2x" in msg and "TOO SLOW" in msg and "attempt 2" in msg
    assert len(calls) > 2 * 9  # both attempts measured


def test_assert_speedup_fails_at_once_when_clearly_slow():
    msg = message(assert_speedup, lambda: spin(2), lambda: spin(2), 3.0, retries=3)
    assert "TOO SLOW" in msg and "attempt 1" in msg  # the last attempt made was the first


def test_assert_speedup_rejects_bad_threshold():
    with pytest.raises(ValueError, match="min_ratio"):
        assert_speedup(lambda: None, lambda: None, 0)


def test_interleaving_resists_a_load_shift():
    # Halfway through, everything gets 3x slower (as if another program started): per-pair ratios stay honest.
    start = time.perf_counter()

    def slowdown():
        return 3 if time.perf_counter() - start > 0.3 else 1

    result = grading.measure_speedup(lambda: spin(1 * slowdown()), lambda: spin(4 * slowdown()), repeats=15)
    assert 3 < result.ratio < 5.5


def test_peak_memory():
    _, peak = measure_peak_memory(lambda: np.ones(4 * 2**20 // 8))
    assert 3.9 < peak < 4.5
    assert_peak_memory(lambda: np.ones(2**10), 1.0)
    assert "allowed 1 MB" in message(assert_peak_memory, lambda: np.ones(2**20), 1.0)


def test_speed_check_ignores_a_patched_clock(monkeypatch):
    # The student's clock says the "fast" call takes 0.1 ms and the baseline 10 ms (a fake 100x speedup); both really
    # do the same work. The check measures with the clock captured at import, so the fake changes nothing.
    fake = {"ns": 0}
    monkeypatch.setattr(time, "perf_counter_ns", lambda: fake["ns"])
    monkeypatch.setattr(time, "perf_counter", lambda: fake["ns"] * 1e-9)

    def advance(ns):
        fake["ns"] += ns

    with pytest.raises(AssertionError, match="TOO SLOW"):
        assert_speedup(lambda: (spin(2), advance(10**5)), lambda: (spin(2), advance(10**7)), 1.5, retries=1)


_FAULTS_SCRIPT = """
import resource
import psutil
import torch
from tinyml_lib.timing import steady_heap

def faults_per_call(calls=10):
    for _ in range(20):  # warm-up: 16 MB temporaries, each freed at once
        torch.ones(4 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        torch.ones(4 << 20)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls

rss = lambda: psutil.Process().memory_info().rss / 2**20
outside, rss_before = faults_per_call(), rss()
with steady_heap():
    inside = faults_per_call()
print(outside, inside, rss() - rss_before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_steady_heap_keeps_temporaries_off_the_page_fault_path():
    # glibc forced to map every large temporary afresh (torch does not ask for huge pages; NumPy does): each 16 MB
    # call faults ~4,000 pages. Inside steady_heap the warm-up's pages are reused, so a speed check times the
    # computation, not the OS; on exit the memory kept for reuse is returned.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], env=env, capture_output=True, text=True, check=True)
    outside, inside, kept_mb = map(float, out.stdout.split())
    assert outside > 4000, f"the set-up should fault every page of each temporary, got {outside:.0f} faults/call"
    assert inside < 20, f"steady_heap: {inside:.0f} page faults per call of a reused 16 MB temporary"
    assert kept_mb < 16, f"steady_heap kept {kept_mb:.0f} MB after it ended"


# ------------------------------------------------------------------ edges: values that tell the faults apart
def test_check_close_uses_the_callers_rtol_and_atol_each_for_its_own_part():
    # Far from 1, the relative and the absolute parts of |a - e| <= atol + rtol * |e| differ by orders of magnitude.
    check_close(1e6 + 5, 1e6, rtol=1e-5, atol=0.0)            # within 10 (relative)
    check_close(1e-6 + 4e-7, 1e-6, rtol=0.0, atol=5e-7)       # within 5e-7 (absolute)
    check_close(1.5, 1.0, rtol=0.6, atol=0.0)                 # a loose rtol is honoured, not replaced by the default
    assert "rtol=1e-05, atol=0.001" in message(check_close, 1e6 + 100, 1e6, "x", rtol=1e-5, atol=1e-3)  # swapped: passes
    message(check_close, 1e-6 + 4e-7, 1e-6, "x", rtol=5e-7, atol=0.0)   # swapped: 5e-7 absolute would pass
    message(check_close, 1.0 + 2e-7, 1.0, "x", rtol=1e-7, atol=0.0)     # tighter than the default is honoured too


def test_check_equal_is_exact_on_large_integers():
    message(check_equal, 1_000_001, 1_000_000, "n")
    message(check_equal, np.array([2**53 + 1], dtype=np.int64), np.array([2**53], dtype=np.int64), "v")
    message(check_equal, np.array([1.0 + 1e-12]), np.array([1.0]), "v")
    check_equal(np.array([2**62], dtype=np.int64), np.array([2**62], dtype=np.int64))


@pytest.mark.parametrize("ratios, passes", [
    ([1.0] * 8 + [2.5], False),          # max 2.5 and mean 1.17: only the median (1.0) fails it, as it must
    ([2.5] * 8 + [1.0], True),           # min 1.0: only the median (2.5) passes it
    ([1.0] * 4 + [2.1] * 5, True),       # median 2.1 passes; mean 1.61 would not
    ([3.0] * 4 + [1.9] * 5, False),      # median 1.9 fails; mean 2.39 would pass
])
def test_assert_speedup_decides_on_the_median_of_the_pairs(monkeypatch, ratios, passes):
    monkeypatch.setattr(grading, "interleaved_ratios", lambda baseline, fast, repeats, warmup: (ratios, 1.0, 1.0))
    if passes:
        assert assert_speedup(lambda: None, lambda: None, 2.0, retries=1).ratio == sorted(ratios)[4]
    else:
        assert "TOO SLOW" in message(assert_speedup, lambda: None, lambda: None, 2.0, retries=1)


def test_pairs_alternate_which_side_runs_first():
    # Each side sleeps past MIN_SAMPLE_S, so every sample is one call: the log shows the order within each pair.
    from tinyml_lib.timing import interleaved_ratios
    log = []
    interleaved_ratios(lambda: (log.append("b"), time.sleep(0.025)), lambda: (log.append("f"), time.sleep(0.025)),
                       repeats=4, warmup=0)
    pairs = "".join(log[-8:])
    assert pairs == "bffbbffb", f"pairs should run baseline-fast, then fast-baseline (ABBA), got {pairs}"


def test_timed_seconds_are_per_call_and_samples_long_enough(monkeypatch):
    # On a virtual clock that only the timed calls advance (a real sleep oversleeps under load: 4 ms took 5).
    from tinyml_lib import timing
    now = [0]
    monkeypatch.setattr(timing, "_clock_ns", lambda: now[0])

    def takes(ns):
        return lambda: now.__setitem__(0, now[0] + ns)
    assert timing.time_loops(takes(10_000_000), 3) == pytest.approx(0.01)      # per call, not per sample
    loops = timing.calibrate_loops(takes(4_000_000))
    assert loops * 0.004 >= timing.MIN_SAMPLE_S and loops == 8, loops          # the smallest power of 2 spanning 20 ms
    assert timing.calibrate_loops(takes(6_000_000)) == 4, "4 x 6 ms spans 20 ms, 2 x 6 ms does not"


def test_peak_memory_counts_a_temporary_freed_before_the_end():
    def temporary():
        block = np.ones(50 * 2**20 // 8)   # 50 MB, freed when the function returns
        return float(block[0])

    _, peak = measure_peak_memory(temporary)
    assert 49 < peak < 52, peak
    assert "peak memory" in message(assert_peak_memory, temporary, 1.0)


# ------------------------------------------------------------------ what mutation testing (mutmut) found untested
class _DeviceArray:
    """Stands in for a CuPy array: a `get()` that copies to the host, from a module named cupy."""
    __module__ = "cupy._core.core"

    def __init__(self, values):
        self.values = np.asarray(values)

    def get(self):
        return self.values


def test_checks_accept_tensors_that_need_grad_and_device_arrays():
    check_close(torch.ones(3, requires_grad=True) * 2, np.full(3, 2.0))
    check_equal(torch.arange(3.0, requires_grad=True), np.arange(3.0))
    check_close(_DeviceArray([1.0, 2.0]), [1.0, 2.0])
    assert "index (1,)" in message(check_equal, _DeviceArray([1, 5]), np.array([1, 2]), "v")
    getter = type("Getter", (), {"get": lambda self: np.array([5])})()   # has get() but is not CuPy: not unwrapped
    message(check_equal, getter, np.array([5]), "v")


def test_messages_name_the_value_shapes_and_types():
    assert message(check_equal, 1, 2).startswith("value: got 1")
    assert message(check_close, 1.0, 2.0).startswith("value: got 1.0")
    assert message(check_close, [1.0, 2.0, 3.0], [1.0, 2.0], "y", hint="h") == "y: shape (3,), expected shape (2,); hint: h"
    assert message(check_type, "3", int) == "value: expected a int, got str ('3')"
    with pytest.raises(KeyError) as err:
        target("lab01.no_such_target")
    assert "lab01.batched_speedup, " in str(err.value)


def test_speed_result_reads_in_milliseconds():
    assert str(grading.SpeedResult(2.5, 0.01, 0.004, 2.0, 1)) == ("speedup 2.50x (needed >= 2x) [ok]: baseline 10.000 ms, "
                                                                 "yours 4.000 ms, attempt 1")
    assert "[TOO SLOW]" in str(grading.SpeedResult(1.5, 0.01, 0.004, 2.0, 3))


def _record_ratio_calls(monkeypatch, ratios):
    calls = []

    def fake(baseline, fast, repeats, warmup=2):
        calls.append((repeats, warmup))
        return ratios, 0.01, 0.005

    monkeypatch.setattr(grading, "interleaved_ratios", fake)
    return calls


def test_speed_checks_measure_nine_pairs_after_two_warmups_and_double_them_on_retry(monkeypatch):
    calls = _record_ratio_calls(monkeypatch, [1.2] * 9)
    assert "attempt 3" in message(assert_speedup, lambda: None, lambda: None, 2.0)
    assert calls == [(9, 2), (18, 2), (36, 2)]
    calls.clear()
    result = grading.measure_speedup(lambda: None, lambda: None)
    assert calls == [(9, 2)] and (result.baseline_s, result.fast_s, result.min_ratio, result.attempts) == (0.01, 0.005, 0.0, 1)


def test_speed_check_thresholds_below_one_and_at_half(monkeypatch):
    calls = _record_ratio_calls(monkeypatch, [0.6] * 9)
    assert assert_speedup(lambda: None, lambda: None, 0.5).passed   # "at least half as fast" is a valid threshold
    calls = _record_ratio_calls(monkeypatch, [1.0] * 9)
    message(assert_speedup, lambda: None, lambda: None, 2.0)
    assert len(calls) == 3, "exactly half the threshold is not 'clearly slow': it is measured again"


def test_peak_memory_leaves_a_callers_tracing_on_and_subtracts_what_was_allocated_before():
    import tracemalloc
    tracemalloc.start()
    try:
        kept = np.ones(20 * 2**20 // 8)   # 20 MB alive before and after
        _, peak = measure_peak_memory(lambda: float(np.ones(5 * 2**20 // 8)[0]))
        assert 4.9 < peak < 5.5, peak
        assert tracemalloc.is_tracing(), "a caller's tracing must stay on"
        del kept
    finally:
        tracemalloc.stop()


def test_peak_memory_limit_is_inclusive_and_reported(monkeypatch, capsys):
    monkeypatch.setattr(grading, "measure_peak_memory", lambda fn: (None, 2.0))
    assert assert_peak_memory(lambda: None, 2.0) == 2.0
    assert "peak memory 2.00 MB (allowed 2 MB) [ok]" in capsys.readouterr().out


def test_calibration_caps_loops_and_pairs_start_after_two_warmups():
    from tinyml_lib.timing import calibrate_loops, interleaved_ratios
    assert calibrate_loops(lambda: None, min_sample_s=60.0) == 1 << 20
    log = []
    interleaved_ratios(lambda: (log.append("b"), time.sleep(0.025)), lambda: (log.append("f"), time.sleep(0.025)), 2)
    assert len(log) == 2 * (2 + 1 + 2), log   # two warm-up calls, one calibration call and two timed calls each
