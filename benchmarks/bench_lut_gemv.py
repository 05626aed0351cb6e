"""LUT (k-means codebook) GEMV (kernels/lut_gemv.cu): traffic per version on the CPU tier; on a GPU, time against a
float32 cuBLAS GEMV of the dequantized weight (8x the weight bytes).

    python benchmarks/bench_lut_gemv.py [--n 4096] [--k 4096]
"""
import argparse

import numpy as np

from gpu_timing import gpu_missing, gpu_ms
from tinyml_lib.kernels.lut_gemv import VERSIONS, lut_gemv, pack_w4


def problem(n, k, xp=np):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 16, (n, k), dtype=np.uint8)
    codebook = np.sort(rng.standard_normal(16)).astype(np.float32)
    x = rng.standard_normal(k).astype(np.float32)
    return tuple(xp.asarray(a) for a in (pack_w4(idx), codebook, x, codebook[idx]))


def traffic_rows(n, k):
    q, codebook, x, _ = problem(n, k)
    return [(f"lut_gemv_v{v}", s.bytes_loaded, s.bytes_stored)
            for v in VERSIONS for s in [lut_gemv(q, codebook, x, v, counters=True)[1]]]


def gpu_rows(n, k):
    import cupy
    q, codebook, x, w = problem(n, k, cupy)
    rows = [(f"lut_gemv_v{v}", gpu_ms(lut_gemv, q, codebook, x, v)) for v in VERSIONS]
    return rows + [("cuBLAS float32 GEMV", gpu_ms(cupy.matmul, w, x))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--k", type=int, default=4096)
    args = parser.parse_args()
    print("Global-memory traffic per launch, CPU tier counters (256 x 512):")
    for name, loaded, stored in traffic_rows(256, 512):
        print(f"  {name:<14}{loaded:>12,} B loaded {stored:>8,} B stored")
    if gpu_missing():
        return
    print(f"\nGPU, {args.n} x {args.k} (CUDA events, median of 50):")
    for name, ms in gpu_rows(args.n, args.k):
        print(f"  {name:<22}{ms:>10.4f} ms")


if __name__ == "__main__":
    main()
