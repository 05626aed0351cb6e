"""kernels/sparse_matvec.cu: both versions vs spmv_ref on ragged and even shapes, CPU tier always, GPU when present;
bounds checks and the traffic counters that show zero-activation skipping."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.sparse_matvec import (VERSIONS, activation_queue, csc_from_dense, csr_from_dense, spmv,
                                              spmv_ref)

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA device (CuPy missing or cupy.is_available() False)")


def problem(rows, cols, density=0.2, act_density=0.4, seed=0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) < density)).astype(np.float32)
    a = (rng.random(cols) * (rng.random(cols) < act_density)).astype(np.float32)
    return w, a


def fmt(w, version):
    return csr_from_dense(w) if version == 1 else csc_from_dense(w)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("rows,cols", [(1, 1), (8, 4), (37, 53), (64, 64), (256, 128), (130, 300)])
def test_spmv_matches_ref_cpu(version, rows, cols):
    w, a = problem(rows, cols, seed=rows * cols)
    np.testing.assert_allclose(spmv(fmt(w, version), a, rows, version), spmv_ref(w, a), rtol=1e-4, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 90), cols=st.integers(1, 90), density=st.floats(0, 1), act=st.floats(0, 1),
       version=st.sampled_from(VERSIONS), seed=st.integers(0, 2**32 - 1))
def test_spmv_property(rows, cols, density, act, version, seed):
    w, a = problem(rows, cols, density, act, seed)
    np.testing.assert_allclose(spmv(fmt(w, version), a, rows, version), spmv_ref(w, a), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("version", VERSIONS)
def test_spmv_clean_under_bounds_check(version):
    w, a = problem(45, 77, seed=3)
    np.testing.assert_allclose(spmv(fmt(w, version), a, 45, version, check="bounds"), spmv_ref(w, a),
                               rtol=1e-4, atol=1e-5)


def test_all_zero_activations_launch_nothing():
    w, _ = problem(10, 12)
    y, stats = spmv(csc_from_dense(w), np.zeros(12, np.float32), 10, version=2, counters=True)
    assert stats is None and not y.any()


def test_formats_round_trip():
    w, _ = problem(9, 14, seed=5)
    row_ptr, col_idx, vals = csr_from_dense(w)
    dense = np.zeros_like(w)
    for r in range(9):
        dense[r, col_idx[row_ptr[r]:row_ptr[r + 1]]] = vals[row_ptr[r]:row_ptr[r + 1]]
    np.testing.assert_array_equal(dense, w)
    cols, values = activation_queue(np.array([0, 2, 0, 3], np.float32))
    np.testing.assert_array_equal(cols, [1, 3])
    np.testing.assert_array_equal(values, [2, 3])


def test_counters_v2_skips_zero_columns_v1_reads_everything():
    w, a = problem(96, 256, 0.2, 0.25, seed=7)
    _, s1 = spmv(csr_from_dense(w), a, 96, version=1, counters=True)
    _, s2 = spmv(csc_from_dense(w), a, 96, version=2, counters=True)
    col_ptr = csc_from_dense(w)[0]
    nz = np.flatnonzero(a)
    visited = int((col_ptr[nz + 1] - col_ptr[nz]).sum())
    nnz = int(np.count_nonzero(w))
    # v1: per row two pointers, per stored weight its value, column index and activation; one store per row
    assert s1.bytes_loaded == 8 * 96 + 12 * nnz and s1.bytes_stored == 4 * 96 and s1.atomics == 0
    # v2: per queued activation its (column, value) and two column pointers; per visited weight value + row index
    assert s2.bytes_loaded == 16 * len(nz) + 8 * visited and s2.atomics == visited and s2.bytes_stored == 0
    assert s2.bytes_loaded < s1.bytes_loaded / 2


def test_rejects_bad_input():
    w, a = problem(4, 4)
    with pytest.raises(TypeError, match="float32"):
        spmv(csc_from_dense(w), a.astype(np.float64), 4)
    with pytest.raises(ValueError, match="version"):
        spmv(csc_from_dense(w), a, 4, version=7)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("rows,cols", [(37, 53), (1024, 1024)])
def test_spmv_matches_ref_gpu(version, rows, cols):
    import cupy
    w, a = problem(rows, cols, seed=1)
    f = tuple(cupy.asarray(t) for t in fmt(w, version))
    np.testing.assert_allclose(cupy.asnumpy(spmv(f, cupy.asarray(a), rows, version)), spmv_ref(w, a),
                               rtol=1e-4, atol=1e-4)
