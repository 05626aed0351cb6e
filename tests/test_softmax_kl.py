"""kernels/softmax_kl.cu: both versions vs softmax_kl_ref and PyTorch's kl_div on ragged rows, temperatures far from 1
and logits that overflow a naive exp; one pass over the logits for v2 (traffic counters); CPU tier always, GPU when
present."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.softmax_kl import VERSIONS, softmax_kl, softmax_kl_ref

gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA device (CuPy missing or cupy.is_available() False)")


def logits(rows, n, scale=3.0, seed=0):
    g = np.random.default_rng(seed)
    return (scale * g.standard_normal((rows, n))).astype(np.float32), (scale * g.standard_normal((rows, n))).astype(np.float32)


def torch_kl(t, s, temperature):
    """PyTorch's own: kl_div(log q, log p, log_target) summed per row."""
    log_p = torch.log_softmax(torch.from_numpy(t).double() / temperature, 1)
    log_q = torch.log_softmax(torch.from_numpy(s).double() / temperature, 1)
    return torch.nn.functional.kl_div(log_q, log_p, reduction="none", log_target=True).sum(1).numpy()


def test_the_reference_is_pytorchs_kl_div():
    t, s = logits(7, 10)
    for temperature in (0.5, 1.0, 4.0, 20.0):
        np.testing.assert_allclose(softmax_kl_ref(t, s, temperature), torch_kl(t, s, temperature), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("rows,n", [(1, 1), (3, 10), (5, 127), (4, 129), (2, 1000)])
@pytest.mark.parametrize("temperature", [1.0, 4.0, 20.0])
def test_kl_matches_ref_cpu(version, rows, n, temperature):
    t, s = logits(rows, n, seed=n)
    np.testing.assert_allclose(softmax_kl(t, s, temperature, version), softmax_kl_ref(t, s, temperature),
                               rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("version", VERSIONS)
def test_logits_of_1e4_do_not_overflow(version):
    t, s = logits(4, 100, scale=1e4, seed=3)
    got = softmax_kl(t, s, 1.0, version)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, softmax_kl_ref(t, s, 1.0), rtol=1e-5)
    with np.errstate(over="ignore", invalid="ignore"):   # the naive way: exp(1e4) is inf, inf / inf is nan
        naive = np.exp(t) / np.exp(t).sum(1, keepdims=True)
    assert not np.isfinite(naive).all()


@pytest.mark.parametrize("version", VERSIONS)
def test_equal_rows_give_zero(version):
    t, _ = logits(3, 50)
    np.testing.assert_allclose(softmax_kl(t, t.copy(), 2.0, version), 0.0, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 6), n=st.integers(1, 300), version=st.sampled_from(VERSIONS),
       block=st.sampled_from([32, 64, 128]), temperature=st.sampled_from([0.25, 1.0, 7.0]), seed=st.integers(0, 2**32 - 1))
def test_kl_property_ragged_rows(rows, n, version, block, temperature, seed):
    t, s = logits(rows, n, seed=seed)
    np.testing.assert_allclose(softmax_kl(t, s, temperature, version, block=block), softmax_kl_ref(t, s, temperature),
                               rtol=1e-5, atol=2e-6)


def test_v2_reads_the_logits_once_v1_three_times():
    rows, n = 6, 1000
    t, s = logits(rows, n)
    stats = {v: softmax_kl(t, s, 2.0, v, counters=True)[1] for v in VERSIONS}
    assert stats[2].bytes_loaded == 2 * 4 * rows * n
    assert stats[1].bytes_loaded == 3 * 2 * 4 * rows * n
    assert stats[1].bytes_stored == stats[2].bytes_stored == 4 * rows


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("check", ["bounds", "race"])
def test_clean_under_checks(version, check):
    t, s = logits(3, 300)
    np.testing.assert_allclose(softmax_kl(t, s, 3.0, version, check=check), softmax_kl_ref(t, s, 3.0),
                               rtol=1e-5, atol=2e-6)


def test_rejects_bad_input():
    t, s = logits(2, 5)
    with pytest.raises(TypeError, match="float32"):
        softmax_kl(t.astype(np.float64), s, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        softmax_kl(t, s[:, :4].copy(), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        softmax_kl(t, s, 0.0)
    with pytest.raises(ValueError, match="version"):
        softmax_kl(t, s, 1.0, version=3)
    assert softmax_kl(t[:0], s[:0], 1.0).shape == (0,)


@gpu
@needs_gpu
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("rows,n", [(1, 1), (64, 10), (4096, 1000)])
def test_kl_matches_ref_gpu(version, rows, n):
    import cupy
    t, s = logits(rows, n, seed=rows)
    got = softmax_kl(cupy.asarray(t), cupy.asarray(s), 4.0, version)
    np.testing.assert_allclose(cupy.asnumpy(got), softmax_kl_ref(t, s, 4.0), rtol=1e-5, atol=2e-6)
