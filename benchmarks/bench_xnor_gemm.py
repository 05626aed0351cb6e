"""XNOR-popcount GEMM (kernels/xnor_gemm.cu): the ratio against the float32 kernel of the same loop structure and
against the BLAS matmul (one thread), on the CPU tier; on a GPU, the same kernels and cuBLAS timed with CUDA events.

    python benchmarks/bench_xnor_gemm.py [--m 128] [--n 128] [--k 2048]

The CPU tier compiles the CUDA C with the system C++ compiler, both kernels with the same flags: the ratio is what
packing 32 signs per word buys at the same level of code, not a claim about tuned BLAS.
"""
import argparse

import numpy as np

from tinyml_lib.grading import measure_speedup
from gpu_timing import gpu_missing, gpu_ms
from tinyml_lib.kernels.xnor_gemm import VERSIONS, pack_sign_rows, sgemm_nt, xnor_gemm


def problem(m, n, k, xp=np):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((n, k)).astype(np.float32)
    return tuple(xp.asarray(t) for t in (a, b, pack_sign_rows(a), pack_sign_rows(b)))


def cpu_rows(m, n, k):
    """(comparison, SpeedResult) on the CPU tier, one BLAS thread."""
    import torch
    torch.set_num_threads(1)
    a, b, a_bits, b_bits = problem(m, n, k)
    at, bt = torch.from_numpy(a), torch.from_numpy(b)
    rows = [(f"xnor_gemm_v{v} vs sgemm_nt_v{v}",
             measure_speedup(lambda: xnor_gemm(a_bits, b_bits, k, v), lambda: sgemm_nt(a, b, v), repeats=5))
            for v in VERSIONS]
    return rows + [("xnor_gemm_v1 vs torch.matmul (BLAS)",
                    measure_speedup(lambda: xnor_gemm(a_bits, b_bits, k, 1), lambda: at @ bt.T, repeats=5))]


def gpu_rows(m, n, k):
    """(kernel, ms) per kernel on the GPU, CUDA events."""
    import cupy
    a, b, a_bits, b_bits = problem(m, n, k, cupy)
    rows = [(f"xnor_gemm_v{v}", gpu_ms(xnor_gemm, a_bits, b_bits, k, v, repeats=30)) for v in VERSIONS]
    rows += [(f"sgemm_nt_v{v}", gpu_ms(sgemm_nt, a, b, v, repeats=30)) for v in VERSIONS]
    return rows + [("cuBLAS float32", gpu_ms(cupy.matmul, a, b.T, repeats=30))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=128)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--k", type=int, default=2048)
    args = parser.parse_args()
    print(f"CPU tier, {args.m} x {args.n} x {args.k} (median of interleaved pairs):")
    for name, result in cpu_rows(args.m, args.n, args.k):
        print(f"  {name:<40}{result.ratio:>8.2f}x  ({result.baseline_s * 1e3:.2f} ms vs {result.fast_s * 1e3:.2f} ms)")
    if gpu_missing():
        return
    print(f"\nGPU, {args.m} x {args.n} x {args.k} (CUDA events, median of 30):")
    for name, ms in gpu_rows(args.m, args.n, args.k):
        print(f"  {name:<20}{ms:>10.4f} ms")


if __name__ == "__main__":
    main()
