"""int8 GEMM with fused requantization (kernels/int8_gemm.cu): traffic per version on the CPU tier; on a GPU, time
against torch._int_mm (cuBLASLt int8 -> int32, no requantization) and a float32 cuBLAS GEMM of the same shape.

    python benchmarks/bench_int8_gemm.py [--m 1024] [--n 1024] [--k 1024]
"""
import argparse

import numpy as np

from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.int8_gemm import VERSIONS, int8_gemm, int8_kernel
from tinyml_lib.kernels.launcher import ceil_div


def problem(m, n, k, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(-128, 128, (m, k), dtype=np.int8), rng.integers(-127, 128, (n, k), dtype=np.int8),
            rng.integers(-1000, 1000, n).astype(np.int32), np.full(n, 2 ** 30, np.int32), np.full(n, 8, np.int32), 0)


def traffic_rows(m, n, k):
    """(kernel, bytes loaded, bytes stored) per version, CPU tier counters."""
    args = problem(m, n, k)
    return [(f"int8_gemm_v{v}", stats.bytes_loaded, stats.bytes_stored)
            for v in VERSIONS for stats in [int8_gemm(*args, version=v, counters=True)[1]]]


def gpu_rows(m, n, k, tile=16):
    """(name, ms, TOPS) per kernel, CUDA events."""
    import cupy
    from cupyx.profiler import benchmark
    x, w, bias, m0, shift, zy = (cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in problem(m, n, k))
    y = cupy.zeros((m, n), cupy.int8)
    ops, rows = 2 * m * n * k, []
    for v in VERSIONS:
        xw, ww = (x, w) if v == 1 else (x.view(cupy.int32), w.view(cupy.int32))
        args = (xw, ww, bias, m0, shift, y, np.int32(m), np.int32(n), np.int32(k), np.int32(zy))
        s = int8_kernel(v, tile).time_gpu((ceil_div(n, tile), ceil_div(m, tile)), (tile, tile), args, n_repeat=30)
        rows.append((f"int8_gemm_v{v}", s * 1e3, ops / s / 1e12))
    try:
        import torch
        xt, wt = torch.as_tensor(x, device="cuda"), torch.as_tensor(w, device="cuda")
        t = benchmark(lambda: torch._int_mm(xt, wt.T), (), n_repeat=30).gpu_times[0]
        rows.append(("torch._int_mm (int32 out)", float(np.median(t)) * 1e3, ops / float(np.median(t)) / 1e12))
    except (ImportError, RuntimeError) as err:  # torch without CUDA, or a shape cuBLASLt refuses
        print(f"torch._int_mm skipped: {err}")
    xf, wf = x.astype(cupy.float32), w.astype(cupy.float32)
    t = float(np.median(benchmark(lambda: xf @ wf.T, (), n_repeat=30).gpu_times[0]))
    return rows + [("cuBLAS float32", t * 1e3, ops / t / 1e12)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1024)
    args = parser.parse_args()
    print("Global-memory traffic per launch, CPU tier counters (64 x 64 x 256):")
    for name, loaded, stored in traffic_rows(64, 64, 256):
        print(f"  {name:<16}{loaded:>12,} B loaded {stored:>8,} B stored")
    if not gpu_available():
        print("GPU timing skipped: no CUDA device (install requirements-gpu.txt on a machine with an NVIDIA GPU).")
        return
    print(f"\nGPU, {args.m} x {args.n} x {args.k} (CUDA events, median of 30):")
    for name, ms, tops in gpu_rows(args.m, args.n, args.k):
        print(f"  {name:<28}{ms:>10.4f} ms {tops:>8.2f} TOPS")


if __name__ == "__main__":
    main()
