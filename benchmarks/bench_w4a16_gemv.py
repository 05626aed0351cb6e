"""W4A16 GEMV (kernels/w4a16_gemv.cu): traffic per version on the CPU tier; on a GPU, time against the FP16 GEMV and
against the memory-bandwidth roofline (bytes moved / peak bandwidth).

    python benchmarks/bench_w4a16_gemv.py [--n 4096] [--k 4096] [--group 64]

A batch-1 GEMV does 2 FLOPs per weight: it is memory-bound, so its floor is the time to read the weights once.
"""
import argparse

import numpy as np

from gpu_timing import gpu_missing
from tinyml_lib.kernels.w4a16_gemv import VERSIONS, fp16_gemv, gemv_kernel, pack_w4, w4a16_gemv


def problem(n, k, group, xp=np):
    rng = np.random.default_rng(0)
    arrays = (pack_w4(rng.integers(0, 16, (n, k), dtype=np.uint8)),
              (rng.random((n, k // group)) * 0.1).astype(np.float16), rng.integers(0, 16, (n, k // group), dtype=np.uint8),
              rng.standard_normal(k).astype(np.float16), rng.standard_normal((n, k)).astype(np.float16))
    return tuple(xp.asarray(a) for a in arrays)


def traffic_rows(n, k, group):
    """(kernel, bytes loaded, bytes stored) per version from the CPU tier's counters (a small shape keeps it quick)."""
    q, s, z, x, w = problem(n, k, group)
    rows = [(f"w4a16_gemv_v{v}", *_bytes(w4a16_gemv(q, s, z, x, v, group, counters=True)[1])) for v in VERSIONS]
    return rows + [("fp16_gemv_v1", *_bytes(fp16_gemv(w, x, counters=True)[1]))]


def _bytes(stats):
    return stats.bytes_loaded, stats.bytes_stored


def gpu_rows(n, k, group, rows=4):
    """(kernel, ms, GB/s of compulsory traffic, ms at peak bandwidth) per kernel, timed with CUDA events."""
    import cupy
    dev = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    peak = 2 * dev["memoryClockRate"] * 1e3 * dev["memoryBusWidth"] / 8  # bytes/s (double data rate)
    q, s, z, x, w = problem(n, k, group, cupy)
    y = cupy.zeros(n, cupy.float32)
    out = []
    w4_bytes = q.nbytes + s.nbytes + z.nbytes + x.nbytes + y.nbytes
    for v in VERSIONS:
        grid, block, smem = (-(-n // 128), 128, 0) if v == 1 else (-(-n // rows), 32 * rows, 4 * k)
        args = (q, s, z, x, y, np.int32(n), np.int32(k))
        ms = gemv_kernel(f"w4a16_gemv_v{v}", group, rows).time_gpu(grid, block, args, smem, n_repeat=50) * 1e3
        out.append((f"w4a16_gemv_v{v}", ms, w4_bytes / ms / 1e6, w4_bytes / peak * 1e3))
    fp_bytes = w.nbytes + x.nbytes + y.nbytes
    ms = gemv_kernel("fp16_gemv_v1", group, rows).time_gpu(-(-n // rows), 32 * rows, (w, x, y, np.int32(n), np.int32(k)),
                                                          4 * k, n_repeat=50) * 1e3
    out.append(("fp16_gemv_v1", ms, fp_bytes / ms / 1e6, fp_bytes / peak * 1e3))
    return out, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="output features")
    parser.add_argument("--k", type=int, default=4096, help="input features (a multiple of --group)")
    parser.add_argument("--group", type=int, default=64)
    args = parser.parse_args()
    print("Global-memory traffic per launch, CPU tier counters (256 x 512):")
    for name, loaded, stored in traffic_rows(256, 512, args.group):
        print(f"  {name:<16}{loaded:>12,} B loaded {stored:>8,} B stored")
    if gpu_missing():
        return
    rows, peak = gpu_rows(args.n, args.k, args.group)
    print(f"\nGPU, {args.n} x {args.k}, peak bandwidth {peak / 1e9:.0f} GB/s (CUDA events, median of 50):")
    print(f"{'kernel':<16}{'ms':>10}{'GB/s':>10}{'roofline ms':>13}{'x roofline':>12}")
    for name, ms, gbs, floor in rows:
        print(f"{name:<16}{ms:>10.4f}{gbs:>10.1f}{floor:>13.4f}{ms / floor:>12.2f}")


if __name__ == "__main__":
    main()
