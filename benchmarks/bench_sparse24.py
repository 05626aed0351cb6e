"""2:4 sparse x dense GEMM (kernels/sparse24_gemm.cu): traffic per version from the CPU tier and, on a GPU, time
against cuBLAS dense SGEMM on the same shape (the dense matrix 50 % zeros, as after 2:4 pruning).

    python benchmarks/bench_sparse24.py [--size 1024]
"""
import argparse

import numpy as np

from gpu_timing import gpu_missing, gpu_ms
from tinyml_lib.kernels.sparse24 import VERSIONS, compress_24, sgemm24


def operands(size, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((size, size)).astype(np.float32)
    return (*compress_24(a), rng.standard_normal((size, size)).astype(np.float32))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="M = N = K")
    args = parser.parse_args()
    small = 64  # the CPU emulator runs every thread: count traffic on a small problem
    values, indices, _, b = operands(small)
    print(f"Traffic per launch ({small}^3, CPU tier counters):")
    for v in VERSIONS:
        st = sgemm24(values, indices, b, v, counters=True)[1]
        print(f"sgemm24_v{v:<10}{st.bytes_loaded:>14,} B loaded{st.bytes_stored:>12,} B stored")
    if gpu_missing():
        return
    import cupy
    values, indices, pruned, b = (cupy.asarray(t) for t in operands(args.size))
    flops = 2 * args.size ** 3
    t_dense = gpu_ms(cupy.matmul, pruned, b, repeats=30, warmup=3)
    print(f"\nGPU ({args.size}^3, CUDA events):\ncuBLAS dense SGEMM   {t_dense:9.4f} ms {flops / t_dense / 1e9:8.2f} TFLOP/s")
    for v in VERSIONS:
        t = gpu_ms(sgemm24, values, indices, b, v, repeats=30, warmup=3)
        print(f"sgemm24_v{v}          {t:9.4f} ms {flops / t / 1e9:8.2f} dense-equivalent TFLOP/s ({t_dense / t:.2f}x)")


if __name__ == "__main__":
    main()
