"""Course kernels, per version: global-memory traffic from the CPU tier and, on a GPU, time against the library peer.

    python benchmarks/bench_kernels.py [--n 1048576] [--size 256]

Traffic (bytes loaded/stored, atomics) is counted by the CPU emulator and does not need a GPU. Timing uses CUDA
events (cupyx.profiler.benchmark) and compares with cupy.sum (reduction) and cupy.matmul (cuBLAS SGEMM).
"""
import argparse

import numpy as np

from gpu_timing import gpu_missing, gpu_ms
from tinyml_lib.kernels.reduction import VERSIONS as REDUCE_VERSIONS, reduce_sum, reduction_kernel
from tinyml_lib.kernels.sgemm import VERSIONS as SGEMM_VERSIONS, launch_shape, sgemm, sgemm_kernel


def traffic_rows(n, size):
    """(kernel, bytes loaded, bytes stored, atomics, barriers) per version, from counting launches on the CPU tier."""
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    a = np.random.default_rng(1).standard_normal((size, size)).astype(np.float32)
    rows = []
    for v in REDUCE_VERSIONS:
        s = reduce_sum(x, v, counters=True)[1]
        rows.append((f"reduce_v{v} (n={n})", s.bytes_loaded, s.bytes_stored, s.atomics, s.barriers))
    for v in SGEMM_VERSIONS:
        s = sgemm(a, a, v, counters=True)[1]
        rows.append((f"sgemm_v{v} ({size}^3)", s.bytes_loaded, s.bytes_stored, s.atomics, s.barriers))
    return rows


def print_traffic(rows):
    print(f"{'kernel':<24}{'bytes loaded':>16}{'bytes stored':>14}{'atomics':>10}{'barriers':>10}")
    for name, ld, st, at, bar in rows:
        print(f"{name:<24}{ld:>16,}{st:>14,}{at:>10,}{bar:>10,}")


def gpu_rows(n, size):
    """(kernel, ms, rate string, ratio to peer) per version, timed with CUDA events."""
    import cupy
    x = cupy.random.standard_normal(n, dtype=cupy.float32)
    out = cupy.zeros(1, cupy.float32)
    rows, t_peer = [], gpu_ms(cupy.sum, x)
    for v in REDUCE_VERSIONS:
        ms = reduction_kernel(v).time_gpu(max(1, -(-n // 256)), 256, (x, out, np.int32(n)), n_repeat=50) * 1e3
        rows.append((f"reduce_v{v}", ms, f"{4 * n / ms / 1e6:.1f} GB/s", t_peer / ms))
    rows.append(("cupy.sum", t_peer, f"{4 * n / t_peer / 1e6:.1f} GB/s", 1.0))
    a = cupy.random.standard_normal((size, size), dtype=cupy.float32)
    c = cupy.zeros((size, size), cupy.float32)
    t_peer = gpu_ms(cupy.matmul, a, a)
    for v in SGEMM_VERSIONS:
        grid, block = launch_shape(v, size, size)
        args = (a, a, c, np.int32(size), np.int32(size), np.int32(size))
        ms = sgemm_kernel(v).time_gpu(grid, block, args, n_repeat=50) * 1e3
        rows.append((f"sgemm_v{v}", ms, f"{2 * size ** 3 / ms / 1e9:.1f} TFLOP/s", t_peer / ms))
    rows.append(("cupy.matmul (cuBLAS)", t_peer, f"{2 * size ** 3 / t_peer / 1e9:.1f} TFLOP/s", 1.0))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1 << 20, help="reduction length")
    parser.add_argument("--size", type=int, default=256, help="SGEMM M = N = K")
    args = parser.parse_args()
    print("Global-memory traffic per launch (CPU tier counters):")
    print_traffic(traffic_rows(args.n, args.size))
    if gpu_missing():
        return
    print("\nGPU time per launch (CUDA events, median of 50):")
    print(f"{'kernel':<24}{'ms':>10}{'throughput':>18}{'x peer':>9}")
    for name, ms, rate, ratio in gpu_rows(args.n, args.size):
        print(f"{name:<24}{ms:>10.4f}{rate:>18}{ratio:>9.2f}")


if __name__ == "__main__":
    main()
