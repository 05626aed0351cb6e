"""Sparse matrix-vector product: formats, reference and launchers for kernels/sparse_matvec.cu (v1 CSR row per
thread, v2 CSC with an activation queue that skips zero activations; see the file's opening comment).

Math: y = W a, W (rows, cols) sparse float32, a (cols,) float32.
"""
from functools import lru_cache

import numpy as np

from .launcher import array_module, ceil_div, check_version, host_arrays, kernel_file, load_kernel

VERSIONS = (1, 2)


def csr_from_dense(w):
    """CSR arrays of a dense (rows, cols) NumPy matrix: row_ptr (rows+1,) int32, col_idx (nnz,) int32, vals (nnz,)
    float32, non-zeros in row-major order."""
    w = np.asarray(w, dtype=np.float32)
    rows, cols = np.nonzero(w)
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=w.shape[0]))]).astype(np.int32)
    return row_ptr, cols.astype(np.int32), w[rows, cols].astype(np.float32)


def csc_from_dense(w):
    """CSC arrays of a dense (rows, cols) matrix: col_ptr (cols+1,) int32, row_idx (nnz,) int32, vals (nnz,) float32."""
    return csr_from_dense(np.asarray(w, dtype=np.float32).T)


def activation_queue(a):
    """The non-zero activations of a (cols,) vector as (columns int32, values float32), NumPy or CuPy."""
    xp = array_module(a)
    cols = xp.flatnonzero(a).astype(xp.int32)
    return cols, a[cols].astype(xp.float32)


def spmv_ref(w, a):
    """Reference y = w @ a in float64, rounded to float32. w: (rows, cols) dense, a: (cols,). NumPy result."""
    w, a = host_arrays(w, a)
    return (w.astype(np.float64) @ a.astype(np.float64)).astype(np.float32)


@lru_cache(maxsize=None)
def spmv_kernel(version):
    """The loaded Kernel `spmv_v{version}`."""
    check_version(version, VERSIONS)
    return load_kernel(kernel_file("sparse_matvec.cu"), f"spmv_v{version}")


def spmv(fmt, a, rows, version=2, block=128, check=None, counters=False):
    """y = W a on the tier matching the arrays (NumPy: CPU emulator, CuPy: GPU).

    Args:
        fmt: (ptr, idx, vals) of W: CSR (csr_from_dense) for version 1, CSC (csc_from_dense) for version 2.
        a: (cols,) float32 activations.  rows: rows of W.  block: threads per block.
        check, counters: passed to the launch (CPU tier only).
    Returns:
        (rows,) float32 array of a's library, or (y, LaunchStats or None if nothing was launched) when counters=True.
    """
    ptr, idx, vals = fmt
    if a.dtype != np.float32 or a.ndim != 1 or vals.dtype != np.float32 or ptr.dtype != np.int32:
        raise TypeError(f"expected float32 a and vals, int32 pointers; got {a.dtype}, {vals.dtype}, {ptr.dtype}")
    y, stats = array_module(a).zeros(rows, dtype=np.float32), None
    if version == 1:
        stats = spmv_kernel(1)(max(1, ceil_div(rows, block)), block, (ptr, idx, vals, a, y, np.int32(rows)),
                               check=check, counters=counters)
    else:
        nz_cols, nz_vals = activation_queue(a)
        if nz_cols.size:  # an all-zero activation vector launches nothing: y stays 0
            stats = spmv_kernel(version)(ceil_div(nz_cols.size, block), block,
                                         (ptr, idx, vals, nz_cols, nz_vals, np.int32(nz_cols.size), y),
                                         check=check, counters=counters)
    return (y, stats) if counters else y
