"""kernels/xnor_gemm.cu: both versions and the float baselines vs the +-1 matmul on ragged and even shapes (CPU tier;
GPU when present); the bit layout is Lab 03b's pack_signs; bounds/race checks; one word load covers 32 products; the
XNOR kernel beats the float32 kernel of the same loop structure by the lab's target, in one run."""
import numpy as np
import pytest

from tinyml_lib.grading import assert_speedup, target
from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.xnor_gemm import VERSIONS, pack_sign_rows, sgemm_nt, xnor_gemm, xnor_gemm_ref
from tinyml_lib.low_bit.binary import pack_signs, xnor_popcount_matmul

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA device (CuPy missing or cupy.is_available() False)")
SHAPES = [(1, 1, 1), (37, 45, 70), (64, 64, 128), (5, 130, 33), (16, 17, 1000)]


def problem(m, n, k, seed=0):
    rng = np.random.default_rng(seed)
    pm = lambda r: np.where(rng.random((r, k)) < 0.5, -1.0, 1.0).astype(np.float32)
    a, b = pm(m), pm(n)
    return a, b, (a @ b.T).astype(np.int32)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matches_pm1_matmul_cpu(version, m, n, k):
    a, b, want = problem(m, n, k)
    np.testing.assert_array_equal(xnor_gemm(pack_sign_rows(a), pack_sign_rows(b), k, version), want)
    np.testing.assert_array_equal(sgemm_nt(a, b, version), want.astype(np.float32))


def test_layout_is_the_labs_pack_signs():
    a, b, want = problem(6, 7, 100, seed=1)
    np.testing.assert_array_equal(pack_sign_rows(a), pack_signs(a))
    np.testing.assert_array_equal(xnor_gemm_ref(pack_signs(a), pack_signs(b), 100), want)
    np.testing.assert_array_equal(xnor_popcount_matmul(pack_signs(a), pack_signs(b), 100), want)


@pytest.mark.parametrize("check", ["bounds", "race"])
def test_clean_under_checks(check):
    a, b, want = problem(21, 35, 300, seed=2)
    for version in VERSIONS:
        np.testing.assert_array_equal(xnor_gemm(pack_sign_rows(a), pack_sign_rows(b), 300, version, check=check), want)
        np.testing.assert_array_equal(sgemm_nt(a, b, version, check=check), want.astype(np.float32))


def test_one_word_load_covers_32_products():
    m = n = 32
    k = 1024
    a, b, _ = problem(m, n, k)
    bits = {v: xnor_gemm(pack_sign_rows(a), pack_sign_rows(b), k, v, counters=True)[1] for v in VERSIONS}
    floats = sgemm_nt(a, b, 1, counters=True)[1]
    assert floats.bytes_loaded == 2 * m * n * k * 4
    assert bits[1].bytes_loaded == floats.bytes_loaded // 32
    assert bits[2].bytes_loaded == bits[1].bytes_loaded // 16  # TILE = 16
    assert bits[1].bytes_stored == floats.bytes_stored == 4 * m * n


def test_xnor_beats_the_float_kernel_of_the_same_structure():
    # The lab's speed check (section 5), same size and threshold.
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((128, 2048)).astype(np.float32), rng.standard_normal((128, 2048)).astype(np.float32)
    a_bits, b_bits = pack_sign_rows(a), pack_sign_rows(b)
    assert_speedup(lambda: xnor_gemm(a_bits, b_bits, 2048), lambda: sgemm_nt(a, b), target("lab03b.xnor_speedup"))


def test_rejects_bad_input():
    a, b, _ = problem(3, 4, 40)
    with pytest.raises(ValueError, match="version"):
        xnor_gemm(pack_sign_rows(a), pack_sign_rows(b), 40, version=5)
    with pytest.raises(ValueError, match="uint32"):
        xnor_gemm(pack_sign_rows(a), pack_sign_rows(b), 80)
    with pytest.raises(ValueError, match="float32"):
        sgemm_nt(a.astype(np.float64), b)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matches_pm1_matmul_gpu(version, m, n, k):
    import cupy
    a, b, want = problem(m, n, k)
    got = xnor_gemm(cupy.asarray(pack_sign_rows(a)), cupy.asarray(pack_sign_rows(b)), k, version)
    np.testing.assert_array_equal(cupy.asnumpy(got), want)
    np.testing.assert_array_equal(cupy.asnumpy(sgemm_nt(cupy.asarray(a), cupy.asarray(b), version)), want)


def test_sign_rows_pack_little_endian_bits_of_the_positive_signs():
    assert pack_sign_rows(np.array([[1, -1, 1] + [-1] * 29 + [1]], np.float32)).tolist() == [[5, 1]]
    assert pack_sign_rows(-np.ones((1, 32), np.float32)).tolist() == [[0]]
