"""kernels/lut_gemv.cu: both versions vs lut_gemv_ref on ragged and even shapes (CPU tier; GPU when present), on a
codebook from Lab 03's kmeans_quantize; bounds/race checks; v2 reads each index word once (traffic counters)."""
import numpy as np
import pytest
import torch

from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.lut_gemv import VERSIONS, lut_gemv, lut_gemv_ref, pack_w4
from tinyml_lib.quantization.kmeans import kmeans_quantize

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA device (CuPy missing or cupy.is_available() False)")
SHAPES = [(1, 8), (37, 72), (64, 256), (5, 1000), (130, 40)]


def problem(n, k, seed=0):
    """A k-means (4-bit) quantized Gaussian weight: (packed indices, codebook, x, the dequantized weight)."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=gen)
    codebook, idx = kmeans_quantize(w, 4, n_iter=5)
    x = torch.randn(k, generator=gen).numpy()
    return pack_w4(idx.numpy().astype(np.uint8)), codebook.numpy(), x, codebook[idx].numpy()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("n,k", SHAPES)
def test_matches_ref_cpu(version, n, k):
    q, codebook, x, w = problem(n, k)
    want = lut_gemv_ref(q, codebook, x)
    np.testing.assert_allclose(want, (w.astype(np.float64) @ x).astype(np.float32), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lut_gemv(q, codebook, x, version), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("check", ["bounds", "race"])
def test_clean_under_checks(version, check):
    q, codebook, x, _ = problem(37, 200, seed=1)
    np.testing.assert_allclose(lut_gemv(q, codebook, x, version, check=check), lut_gemv_ref(q, codebook, x),
                               rtol=1e-4, atol=1e-4)


def test_v2_reads_each_index_word_once():
    n, k, rows = 64, 512, 4
    q, codebook, x, _ = problem(n, k)
    _, v1 = lut_gemv(q, codebook, x, 1, counters=True)
    _, v2 = lut_gemv(q, codebook, x, 2, rows, counters=True)
    words = n * k // 8
    assert v1.bytes_loaded == 4 * words + 4 * n * k + 4 * n * k   # words, one codebook entry and one x per weight
    assert v2.bytes_loaded == 4 * words + 4 * (16 + k) * (n // rows)  # words once, codebook and x once per block
    assert v1.bytes_stored == v2.bytes_stored == 4 * n


def test_rejects_bad_input():
    q, codebook, x, _ = problem(4, 16)
    with pytest.raises(ValueError, match="version"):
        lut_gemv(q, codebook, x, version=3)
    with pytest.raises(ValueError, match="codebook"):
        lut_gemv(q, codebook[:8], x)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("n,k", SHAPES)
def test_matches_ref_gpu(version, n, k):
    import cupy
    q, codebook, x, _ = problem(n, k)
    got = lut_gemv(*(cupy.asarray(t) for t in (q, codebook, x)), version)
    np.testing.assert_allclose(cupy.asnumpy(got), lut_gemv_ref(q, codebook, x), rtol=1e-4, atol=1e-4)
