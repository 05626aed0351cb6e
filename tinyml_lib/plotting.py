"""Plots the labs show: latency and throughput vs batch size, and a roofline with layers placed on it."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np


def plot_latency_throughput(batches: Sequence[int], latency_ms: Sequence[float]):
    """Two panels: median latency (ms) and throughput (samples/s) against batch size (log2 axis)."""
    batches, latency_ms = np.asarray(batches), np.asarray(latency_ms, dtype=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(batches, latency_ms, "o-")
    ax1.set(xscale="log", xlabel="batch size", ylabel="median latency (ms)", title="Latency grows with batch")
    ax2.plot(batches, batches / (latency_ms / 1e3), "o-", color="tab:green")
    ax2.set(xscale="log", xlabel="batch size", ylabel="throughput (samples/s)", title="Throughput is not 1/latency")
    for ax in (ax1, ax2):
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_roofline(peak_flops: float, bandwidth: float, points: Sequence[tuple[str, float, float]],
                  cache_bandwidth: float | None = None, cache_label: str = "cache"):
    """Roofline with its DRAM roof, an optional cache roof, and (label, intensity, FLOP/s) points.

    Args:
        peak_flops: compute roof in FLOP/s, > 0.
        bandwidth: DRAM bandwidth in byte/s, > 0: roof min(peak, I x bandwidth).
        points: (label, arithmetic intensity in FLOP/byte, achieved FLOP/s) per workload.
        cache_bandwidth: cache bandwidth in byte/s (> 0), drawn as a second roof min(peak, I x cache_bandwidth);
            None draws none. A workload that stays in the cache is bounded by this roof, not by the DRAM one.
        cache_label: the cache's name in the legend ("LLC", "L2").
    Returns:
        the matplotlib Figure.
    Math: attainable = min(peak, I x bandwidth); ridge point I* = peak / bandwidth.
    """
    roofs = [bandwidth] + ([] if cache_bandwidth is None else [cache_bandwidth])
    if not peak_flops > 0 or not all(b > 0 for b in roofs):
        raise ValueError(f"expected peak_flops > 0 and bandwidths > 0 (byte/s); got peak_flops={peak_flops}, "
                         f"bandwidth={bandwidth}, cache_bandwidth={cache_bandwidth}")
    ridges = [peak_flops / b for b in roofs]
    intensities = [p[1] for p in points if p[1] > 0] + ridges
    x = np.logspace(np.log10(min(intensities) / 4), np.log10(max(intensities) * 4), 200)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(x, np.minimum(peak_flops, x * bandwidth) / 1e9, "k-",
            label=f"DRAM roof {bandwidth / 1e9:.1f} GB/s, compute {peak_flops / 1e9:.0f} GFLOP/s")
    if cache_bandwidth is not None:
        ax.plot(x, np.minimum(peak_flops, x * cache_bandwidth) / 1e9, "--", color="tab:blue",
                label=f"{cache_label} roof {cache_bandwidth / 1e9:.1f} GB/s")
    ax.axvline(ridges[0], color="gray", ls=":", label=f"DRAM ridge point {ridges[0]:.1f} FLOP/B")
    for label, ai, flops in points:
        ax.plot(ai, flops / 1e9, "o")
        ax.annotate(label, (ai, flops / 1e9), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP per DRAM byte)", ylabel="GFLOP/s",
           title="Layers on this machine's roofline (measured in one run)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig
