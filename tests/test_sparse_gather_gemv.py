"""kernels/sparse_gather_gemv.cu: the fused predictor + gather GEMV and the skipping down projection vs sparse_ffn_ref on
ragged and even shapes (CPU tier; GPU when present); predicted-zero rows are never read (traffic counters)."""
import numpy as np
import pytest

from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.sparse_gather_gemv import pack_sign_bits, sign_predict, sparse_ffn, sparse_ffn_ref
from tinyml_lib.llm.sparseinfer import pack_signs

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA device (CuPy missing or cupy.is_available() False)")
SHAPES = [(32, 32), (100, 37), (256, 128), (77, 200)]


def problem(dff, d, seed=0):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    return f(d), f(dff, d), f(dff) * 0.1, f(dff, d), f(d)


@pytest.mark.parametrize("dff,d", SHAPES)
@pytest.mark.parametrize("alpha", [0.9, 1.0, 1.3])
def test_matches_ref_cpu(dff, d, alpha):
    x, w1, b1, w2t, b2 = problem(dff, d)
    y, h = sparse_ffn(x, w1, b1, w2t, b2, alpha)
    want, active = sparse_ffn_ref(x, w1, b1, w2t, b2, alpha)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    assert np.all(h[~active] == 0)
    w1_signs, x_signs = pack_sign_bits(w1), pack_sign_bits(x)
    np.testing.assert_array_equal(sign_predict(w1_signs, x_signs, d, alpha).astype(bool), active)


def test_sign_bits_agree_with_lab07():
    a = np.random.default_rng(3).standard_normal((5, 70))
    np.testing.assert_array_equal(pack_sign_bits(a), pack_signs(a))


@pytest.mark.parametrize("check", ["bounds", "race"])
def test_clean_under_checks(check):
    x, w1, b1, w2t, b2 = problem(45, 70, seed=1)
    y, _ = sparse_ffn(x, w1, b1, w2t, b2, 1.0, check=check)
    np.testing.assert_allclose(y, sparse_ffn_ref(x, w1, b1, w2t, b2, 1.0)[0], rtol=1e-4, atol=1e-4)


def test_skipped_rows_are_never_read():
    dff, d = 128, 64
    x, w1, b1, w2t, b2 = problem(dff, d, seed=2)
    y, h, (up, down) = sparse_ffn(x, w1, b1, w2t, b2, 1.0, counters=True)
    active = sparse_ffn_ref(x, w1, b1, w2t, b2, 1.0)[1]
    n_act, n_live, words = int(active.sum()), int((h != 0).sum()), (d + 31) // 32
    assert 0 < n_act < dff
    # up: every row's sign words and x's, then W1 rows, b1 and x only for active rows
    assert up.bytes_loaded == 4 * (dff * words * 2 + n_act * (2 * d + 1))
    # down: h staged once per block of 128 outputs, b2, and only the w2t rows of nonzero h
    assert down.bytes_loaded == 4 * (dff * -(-d // 128) + d + n_live * d)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dff,d", SHAPES)
def test_matches_ref_gpu(dff, d):
    import cupy
    x, w1, b1, w2t, b2 = problem(dff, d)
    y, _ = sparse_ffn(*(cupy.asarray(a) for a in (x, w1, b1, w2t, b2)), 1.0)
    np.testing.assert_allclose(cupy.asnumpy(y), sparse_ffn_ref(x, w1, b1, w2t, b2, 1.0)[0], rtol=1e-4, atol=1e-4)


def test_predictor_rule_and_sign_layout_on_hand_worked_values():
    assert pack_sign_bits(np.array([[1, -1, 1] + [-1] * 29 + [1]], np.float32)).tolist() == [[0xFFFFFFFA, 0]]
    # x = ones, d = 4: row 0 has 3 negative products, row 1 has 2. A row is predicted zero (skipped) when
    # n_neg > alpha * (d - n_neg): row 0 for alpha < 3, row 1 for alpha < 1.
    x, w1 = np.ones(4, np.float32), np.array([[-1, -1, -1, 1], [1, 1, -1, -1]], np.float32)
    for alpha, active in [(0.9, [False, False]), (1.0, [False, True]), (2.9, [False, True]), (3.0, [True, True])]:
        _, got = sparse_ffn_ref(x, w1, np.zeros(2, np.float32), np.ones((2, 4), np.float32), np.zeros(4, np.float32), alpha)
        assert got.tolist() == active, (alpha, got)
