"""Checks used by the labs' test cells: they tell a student what went wrong, not just that something did.

Every threshold comes from `targets.toml` through `target()`, so a visible assert and a hidden test can never
disagree about what "good enough" means.
"""
from __future__ import annotations

import functools
import statistics
import tomllib
import tracemalloc
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable

import numpy as np

from tinyml_lib.timing import interleaved_ratios


# ----------------------------------------------------------------------------------------------- targets
@functools.cache
def _targets() -> dict:
    return tomllib.loads(resources.files("tinyml_lib").joinpath("targets.toml").read_text())


def target_info(key: str) -> dict:
    """The whole entry of a target, e.g. `target_info("lab01.vectorised_speedup")` -> {"value": 5.0, ...}."""
    section, _, name = key.partition(".")
    table = _targets()
    if section not in table or name not in table[section]:
        known = ", ".join(f"{s}.{n}" for s in table for n in table[s])
        raise KeyError(f"no target {key!r} in targets.toml; known targets: {known}")
    return table[section][name]


def target(key: str) -> float:
    """The threshold value of a target, e.g. `target("lab01.vectorised_speedup")` -> 5.0."""
    return target_info(key)["value"]


# ----------------------------------------------------------------------------------------------- values
def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    elif hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        x = x.get()
    return np.asarray(x)


def check_type(value: Any, expected: type | tuple[type, ...], name: str = "value") -> None:
    """Fail with a message naming the expected and the actual type."""
    if not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        raise AssertionError(f"{name}: expected a {names}, got {type(value).__name__} ({value!r:.80})")


def _first_mismatch(bad: np.ndarray, actual: np.ndarray, expected: np.ndarray) -> str:
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    where = idx if actual.ndim else "()"
    return (f"{int(bad.sum())} of {bad.size} elements differ; first at index {where}: "
            f"got {actual[idx].item()!r}, expected {expected[idx].item()!r}")


def _hinted(message: str, hint: str) -> str:
    """A failure message with the exercise's hint appended (the common mistake this check catches)."""
    return f"{message}; hint: {hint}" if hint else message


def check_equal(actual: Any, expected: Any, name: str = "value", hint: str = "") -> None:
    """Exact equality for ints, strings and arrays; says the shapes or the first differing element.

    `hint`, if given, is appended to the failure message as "hint: ..." (e.g. "biases counted?").
    """
    if isinstance(expected, (str, bool, type(None), dict, set, frozenset)):
        if actual != expected:
            raise AssertionError(_hinted(f"{name}: got {actual!r}, expected {expected!r}", hint))
        return
    a, e = _to_numpy(actual), _to_numpy(expected)
    if a.shape != e.shape:
        raise AssertionError(_hinted(f"{name}: shape {a.shape}, expected shape {e.shape}", hint))
    bad = a != e
    if bad.any():
        if e.ndim == 0:
            raise AssertionError(_hinted(f"{name}: got {actual!r}, expected {expected!r}", hint))
        raise AssertionError(_hinted(f"{name}: {_first_mismatch(bad, a, e)}", hint))


def check_close(actual: Any, expected: Any, name: str = "value", rtol: float = 1e-5, atol: float = 1e-8,
                hint: str = "") -> None:
    """`np.allclose` with a message: shapes, number of mismatches, first mismatching index, both values.

    `hint`, if given, is appended to the failure message as "hint: ..." (e.g. "bits, not bytes?").
    """
    a, e = _to_numpy(actual).astype(np.float64), _to_numpy(expected).astype(np.float64)
    if a.shape != e.shape:
        raise AssertionError(_hinted(f"{name}: shape {a.shape}, expected shape {e.shape}", hint))
    bad = ~np.isclose(a, e, rtol=rtol, atol=atol)
    if bad.any():
        if e.ndim == 0:
            raise AssertionError(_hinted(f"{name}: got {float(a)!r}, expected {float(e)!r} (rtol={rtol}, atol={atol})",
                                         hint))
        raise AssertionError(_hinted(f"{name}: {_first_mismatch(bad, a, e)} (rtol={rtol}, atol={atol})", hint))


