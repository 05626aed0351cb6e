"""Timing primitives shared by the graded speed checks and the benchmarks.

CPU timing uses `time.perf_counter_ns`. A call shorter than the timer can resolve reliably is repeated in a
loop (`calibrate_loops`), as `timeit.Timer.autorange` does, so one sample always spans at least `min_sample_s`.
"""
from __future__ import annotations

import ctypes
import statistics
import sys
import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Callable, Iterator

# The clock is captured when the library is imported, before any student code runs: a notebook that later replaces
# time.perf_counter_ns (or time.perf_counter) cannot speed up its own measurements.
_clock_ns = time.perf_counter_ns

# Each sample spans at least this long. Under load the scheduler preempts in slices of a few ms: a 2 ms sample is
# either untouched or doubled, while samples of 20 ms or more on both sides see the same share of the CPU.
MIN_SAMPLE_S = 20e-3


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@lru_cache(maxsize=1)
def _glibc():
    """The C library if it is glibc (it has mallopt and malloc_trim), else None (macOS, musl, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    return libc if all(hasattr(libc, f) for f in ("mallopt", "malloc_trim", "gnu_get_libc_version")) else None


@contextmanager
def steady_heap() -> Iterator[None]:
    """Keep freed memory in the process while timing, so a sample measures the computation, not the OS.

    glibc hands a large temporary (>= 128 KB until its adaptive threshold rises) back to the OS on free and maps fresh
    pages on the next call: each call then pays a page fault per 4 KB page. On a virtual machine that costs more than
    reading the same bytes (measured here: 36 MB of fresh temporaries per call added 21 ms to a 5 ms computation), and
    whether it happens depends on what the process allocated before. Inside this context temporaries below 32 MB (the
    largest mmap threshold glibc accepts) come from the heap and freed heap memory is kept, so warm-up leaves both
    sides in steady state. On exit the thresholds are those glibc's adaptive scheme settles at after a large free
    (32 MB mmap, 64 MB trim) and the kept memory is returned. Elsewhere than glibc this does nothing.
    """
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
        libc.malloc_trim(0)


def time_loops(fn: Callable[[], object], loops: int) -> float:
    """Seconds per call of `fn`, averaged over `loops` back-to-back calls.

    Args:
        fn: callable with no arguments.
        loops: number of calls in the sample, >= 1.
    Returns:
        float seconds per call.
    """
    start = _clock_ns()
    for _ in range(loops):
        fn()
    return (_clock_ns() - start) * 1e-9 / loops


def calibrate_loops(fn: Callable[[], object], min_sample_s: float = MIN_SAMPLE_S) -> int:
    """Smallest power of 2 such that `loops` calls of `fn` take at least `min_sample_s` seconds."""
    loops = 1
    while loops < (1 << 20):
        if time_loops(fn, loops) * loops >= min_sample_s:
            return loops
        loops *= 2
    return loops


def interleaved_ratios(baseline: Callable[[], object], fast: Callable[[], object], repeats: int,
                       warmup: int = 2) -> tuple[list[float], float, float]:
    """Per-pair time ratios baseline/fast measured A/B interleaved in one process.

    Each repeat times both callables back to back, alternating which goes first (ABBA) so that a slow drift in
    machine load affects both sides alike; the median of the pair ratios is then robust to load spikes. Freed
    memory stays in the process meanwhile (`steady_heap`).

    Args:
        baseline, fast: callables with no arguments.
        repeats: number of (baseline, fast) pairs, >= 1.
        warmup: untimed calls of each before measuring (caches, lazy initialisation, allocator).
    Returns:
        (ratios, median seconds per baseline call, median seconds per fast call).
    """
    ratios, times_b, times_f = [], [], []
    with steady_heap():
        for _ in range(warmup):
            baseline()
            fast()
        loops_b, loops_f = calibrate_loops(baseline), calibrate_loops(fast)
        for i in range(repeats):
            if i % 2 == 0:
                tb, tf = time_loops(baseline, loops_b), time_loops(fast, loops_f)
            else:
                tf, tb = time_loops(fast, loops_f), time_loops(baseline, loops_b)
            ratios.append(tb / tf)
            times_b.append(tb)
            times_f.append(tf)
    return ratios, statistics.median(times_b), statistics.median(times_f)


def round_robin_seconds(fns: dict[str, Callable[[], object]], rounds: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each callable, timed in turn: each round times every callable once (a sample of at
    least `MIN_SAMPLE_S`), so load from other processes falls on all of them alike. For a plot of many versions of
    one computation; a graded ratio of two uses `interleaved_ratios`.

    Args:
        fns: {name: callable with no arguments}.  rounds: >= 1 samples of each.  warmup: untimed calls of each first.
    Returns:
        {name: float seconds per call}, in the order of `fns`.
    """
    if rounds < 1:
        raise ValueError(f"rounds: expected >= 1, got {rounds}")
    samples = {name: [] for name in fns}
    with steady_heap():
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        loops = {name: calibrate_loops(fn) for name, fn in fns.items()}
        for _ in range(rounds):
            for name, fn in fns.items():
                samples[name].append(time_loops(fn, loops[name]))
    return {name: statistics.median(times) for name, times in samples.items()}
