"""Sparse matrix-vector kernels (kernels/sparse_matvec.cu): traffic per version from the CPU tier and, on a GPU, time
against cuBLAS dense GEMV and cuSPARSE CSR SpMV at 50 % and 90 % weight sparsity.

    python benchmarks/bench_sparse_matvec.py [--size 4096] [--act-density 0.3]
"""
import argparse

import numpy as np

from gpu_timing import gpu_missing, gpu_ms
from tinyml_lib.kernels.sparse_matvec import VERSIONS, csc_from_dense, csr_from_dense, spmv, spmv_kernel

SPARSITIES = (0.5, 0.9)


def problem(size, sparsity, act_density, seed=0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((size, size)) * (rng.random((size, size)) >= sparsity)).astype(np.float32)
    a = (rng.random(size) * (rng.random(size) < act_density)).astype(np.float32)
    return w, a


def fmt(w, version):
    return csr_from_dense(w) if version == 1 else csc_from_dense(w)


def traffic_rows(size, act_density):
    """(label, bytes loaded, atomics) per version and sparsity, counted on the CPU tier."""
    rows = []
    for s in SPARSITIES:
        w, a = problem(size, s, act_density)
        for v in VERSIONS:
            st = spmv(fmt(w, v), a, size, v, counters=True)[1]
            rows.append((f"spmv_v{v} {s:.0%} sparse", st.bytes_loaded, st.atomics))
    return rows


def gpu_rows(size, act_density):
    """(label, ms) per version and sparsity, CUDA events; cuBLAS dense GEMV and cuSPARSE CSR as peers."""
    import cupy
    import cupyx.scipy.sparse as csp
    rows = []
    for s in SPARSITIES:
        w, a = problem(size, s, act_density)
        wg, ag = cupy.asarray(w), cupy.asarray(a)
        rows.append((f"cuBLAS dense GEMV {s:.0%}", gpu_ms(cupy.matmul, wg, ag)))
        rows.append((f"cuSPARSE CSR SpMV {s:.0%}", gpu_ms(csp.csr_matrix(wg).dot, ag)))
        for v in VERSIONS:
            f = tuple(cupy.asarray(t) for t in fmt(w, v))
            rows.append((f"spmv_v{v} {s:.0%} (incl. queue)", gpu_ms(spmv, f, ag, size, v)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--act-density", type=float, default=0.3, help="fraction of non-zero activations")
    args = parser.parse_args()
    traffic_size = min(args.size, 512)  # the CPU emulator runs every thread: keep the counted problem small
    print(f"Traffic per launch ({traffic_size}x{traffic_size}, CPU tier counters):")
    for label, loaded, atomics in traffic_rows(traffic_size, args.act_density):
        print(f"{label:<28}{loaded:>14,} B loaded{atomics:>10,} atomics")
    if gpu_missing():
        return
    print(f"\nGPU time ({args.size}x{args.size}, CUDA events, median of 50):")
    for label, ms in gpu_rows(args.size, args.act_density):
        print(f"{label:<34}{ms:>10.4f} ms")


if __name__ == "__main__":
    main()