# ----------------------------------------------------------------------------------------------- speed
@dataclass(frozen=True)
class SpeedResult:
    """Outcome of a speed check: the measured median ratio baseline/fast and the per-call medians in seconds."""
    ratio: float
    baseline_s: float
    fast_s: float
    min_ratio: float
    attempts: int

    @property
    def passed(self) -> bool:
        return self.ratio >= self.min_ratio

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "TOO SLOW"
        return (f"speedup {self.ratio:.2f}x (needed >= {self.min_ratio:g}x) [{verdict}]: baseline "
                f"{self.baseline_s * 1e3:.3f} ms, yours {self.fast_s * 1e3:.3f} ms, attempt {self.attempts}")


CLEARLY_SLOW = 0.5  # a ratio below this fraction of the threshold is not retried


def measure_speedup(fast: Callable[[], object], baseline: Callable[[], object], repeats: int = 9,
                    warmup: int = 2) -> SpeedResult:
    """Median ratio of baseline time to fast time, measured A/B interleaved in this process (min_ratio = 0)."""
    ratios, tb, tf = interleaved_ratios(baseline, fast, repeats, warmup)
    return SpeedResult(statistics.median(ratios), tb, tf, 0.0, 1)


def assert_speedup(fast: Callable[[], object], baseline: Callable[[], object], min_ratio: float, *,
                   repeats: int = 9, warmup: int = 2, retries: int = 3) -> SpeedResult:
    """Check that `fast` beats `baseline` by at least `min_ratio`, and report the measured ratio.

    The ratio is the median over `repeats` interleaved pairs (see `timing.interleaved_ratios`). A check that falls
    short is measured again, up to `retries` attempts with twice the repeats each time, because a loaded machine can
    slow one side for a while; a genuinely slow solution fails every attempt, and one below half the threshold fails
    at once. The noise margin lives in the target table: thresholds sit well below what a correct solution measures.

    Args:
        fast: the student's version, a callable with no arguments.
        baseline: the reference to beat, a callable with no arguments.
        min_ratio: required baseline_time / fast_time, e.g. `target("lab01.vectorised_speedup")`.
    Returns:
        SpeedResult of the passing (or last) attempt. Raises AssertionError with the measured ratio otherwise.
    """
    if not min_ratio > 0:
        raise ValueError(f"min_ratio must be > 0, got {min_ratio!r}")
    for attempt in range(1, retries + 1):
        ratios, tb, tf = interleaved_ratios(baseline, fast, repeats * 2 ** (attempt - 1), warmup)
        result = SpeedResult(statistics.median(ratios), tb, tf, min_ratio, attempt)
        if result.passed:
            print(result)
            return result
        if result.ratio < min_ratio * CLEARLY_SLOW:
            break  # not noise: no retry turns half the required speedup into a pass
    raise AssertionError(str(result))


# ----------------------------------------------------------------------------------------------- memory
def measure_peak_memory(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run `fn()` and return (its result, peak MB allocated during the call).

    Counts allocations that Python's tracemalloc sees: Python objects and NumPy buffers (NumPy reports its data
    allocations to tracemalloc). PyTorch's CPU allocator is not traced; measure torch code with RSS instead.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return result, (peak - base) / 2**20


def assert_peak_memory(fn: Callable[[], Any], max_mb: float) -> float:
    """Check that `fn()` allocates at most `max_mb` MB at its peak; returns the measured peak in MB."""
    _, peak = measure_peak_memory(fn)
    if peak > max_mb:
        raise AssertionError(f"peak memory {peak:.2f} MB, allowed {max_mb:g} MB")
    print(f"peak memory {peak:.2f} MB (allowed {max_mb:g} MB) [ok]")
    return peak
