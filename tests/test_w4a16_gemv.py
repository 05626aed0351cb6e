"""kernels/w4a16_gemv.cu: every version vs w4a16_gemv_ref on ragged and even shapes, CPU tier always, GPU when present;
the packed layout agrees with Lab 07's pack_int4; bounds/race checks; each weight word is read once by v2."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.w4a16_gemv import VERSIONS, fp16_gemv, pack_w4, unpack_w4, w4a16_gemv, w4a16_gemv_ref
from tinyml_lib.llm.awq import pack_int4

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA device (CuPy missing or cupy.is_available() False)")
SHAPES = [(1, 64, 64), (37, 192, 64), (64, 576, 64), (5, 96, 32), (130, 128, 128)]


def problem(n, k, group, seed=0):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
    scales = (rng.random((n, k // group)) * 0.1 + 0.01).astype(np.float16)
    zeros = rng.integers(0, 16, (n, k // group), dtype=np.uint8)
    return pack_w4(codes), scales, zeros, rng.standard_normal(k).astype(np.float16)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("n,k,group", SHAPES)
def test_matches_ref_cpu(version, n, k, group):
    q, s, z, x = problem(n, k, group)
    np.testing.assert_allclose(w4a16_gemv(q, s, z, x, version, group), w4a16_gemv_ref(q, s, z, x, group),
                               rtol=1e-4, atol=1e-4)


@settings(max_examples=15, deadline=None)
@given(codes=st.lists(st.integers(0, 15), min_size=16, max_size=16), rows=st.integers(1, 3))
def test_pack_roundtrip_and_agrees_with_pack_int4(codes, rows):
    c = np.array(codes * rows, dtype=np.uint8).reshape(rows, 16)
    words = pack_w4(c)
    np.testing.assert_array_equal(unpack_w4(words), c)
    bytes_le = pack_int4(torch.from_numpy(c)).numpy()  # two codes per byte, low nibble = even column
    np.testing.assert_array_equal(bytes_le.view("<u4"), words)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("check", ["bounds", "race"])
def test_clean_under_checks(version, check):
    q, s, z, x = problem(37, 192, 64, seed=1)
    np.testing.assert_allclose(w4a16_gemv(q, s, z, x, version, 64, check=check), w4a16_gemv_ref(q, s, z, x, 64),
                               rtol=1e-4, atol=1e-4)


def test_v2_reads_each_weight_word_once():
    n, k, group, rows = 64, 576, 64, 4
    q, s, z, x = problem(n, k, group)
    _, stats = w4a16_gemv(q, s, z, x, 2, group, rows, counters=True)
    words = n * k // 8
    # packed weights once + one scale (fp16) and zero (uint8) per word + x staged once per block of `rows` rows
    assert stats.bytes_loaded == 4 * words + 3 * words + 2 * k * (n // rows)
    assert stats.bytes_stored == 4 * n


def test_fp16_baseline_matches():
    q, s, z, x = problem(33, 128, 64, seed=2)
    codes = unpack_w4(q).astype(np.float32)
    w = ((codes - np.repeat(z, 64, 1)) * np.repeat(s.astype(np.float32), 64, 1)).astype(np.float16)
    want = (w.astype(np.float64) @ x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(fp16_gemv(w, x), want, rtol=1e-4, atol=1e-4)


def test_rejects_bad_input():
    q, s, z, x = problem(4, 64, 64)
    with pytest.raises(ValueError, match="version"):
        w4a16_gemv(q, s, z, x, version=7)
    with pytest.raises(ValueError, match="expected x"):
        w4a16_gemv(q, s, z, x[:32])
    with pytest.raises(ValueError, match="codes"):
        pack_w4(np.full((2, 8), 16, np.uint8))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("n,k,group", SHAPES)
def test_matches_ref_gpu(version, n, k, group):
    import cupy
    q, s, z, x = problem(n, k, group)
    got = w4a16_gemv(*(cupy.asarray(t) for t in (q, s, z, x)), version, group)
    np.testing.assert_allclose(cupy.asnumpy(got), w4a16_gemv_ref(q, s, z, x, group), rtol=1e-4, atol=1e-4)


def test_packing_and_dequantization_on_hand_worked_values():
    assert pack_w4(np.array([[1, 2, 3, 4, 5, 6, 7, 8]], np.uint8)).tolist() == [[0x87654321]]
    # K = 128, two groups of 64: codes 3 then 10, scales 0.5 and 0.25, zeros 1 and 2, x = ones:
    # (3 - 1) * 0.5 * 64 + (10 - 2) * 0.25 * 64 = 64 + 128.
    codes = np.repeat(np.array([[3, 10]], np.uint8), 64, axis=1)
    y = w4a16_gemv_ref(pack_w4(codes), np.array([[0.5, 0.25]], np.float16), np.array([[1, 2]], np.uint8),
                       np.ones(128, np.float16))
    assert y.tolist() == [192.0]
