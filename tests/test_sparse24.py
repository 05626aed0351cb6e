"""kernels/sparse24_gemm.cu: both versions vs sgemm24_ref on ragged and even shapes, CPU tier always, GPU when present;
compression, bounds and race checks, and the shared-memory reuse of v2 in the traffic counters."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.sparse24 import VERSIONS, compress_24, sgemm24, sgemm24_ref

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA device (CuPy missing or cupy.is_available() False)")


def operands(M, K, N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)


def test_compress_24_keeps_two_largest_per_group():
    a = np.array([[0.1, -0.9, 0.5, 0.2, 1.0, 1.0, 1.0, -3.0]], np.float32)
    values, indices, pruned = compress_24(a)
    np.testing.assert_array_equal(values, np.array([[-0.9, 0.5, 1.0, -3.0]], np.float32))
    np.testing.assert_array_equal(indices, [[1, 2, 0, 3]])
    np.testing.assert_array_equal(pruned, np.array([[0, -0.9, 0.5, 0, 1.0, 0, 0, -3.0]], np.float32))
    with pytest.raises(ValueError, match="multiple of 4"):
        compress_24(np.zeros((2, 6), np.float32))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("M,K,N", [(1, 4, 1), (16, 32, 16), (19, 24, 21), (33, 68, 17), (64, 128, 64)])
def test_sgemm24_matches_ref_cpu(version, M, K, N):
    a, b = operands(M, K, N, seed=M + K + N)
    values, indices, pruned = compress_24(a)
    np.testing.assert_allclose(sgemm24(values, indices, b, version), sgemm24_ref(pruned, b), rtol=1e-4, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(M=st.integers(1, 40), K4=st.integers(1, 20), N=st.integers(1, 40), version=st.sampled_from(VERSIONS),
       tile=st.sampled_from([4, 8]), seed=st.integers(0, 2**32 - 1))
def test_sgemm24_property(M, K4, N, version, tile, seed):
    a, b = operands(M, 4 * K4, N, seed)
    values, indices, pruned = compress_24(a)
    np.testing.assert_allclose(sgemm24(values, indices, b, version, tile=tile), sgemm24_ref(pruned, b),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("check", ["bounds", "race"])
def test_clean_under_checks(version, check):
    a, b = operands(21, 40, 19, seed=2)
    values, indices, pruned = compress_24(a)
    np.testing.assert_allclose(sgemm24(values, indices, b, version, tile=8, check=check), sgemm24_ref(pruned, b),
                               rtol=1e-4, atol=1e-4)


def test_counters_v2_loads_b_once_per_block():
    M = K = N = 64
    a, b = operands(M, K, N)
    values, indices, _ = compress_24(a)
    s1 = sgemm24(values, indices, b, 1, counters=True)[1]
    s2 = sgemm24(values, indices, b, 2, tile=16, counters=True)[1]
    # v1: per output element K/2 values (4 B), indices (1 B) and B elements (4 B)
    assert s1.bytes_loaded == M * N * (K // 2) * 9 and s1.bytes_stored == 4 * M * N
    # v2: every block loads its rows of compressed A and all of the B slab once
    blocks_m, blocks_n = M // 16, N // 16
    assert s2.bytes_loaded == blocks_n * M * (K // 2) * 5 + blocks_m * K * N * 4
    assert s2.bytes_loaded < s1.bytes_loaded / 8


def test_rejects_bad_input():
    a, b = operands(4, 8, 4)
    values, indices, _ = compress_24(a)
    with pytest.raises(TypeError, match="uint8"):
        sgemm24(values, indices.astype(np.int32), b)
    with pytest.raises(ValueError, match="2:4"):
        sgemm24(values, indices, b[:4])


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("M,K,N", [(19, 24, 21), (512, 512, 512)])
def test_sgemm24_matches_ref_gpu(version, M, K, N):
    import cupy
    a, b = operands(M, K, N, seed=4)
    values, indices, pruned = compress_24(a)
    c = sgemm24(cupy.asarray(values), cupy.asarray(indices), cupy.asarray(b), version)
    np.testing.assert_allclose(cupy.asnumpy(c), sgemm24_ref(pruned, b), rtol=1e-4, atol=1e-3)
