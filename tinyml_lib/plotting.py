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


def plot_roofline(peak_flops: float, bandwidth: float, points: Sequence[tuple[str, float, float]]):
    """Roofline: attainable FLOP/s = min(peak, intensity x bandwidth), with (label, intensity, FLOP/s) points."""
    ridge = peak_flops / bandwidth
    intensities = [p[1] for p in points] or [ridge]
    x = np.logspace(np.log10(min(min(intensities), ridge) / 4), np.log10(max(max(intensities), ridge) * 4), 200)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(x, np.minimum(peak_flops, x * bandwidth) / 1e9, "k-", label="roofline (measured)")
    ax.axvline(ridge, color="gray", ls=":", label=f"ridge point {ridge:.1f} FLOP/B")
    for label, ai, flops in points:
        ax.plot(ai, flops / 1e9, "o")
        ax.annotate(label, (ai, flops / 1e9), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP/byte)", ylabel="GFLOP/s",
           title="Layers on this machine's roofline")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig
