"""SparseInfer FFN kernels (kernels/sparse_gather_gemv.cu): bytes read as the predicted sparsity grows (CPU tier
counters), and on a GPU the time of the skipping FFN against dense cuBLAS GEMVs on a 7B model's FFN shape.

    python benchmarks/bench_sparse_gather_gemv.py [--d 4096] [--dff 11008]

The bias b1 shifts how many rows are predicted zero only through the actual ReLU; the predictor is steered here by
giving the weight rows a common sign pattern opposite to x's on a fraction of the inputs (seeded).
"""
import argparse

import numpy as np

from gpu_timing import gpu_missing, gpu_ms
from tinyml_lib.kernels.sparse_gather_gemv import pack_sign_bits, sparse_ffn, sparse_ffn_ref


def problem(dff, d, bias, seed=0):
    """Seeded FFN whose rows lean negative against x by `bias` (0: about half the rows predicted zero)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(d).astype(np.float32)
    w1 = rng.standard_normal((dff, d)).astype(np.float32)
    flip = rng.random((dff, d)) < bias
    w1[flip] = -np.abs(w1[flip]) * np.sign(x)[np.nonzero(flip)[1]]
    return x, w1, np.zeros(dff, np.float32), (rng.standard_normal((dff, d)) / dff ** 0.5).astype(np.float32), \
        np.zeros(d, np.float32)


def traffic_rows(dff, d):
    rows = []
    for bias in (0.0, 0.05, 0.1, 0.2):
        x, w1, b1, w2t, b2 = problem(dff, d, bias)
        _, active = sparse_ffn_ref(x, w1, b1, w2t, b2, 1.0)
        _, _, (up, down) = sparse_ffn(x, w1, b1, w2t, b2, 1.0, counters=True)
        rows.append((1 - active.mean(), up.bytes_loaded + down.bytes_loaded, 2 * w1.nbytes))
    return rows


def gpu_rows(dff, d):
    import cupy
    out = []
    for bias in (0.0, 0.1, 0.2):
        x, w1, b1, w2t, b2 = (cupy.asarray(a) for a in problem(dff, d, bias))
        signs = cupy.asarray(pack_sign_bits(w1.get()))
        ms_sparse = gpu_ms(sparse_ffn, x, w1, b1, w2t, b2, 1.0, signs, repeats=30, warmup=3)
        ms_dense = gpu_ms(lambda: cupy.maximum(w1 @ x + b1, 0) @ w2t + b2, repeats=30, warmup=3)
        skipped = 1 - float((sparse_ffn(x, w1, b1, w2t, b2, 1.0, signs)[1] != 0).mean())
        out.append((skipped, ms_sparse, ms_dense))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=4096)
    parser.add_argument("--dff", type=int, default=11008)
    args = parser.parse_args()
    print("Bytes read by the skipping FFN vs the dense weights, CPU tier counters (512 x 256):")
    for skipped, read, dense in traffic_rows(512, 256):
        print(f"  {skipped:5.0%} rows predicted zero: {read:>10,} B read ({read / dense:.0%} of the dense weights)")
    if gpu_missing():
        return
    print(f"\nGPU, FFN {args.d} x {args.dff} (CUDA events, median of 30):")
    for skipped, ms, dense_ms in gpu_rows(args.dff, args.d):
        print(f"  {skipped:5.0%} zero: skipping {ms:.3f} ms, dense cuBLAS {dense_ms:.3f} ms ({dense_ms / ms:.2f}x)")


if __name__ == "__main__":
    main()
