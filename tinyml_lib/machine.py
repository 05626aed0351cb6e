"""Measure this machine's roofline: sustained memory bandwidth and peak matmul FLOP/s on the CPU."""
from __future__ import annotations

import numpy as np
import torch

from tinyml_lib.timing import time_loops


def measure_bandwidth(n_bytes: int = 64 * 2**20, repeats: int = 5) -> float:
    """Sustained main-memory bandwidth in bytes/s, from copying a buffer far larger than the caches.

    A copy reads `n_bytes` and writes `n_bytes`, so 2 * n_bytes move per call (write-allocate traffic ignored).
    """
    src = np.ones(n_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in before timing
    best = min(time_loops(lambda: np.copyto(dst, src), 1) for _ in range(repeats))
    return 2 * src.nbytes / best


def measure_peak_flops(n: int = 1024, repeats: int = 5) -> float:
    """Peak float32 FLOP/s of a large square matmul with all of torch's threads (2 n^3 FLOPs per call)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(time_loops(lambda: torch.mm(a, b), 1) for _ in range(repeats))
    return 2 * n**3 / best


def describe() -> str:
    """One line naming the CPU and the threads torch uses, for the lab's summary table."""
    import platform
    return f"{platform.processor() or platform.machine()}, torch threads: {torch.get_num_threads()}"


