"""Measure this machine's roofline on the CPU: peak matmul FLOP/s, DRAM and cache bandwidth, and the workloads
placed on it, all in one run.

A roofline only bounds the points drawn on it if roofs and points are measured alike: the same threads, the same
run, the same machine load, and samples of the same length. `measure_roofline` times the roof kernels and the
caller's workloads interleaved in rounds, with one torch thread count for the whole run and short samples for all.
Why, measured on this course's shared 2-core machine while other programs ran: the old separate measurements (one
1024^3 matmul call timed before the layers) gave a peak of 15.6 GFLOP/s because each 1024^3 call took 126-172 ms and
so always shared the cores, while 1-2 ms layer calls often ran alone, at up to 35 GFLOP/s (2.3x "above" the peak).
Interleaving alone is not enough: with 2 ms samples and matmuls of up to 768^3 (3-12 ms a call) a run still put two
layers 1.7-2.1x above the compute roof. A sample longer than the scheduler's time slice is never undisturbed; one as
short as a layer call sometimes is, and the best round of the roof then finds it.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from tinyml_lib.timing import calibrate_loops, steady_heap, time_loops

# Where Linux describes the caches of CPU 0: one index<k>/ folder per cache with `level`, `type` and `size` files.
CACHE_SYSFS = Path("/sys/devices/system/cpu/cpu0/cache")
# Used where sysfs does not say (macOS, Windows, some containers): a common laptop's private L2 and shared L3.
DEFAULT_CACHES = {2: 512 * 2**10, 3: 8 * 2**20}
# Square fp32 matmul sizes for the compute roof: intensity n/6 FLOP/byte (43-85) is far above any CPU's ridge point,
# and one call (0.2-4 ms on one core) is no longer than a layer call, so its best round finds a quiet spell as often.
PEAK_MATMUL_SIZES = (256, 384, 512)
# Each timed sample repeats a call until it spans this long: long enough for the clock and the Python call overhead
# (a few us) to vanish, shorter than the scheduler's time slice (a few ms) so that some samples run undisturbed.
ROOFLINE_SAMPLE_S = 0.5e-3


@dataclass(frozen=True)
class Workload:
    """One piece of work to place on the roofline.

    Attributes:
        name: unique label (e.g. the layer's name).
        fn: callable with no arguments that does the work once (e.g. `lambda: layer(x)`).
        flops: floating-point operations per call (2 per multiply-accumulate), > 0.
        bytes: bytes per call if each weight, input and output moves once (the compulsory traffic), > 0. It is also
            the working set: a workload whose bytes fit in the last-level cache stays there between calls.
    """
    name: str
    fn: Callable[[], object]
    flops: float
    bytes: float


@dataclass(frozen=True)
class Roofline:
    """Roofs and workload points measured together by `measure_roofline`.

    Attributes:
        peak_flops: compute roof, FLOP/s: best over rounds of fp32 square matmuls (`PEAK_MATMUL_SIZES`).
        dram_bandwidth: DRAM roof, byte/s: best over rounds of a read and a copy through `dram_buffer_bytes`.
        cache_bandwidth: cache roof, byte/s: the same kernels through `cache_buffer_bytes`, held in the LLC.
        cache_bytes: last-level cache size in bytes; a workload whose working set fits is cache-resident.
        dram_buffer_bytes, cache_buffer_bytes: bytes each bandwidth kernel touches per call.
        threads: torch threads used for every kernel and workload.
        rounds: interleaved rounds measured.
        achieved: workload name -> median FLOP/s over the rounds.
        intensity: workload name -> flops / bytes (FLOP/byte, counted from compulsory DRAM traffic).
        working_set: workload name -> bytes per call.
    """
    peak_flops: float
    dram_bandwidth: float
    cache_bandwidth: float
    cache_bytes: int
    dram_buffer_bytes: int
    cache_buffer_bytes: int
    threads: int
    rounds: int
    achieved: dict[str, float] = field(default_factory=dict)
    intensity: dict[str, float] = field(default_factory=dict)
    working_set: dict[str, float] = field(default_factory=dict)

    def bandwidth_for(self, name: str) -> tuple[float, str]:
        """(bandwidth in byte/s, "cache" or "DRAM"): the memory roof that bounds workload `name`.

        A workload whose working set fits in the last-level cache is read from there on every call after the first:
        its DRAM traffic is ~0, so its intensity counted from DRAM bytes is only a lower bound on the real one, and
        it may sit above the DRAM line. Its bytes still come through the cache, so the cache roof bounds it.
        """
        if name not in self.working_set:
            raise ValueError(f"name: expected one of {sorted(self.working_set)}, got {name!r}")
        if self.working_set[name] <= self.cache_bytes:
            return self.cache_bandwidth, "cache"
        return self.dram_bandwidth, "DRAM"

    def points(self) -> list[tuple[str, float, float]]:
        """(name, intensity FLOP/byte, achieved FLOP/s) per workload, in measurement order, for `plot_roofline`."""
        return [(name, self.intensity[name], self.achieved[name]) for name in self.achieved]


def cache_sizes() -> dict[int, int]:
    """Data (or unified) cache size in bytes per level as CPU 0 sees it, e.g. {1: 32768, 2: 524288, 3: 33554432}.

    Read from /sys/devices/system/cpu/cpu0/cache when it exists (a private cache is one core's; a shared one, the
    whole cache); else `DEFAULT_CACHES`.
    """
    sizes: dict[int, int] = {}
    for index in sorted(CACHE_SYSFS.glob("index[0-9]*")):
        try:
            kind = (index / "type").read_text().strip()
            level = int((index / "level").read_text())
            size = (index / "size").read_text().strip()  # "32K", "512K", "32768K", "1M"
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or not size:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1].upper(), 1)
        sizes[level] = int(size.rstrip("KkMmGg")) * scale
    return sizes if 2 in sizes else dict(DEFAULT_CACHES)


def bandwidth_buffer_sizes(threads: int, caches: dict[int, int] | None = None) -> tuple[int, int, int]:
    """(last-level cache bytes, cache-roof buffer bytes, DRAM-roof buffer bytes) for `threads` threads.

    The cache roof's buffer is twice the private L2 of the threads that stream it (so it is not served from L2
    alone) and at most half the LLC (so it stays in the LLC with room for everything else). The DRAM roof's buffer
    is 4x the LLC, at least 64 MiB, so nearly every byte comes from DRAM. Why the LLC and not L2: Lab 01's VGG-like
    layers at batch 32 have working sets of 0.6-3.1 MB, above the two cores' L2 (2 x 512 KiB on the course machine)
    and far below its 32 MiB LLC, so they stream from the LLC. A workload small enough for L1/L2 (the lab's 10 KB
    linear layer) could in principle beat the LLC roof; it reaches a few percent of it.
    """
    caches = cache_sizes() if caches is None else caches
    llc, l2 = caches[max(caches)], caches.get(2, DEFAULT_CACHES[2])
    cache_buffer = min(2 * l2 * threads, llc // 2) if max(caches) > 2 else llc // 2
    return llc, cache_buffer, max(4 * llc, 64 * 2**20)


def _bandwidth_kernels(n_bytes: int) -> list[Workload]:
    """A read and a copy through `n_bytes` of float32, in torch so they use torch's threads.

    The read is a matrix-vector product over the buffer viewed as a (rows, 1024) matrix (0.5 FLOP/byte, so bound by
    bandwidth on any CPU): BLAS keeps its threads busy in one call, where torch's own elementwise kernels on a loaded
    machine wait for a descheduled thread at every call (measured here with 2 threads and another process running:
    copies and sums through the LLC at 0.1-3 GB/s, the matrix-vector product at 22 GB/s). The copy moves the first
    half of the buffer into the second. `bytes` counts what a kernel must move: the matrix once for the read, n/2 read
    plus n/2 written for the copy (a write-allocate cache's extra read is not counted: a lower bound).
    """
    buf = torch.ones(n_bytes // 4)  # (n,) float32, pages faulted in by the fill
    matrix, x, y = buf[: buf.numel() // 1024 * 1024].view(-1, 1024), torch.ones(1024), torch.empty(buf.numel() // 1024)
    src, dst = buf[: buf.numel() // 2], buf[buf.numel() // 2:]
    return [Workload("read", lambda: torch.mv(matrix, x, out=y), 0.0, float(matrix.numel() * 4)),
            Workload("copy", lambda: dst.copy_(src), 0.0, float(2 * src.numel() * 4))]


def _matmul_kernels() -> list[Workload]:
    """fp32 square matmuls into a preallocated output (no allocation in the timed call), 2 n^3 FLOPs each."""
    kernels = []
    for n in PEAK_MATMUL_SIZES:
        a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
        kernels.append(Workload(f"matmul{n}", lambda a=a, b=b, c=c: torch.mm(a, b, out=c), 2.0 * n**3, 12.0 * n * n))
    return kernels


def _check_workloads(workloads: Sequence[Workload]) -> None:
    """Raise TypeError/ValueError unless `workloads` is a non-empty sequence of valid, uniquely named Workloads."""
    if isinstance(workloads, (str, bytes)) or not isinstance(workloads, Sequence) or not workloads:
        raise ValueError(f"workloads: expected a non-empty sequence of machine.Workload, got {workloads!r}")
    for w in workloads:
        if not isinstance(w, Workload):
            raise TypeError(f"workloads: expected machine.Workload items, got {type(w).__name__}")
        if not callable(w.fn) or not (w.flops > 0 and w.bytes > 0):
            raise ValueError(f"workload {w.name!r}: expected a callable fn, flops > 0 and bytes > 0; "
                             f"got fn={w.fn!r}, flops={w.flops}, bytes={w.bytes}")
    names = [w.name for w in workloads]
    if len(set(names)) != len(names):
        raise ValueError(f"workloads: expected unique names, got {names}")


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")


def _interleaved_rates(groups: dict[str, list[Workload]], amount: dict[str, float], rounds: int,
                       min_sample_s: float) -> dict[str, list[float]]:
    """Per workload name, `rounds` rates (amount per second), every workload timed once per round.

    The order rotates by one each round, so no workload always follows the same one (whose caches it would inherit).
    """
    flat = [w for ws in groups.values() for w in ws]
    for w in flat:  # warm-up: lazy initialisation, oneDNN primitive creation, first-touch page faults
        w.fn()
    loops = {w.name: calibrate_loops(w.fn, min_sample_s) for w in flat}  # runs each at least once more
    rates: dict[str, list[float]] = {w.name: [] for w in flat}
    for r in range(rounds):
        for w in flat[r % len(flat):] + flat[: r % len(flat)]:
            rates[w.name].append(amount[w.name] / time_loops(w.fn, loops[w.name]))
    return rates


def measure_roofline(workloads: Sequence[Workload], threads: int, rounds: int = 10,
                     min_sample_s: float = ROOFLINE_SAMPLE_S) -> Roofline:
    """Compute roof, DRAM roof, cache roof and the workloads' FLOP/s, measured interleaved in one run.

    Every round times each roof kernel and each workload once (a sample: one call, or as many as span
    `min_sample_s`), so a change of the machine's load hits roofs and points alike, and roof samples are no longer
    than point samples, so they are as likely to run undisturbed; all run with `threads` torch threads (set for the
    run, restored after) under `torch.inference_mode`. A roof is the BEST over rounds (and over its kernels): it is
    what the machine can do, and load from other processes only ever slows a sample down, so the fastest sample is
    the closest to the capability. A workload's point is its MEDIAN over rounds: its typical speed, robust to load
    spikes and to lucky quiet spells alike. The best of `rounds` roof samples is above the median of `rounds` point
    samples taken in the same spells, so a point can only exceed its roof if it truly does something faster than the
    roof kernel.

    Roof kernels, fp32 in torch: compute, square matmuls of `PEAK_MATMUL_SIZES`; DRAM, a read and a copy through a
    buffer 4x the last-level cache; cache, the same through twice the private L2 of the threads (at most half the
    LLC), so its bytes stream from the LLC: the cache the workloads' working sets live in (see
    `bandwidth_buffer_sizes`; cache sizes come from `cache_sizes`).

    Args:
        workloads: non-empty sequence of Workload with unique names (each `fn` does one call; flops and bytes > 0).
        threads: torch threads for the whole run, an int >= 1 (the same for roofs and workloads).
        rounds: interleaved rounds, an int >= 3.
        min_sample_s: each sample repeats a call until it spans at least this many seconds, > 0.
    Returns:
        Roofline: roofs in FLOP/s and byte/s, and per workload its median FLOP/s, intensity and working set.
    """
    _check_workloads(workloads)
    _check_count("threads", threads, 1)
    _check_count("rounds", rounds, 3)
    if not min_sample_s > 0:
        raise ValueError(f"min_sample_s: expected seconds > 0, got {min_sample_s!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        llc, cache_buffer, dram_buffer = bandwidth_buffer_sizes(threads)
        roofs = {"compute": _matmul_kernels(), "cache": _bandwidth_kernels(cache_buffer),
                 "dram": _bandwidth_kernels(dram_buffer)}
        groups = {kind: [Workload(f"{kind}:{w.name}", w.fn, w.flops, w.bytes) for w in ws]
                  for kind, ws in roofs.items()}
        groups["workloads"] = list(workloads)
        amount = {w.name: (w.bytes if kind in ("cache", "dram") else w.flops)
                  for kind, ws in groups.items() for w in ws}
        with torch.inference_mode(), steady_heap():
            rates = _interleaved_rates(groups, amount, rounds, min_sample_s)
    finally:
        torch.set_num_threads(previous)
    best = {kind: max(max(rates[w.name]) for w in groups[kind]) for kind in roofs}
    return Roofline(peak_flops=best["compute"], dram_bandwidth=best["dram"], cache_bandwidth=best["cache"],
                    cache_bytes=llc, dram_buffer_bytes=dram_buffer, cache_buffer_bytes=cache_buffer,
                    threads=threads, rounds=rounds,
                    achieved={w.name: statistics.median(rates[w.name]) for w in workloads},
                    intensity={w.name: w.flops / w.bytes for w in workloads},
                    working_set={w.name: float(w.bytes) for w in workloads})


def measure_bandwidth(n_bytes: int = 256 * 2**20, repeats: int = 5, threads: int | None = None) -> float:
    """Best read or copy bandwidth in byte/s through `n_bytes` (far above the caches: DRAM), with `threads` torch
    threads (default: torch's current count). Standalone; to place workloads on a roofline use `measure_roofline`,
    which measures roofs and workloads together.
    """
    _check_count("n_bytes", n_bytes, 4096)
    _check_count("repeats", repeats, 1)
    return _best_standalone(lambda: _bandwidth_kernels(n_bytes), "bytes", repeats, threads)


def measure_peak_flops(repeats: int = 5, threads: int | None = None) -> float:
    """Best fp32 FLOP/s of the square matmuls of `PEAK_MATMUL_SIZES` (2 n^3 FLOPs per call), with `threads` torch
    threads (default: torch's current count). Standalone; see `measure_roofline`.
    """
    _check_count("repeats", repeats, 1)
    return _best_standalone(_matmul_kernels, "flops", repeats, threads)


def _best_standalone(make: Callable[[], list[Workload]], unit: str, repeats: int, threads: int | None) -> float:
    threads = torch.get_num_threads() if threads is None else threads
    _check_count("threads", threads, 1)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        kernels = make()
        with torch.inference_mode(), steady_heap():
            rates = _interleaved_rates({"k": kernels}, {w.name: getattr(w, unit) for w in kernels}, repeats,
                                       ROOFLINE_SAMPLE_S)
    finally:
        torch.set_num_threads(previous)
    return max(max(r) for r in rates.values())


def describe() -> str:
    """One line naming the CPU and the threads torch uses, for the lab's summary table."""
    import platform
    return f"{platform.processor() or platform.machine()}, torch threads: {torch.get_num_threads()}"
