"""kernels/reduction.cu: every version vs reduce_sum_ref on ragged and even sizes, CPU tier always, GPU when present."""
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyml_lib.kernels import KernelCheckError, gpu_available, load_kernel
from tinyml_lib.kernels.launcher import kernel_file
from tinyml_lib.kernels.reduction import VERSIONS, reduce_sum, reduce_sum_ref

gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA device (CuPy missing or cupy.is_available() False)")


def assert_sum_close(got, x):
    # Summation order differs from the reference; float32 rounding error grows with n (v1: sequential atomics).
    want = reduce_sum_ref(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1, x.size) ** 0.5)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("n", [1, 31, 256, 1000, 1 << 20])
def test_reduce_matches_ref_cpu(version, n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    assert_sum_close(reduce_sum(x, version), x)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 3000), version=st.sampled_from(VERSIONS), block=st.sampled_from([32, 256]),
       seed=st.integers(0, 2**32 - 1))
def test_reduce_property_small_sizes(n, version, block, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, n).astype(np.float32)
    assert_sum_close(reduce_sum(x, version, block=block), x)


@gpu
@needs_gpu
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("n", [1, 31, 256, 1000, 1 << 20])
def test_reduce_matches_ref_gpu(version, n):
    import cupy
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    assert_sum_close(reduce_sum(cupy.asarray(x), version), x)


def test_reduce_rejects_bad_input():
    with pytest.raises(TypeError, match="float32"):
        reduce_sum(np.ones(10, np.float64))
    with pytest.raises(TypeError, match="1-D C-contiguous"):
        reduce_sum(np.ones((4, 4), np.float32)[:, 0])
    with pytest.raises(ValueError, match="version"):
        reduce_sum(np.ones(4, np.float32), version=9)


def test_counters_v1_one_atomic_per_element_v2_v3_one_per_block():
    n, block = 1 << 14, 256
    x = np.ones(n, np.float32)
    stats = {v: reduce_sum(x, v, block=block, counters=True)[1] for v in VERSIONS}
    for v in VERSIONS:
        assert stats[v].bytes_loaded == 4 * n and stats[v].bytes_stored == 0
    assert stats[1].atomics == n
    assert stats[2].atomics == stats[3].atomics == n // block
    assert stats[2].barriers == (n // block) * 9 and stats[3].barriers == n // block  # log2(256)+1 vs 1
    assert stats[3].shared_loaded < stats[2].shared_loaded / 10


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("check", ["bounds", "race"])
def test_course_reductions_are_clean_under_checks(version, check):
    x = np.random.default_rng(0).standard_normal(3000).astype(np.float32)
    assert_sum_close(reduce_sum(x, version, check=check), x)


def test_race_check_on_reduce_v2_without_its_first_syncthreads():
    src = kernel_file("reduction.cu").read_text()
    lines = src.splitlines()
    first = next(i for i, ln in enumerate(lines) if "partial[tid] = sum;" in ln)
    assert "__syncthreads();" in lines[first + 1]
    lines[first + 1] = ""  # the student's bug: the tree starts before every partial sum is stored
    k = load_kernel("\n".join(lines), "reduce_v2")
    x, out = np.ones(4096, np.float32), np.zeros(1, np.float32)
    with pytest.raises(KernelCheckError, match=rf"writes it at kernel.cu:{first + 1} .* reads it at kernel.cu:"
                                               rf"{first + 5} in reduce_v2"):
        k(16, 256, (x, out, np.int32(4096)), check="race")


def test_speed_1m_floats_under_2_seconds():
    # CPU seconds of this process (the emulator's threads included), not wall time: what another process does to
    # the machine's load is not the emulator's cost.
    x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    for version in VERSIONS:
        reduce_sum(x[:10], version)  # compile outside the timing
        start = time.process_time()
        reduce_sum(x, version)
        assert time.process_time() - start < 2.0, f"reduce_v{version}"
