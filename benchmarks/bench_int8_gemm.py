"""int8 GEMM (kernels/int8_gemm.cu): traffic per version on the CPU tier; on a GPU, time against torch._int_mm
(cuBLASLt int8 -> int32, no requantization) and a float32 cuBLAS GEMM of the same shape. Versions 1-3 requantize to
int8; version 4 (`int8_gemm_scaled`, W8A8 LLM linears) writes float32 with per-token x per-channel scales.

    python benchmarks/bench_int8_gemm.py [--m 1024] [--n 1024] [--k 1024]
"""
import argparse

import numpy as np

from gpu_timing import gpu_missing, gpu_ms
from tinyml_lib.kernels.int8_gemm import SCALED_VERSION, VERSIONS, int8_gemm, int8_gemm_scaled, int8_kernel
from tinyml_lib.kernels.launcher import ceil_div


def problem(m, n, k, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(-128, 128, (m, k), dtype=np.int8), rng.integers(-127, 128, (n, k), dtype=np.int8),
            rng.integers(-1000, 1000, n).astype(np.int32), np.full(n, 2 ** 30, np.int32), np.full(n, 8, np.int32), 0)


def scales(m, n, seed=1):
    """Per-token (m,) and per-channel (n,) float32 scales and a zero float32 bias (n,) for version 4."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(1e-3, 0.1, m).astype(np.float32), rng.uniform(1e-4, 0.01, n).astype(np.float32),
            np.zeros(n, np.float32))


def traffic_rows(m, n, k):
    """(kernel, bytes loaded, bytes stored) per version, CPU tier counters."""
    args = problem(m, n, k)
    rows = [(f"int8_gemm_v{v}", stats.bytes_loaded, stats.bytes_stored)
            for v in VERSIONS for stats in [int8_gemm(*args, version=v, counters=True)[1]]]
    sx, sw, bias = scales(m, n)
    stats = int8_gemm_scaled(args[0], sx, args[1], sw, bias, counters=True)[1]
    return rows + [(f"int8_gemm_v{SCALED_VERSION}", stats.bytes_loaded, stats.bytes_stored)]


def gpu_rows(m, n, k, tile=16):
    """(name, ms, TOPS) per kernel, CUDA events."""
    import cupy
    x, w, bias, m0, shift, zy = (cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in problem(m, n, k))
    sx, sw, fbias = (cupy.asarray(a) for a in scales(m, n))
    y, yf = cupy.zeros((m, n), cupy.int8), cupy.zeros((m, n), cupy.float32)
    ops, rows = 2 * m * n * k, []
    shape = (np.int32(m), np.int32(n), np.int32(k))
    for v in (*VERSIONS, SCALED_VERSION):
        xw, ww = (x, w) if v == 1 else (x.view(cupy.int32), w.view(cupy.int32))
        args = ((xw, sx, ww, sw, fbias, yf, *shape) if v == SCALED_VERSION
                else (xw, ww, bias, m0, shift, y, *shape, np.int32(zy)))
        s = int8_kernel(v, tile).time_gpu((ceil_div(n, tile), ceil_div(m, tile)), (tile, tile), args, n_repeat=30)
        rows.append((f"int8_gemm_v{v}", s * 1e3, ops / s / 1e12))
    try:
        import torch
        xt, wt = torch.as_tensor(x, device="cuda"), torch.as_tensor(w, device="cuda")
        ms = gpu_ms(lambda: torch._int_mm(xt, wt.T), repeats=30)
        rows.append(("torch._int_mm (int32 out)", ms, ops / ms / 1e9))
    except (ImportError, RuntimeError) as err:  # torch without CUDA, or a shape cuBLASLt refuses
        print(f"torch._int_mm skipped: {err}")
    xf, wf = x.astype(cupy.float32), w.astype(cupy.float32)
    ms = gpu_ms(lambda: xf @ wf.T, repeats=30)
    return rows + [("cuBLAS float32", ms, ops / ms / 1e9)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--k", type=int, default=1024)
    args = parser.parse_args()
    print("Global-memory traffic per launch, CPU tier counters (64 x 64 x 256):")
    for name, loaded, stored in traffic_rows(64, 64, 256):
        print(f"  {name:<16}{loaded:>12,} B loaded {stored:>8,} B stored")
    if gpu_missing():
        return
    print(f"\nGPU, {args.m} x {args.n} x {args.k} (CUDA events, median of 30):")
    for name, ms, tops in gpu_rows(args.m, args.n, args.k):
        print(f"  {name:<28}{ms:>10.4f} ms {tops:>8.2f} TOPS")


if __name__ == "__main__":
    main()
