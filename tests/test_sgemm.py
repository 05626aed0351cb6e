"""kernels/sgemm.cu: every version vs sgemm_ref on ragged and even shapes; tiling shown by global-memory traffic."""
import time

import numpy as np
import pytest

from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.sgemm import VERSIONS, SgemmConfig, sgemm, sgemm_ref

SHAPES = [(1, 1, 1), (17, 33, 5), (64, 64, 64), (100, 70, 130)]
needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA device (CuPy missing or cupy.is_available() False)")


def random_pair(M, N, K, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_sgemm_matches_ref_cpu(version, M, N, K):
    a, b = random_pair(M, N, K)
    np.testing.assert_allclose(sgemm(a, b, version), sgemm_ref(a, b), rtol=1e-4, atol=1e-4 * K ** 0.5)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_sgemm_matches_ref_gpu(version, M, N, K):
    import cupy
    a, b = random_pair(M, N, K)
    c = sgemm(cupy.asarray(a), cupy.asarray(b), version)
    np.testing.assert_allclose(cupy.asnumpy(c), sgemm_ref(a, b), rtol=1e-4, atol=1e-4 * K ** 0.5)


def test_other_tile_configs():
    a, b = random_pair(45, 39, 21, seed=1)
    cfg = SgemmConfig(block=8, tile=8, bm=32, bn=16, bk=4, tm=2, tn=4)
    for version in VERSIONS:
        np.testing.assert_allclose(sgemm(a, b, version, cfg), sgemm_ref(a, b), rtol=1e-4, atol=1e-3)


def test_tiling_cuts_global_loads():
    a, b = random_pair(128, 128, 128)
    loads = {v: sgemm(a, b, v, counters=True)[1].bytes_loaded for v in VERSIONS}
    assert loads[1] == 2 * 128 ** 3 * 4  # every FMA reads one A and one B element from global memory
    assert loads[1] / loads[2] >= 8      # TILE=16: each staged element is reused 16 times
    assert loads[1] / loads[3] >= 8 and loads[3] < loads[2]


@pytest.mark.parametrize("check", ["bounds", "race"])
def test_sgemm_clean_under_checks(check):
    a, b = random_pair(37, 29, 41)
    for version in VERSIONS:
        np.testing.assert_allclose(sgemm(a, b, version, check=check), sgemm_ref(a, b), rtol=1e-4, atol=1e-3)


def test_sgemm_rejects_bad_input():
    a, b = random_pair(4, 5, 6)
    with pytest.raises(ValueError, match="inner dimensions"):
        sgemm(a, a)
    with pytest.raises(TypeError, match="float32"):
        sgemm(a.astype(np.float64), b)
    with pytest.raises(TypeError, match="C-contiguous"):
        sgemm(np.asfortranarray(a), b)


def test_speed_256_cubed_tiled_under_5_seconds():
    a, b = random_pair(256, 256, 256)
    for version in (2, 3):
        sgemm(a[:1, :1].copy(), b[:1, :1].copy(), version)  # compile outside the timing
        start = time.perf_counter()
        sgemm(a, b, version)
        assert time.perf_counter() - start < 5.0, f"sgemm_v{version}"
