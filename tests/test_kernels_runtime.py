"""The kernel launcher and the CPU tier's CUDA emulation: every emulated feature vs NumPy, check modes, bad input."""
import concurrent.futures
import re

import numpy as np
import pytest

from tinyml_lib.kernels import (KernelCheckError, KernelCompileError, LaunchStats, ceil_div, gpu_available,
                                load_kernel)
from tinyml_lib.kernels import cpu_tier
from tinyml_lib.kernels.signature import parse_signature

# One source for all feature kernels: a single compile serves the whole module.
FEATURES = r"""
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ float square(float v) { return v * v; }
__device__ int twice(int v) { return 2 * v; }

__global__ void atomics(const int* __restrict__ bins_in, int* hist, unsigned int* ucount, float* fsum, int* imax,
                        int* imin, int* cas, float* fexch, unsigned int* tickets, int* won, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  atomicAdd(&hist[bins_in[i]], 1);
  tickets[i] = atomicAdd(ucount, 2u);   // the value before: 0, 2, 4, ... each to one thread
  atomicAdd(fsum, 0.5f);
  atomicMax(imax, bins_in[i] * 3 - i);
  atomicMin(imin, bins_in[i] * 3 - i);
  won[i] = atomicCAS(cas, -1, i) == -1;  // exactly one thread sees -1 and wins
  atomicExch(fexch, 1.5f);
}

__global__ void warp_ops(const int* x, int* out, unsigned int* votes) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x & 31;
  int v = x[t];
  out[6 * t + 0] = __shfl_sync(0xffffffffu, v, 3);
  out[6 * t + 1] = __shfl_down_sync(0xffffffffu, v, 5);
  out[6 * t + 2] = __shfl_up_sync(0xffffffffu, v, 2);
  out[6 * t + 3] = __shfl_xor_sync(0xffffffffu, v, 1);
  out[6 * t + 4] = __shfl_down_sync(0xffffffffu, v, 4, 8);
  float s = (float)v;
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  out[6 * t + 5] = (int)s;
  unsigned int b = __ballot_sync(0xffffffffu, v & 1);
  int any = __any_sync(0xffffffffu, v > 90), all = __all_sync(0xffffffffu, v >= 0);
  if (lane == 0) { votes[3 * (t / 32)] = b; votes[3 * (t / 32) + 1] = any; votes[3 * (t / 32) + 2] = all; }
}

__global__ void bits(const uint32_t* u, const unsigned long long* ull, const int* a, const int* b, int* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[4 * i] = __popc(u[i]);
  out[4 * i + 1] = __popcll(ull[i]);
  out[4 * i + 2] = __dp4a(a[i], b[i], 7);
  char4 ca = *reinterpret_cast<const char4*>(&a[i]), cb = *reinterpret_cast<const char4*>(&b[i]);
  out[4 * i + 3] = __dp4a(ca, cb, 0);
}

__global__ void halves(const __half* a, const __half* b, __half* out, float* out_f, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[4 * i] = __hadd(a[i], b[i]);
  out[4 * i + 1] = __hmul(a[i], b[i]);
  out[4 * i + 2] = a[i] - b[i];
  out[4 * i + 3] = __float2half(__half2float(a[i]) * 0.5f);
  out_f[i] = __half2float(a[i] * b[i] + a[i]);
}

__global__ void vectors(const float4* __restrict__ x, float4* y, const char4* c, int* csum, int n4) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  float4 v = __ldg(&x[i]);
  y[i] = make_float4(v.w, v.z, v.y, v.x + 1.0f);
  char4 q = c[i];
  csum[i] = q.x + q.y + q.z + q.w;
}

__global__ void dyn_shared(const float* x, float* out, int n) {
  extern __shared__ float buf[];
  int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  buf[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  if (i < n) out[i] = buf[blockDim.x - 1 - t];  // reverse within the block
}

__global__ void indices(int* out) {
  int tx = threadIdx.x + blockIdx.x * blockDim.x, ty = threadIdx.y + blockIdx.y * blockDim.y;
  int tz = threadIdx.z + blockIdx.z * blockDim.z;
  int W = blockDim.x * gridDim.x, H = blockDim.y * gridDim.y;
  out[(tz * H + ty) * W + tx] = twice(tx) + 1000 * ty + 100000 * tz;
}

__global__ void math_fns(const float* x, float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float v = x[i];
  out[12 * i + 0] = expf(v);   out[12 * i + 1] = logf(v);    out[12 * i + 2] = sqrtf(v);
  out[12 * i + 3] = rsqrtf(v); out[12 * i + 4] = fmaxf(v, 1.0f); out[12 * i + 5] = fminf(v, 1.0f);
  out[12 * i + 6] = fabsf(-v); out[12 * i + 7] = __expf(v);  out[12 * i + 8] = tanhf(v);
  out[12 * i + 9] = powf(v, 1.5f); out[12 * i + 10] = erff(v); out[12 * i + 11] = square(max(v, 0.5f)) + min(i, 3);
}

__global__ void int8_copy(const int8_t* a, signed char* b, uint8_t* c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) { b[i] = a[i]; c[i] = (uint8_t)(a[i] + 128); }
}
"""

SHARED_REDUCE = r"""
__global__ void block_sum(const float* x, float* out, int n) {
  __shared__ float s[128];
  int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  s[t] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if (t < k) s[t] += s[t + k];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}
"""


@pytest.fixture(scope="module")
def feature(request):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_kernel(FEATURES, name)
        return cache[name]
    return get


def test_gpu_available_is_a_bool_and_never_raises():
    assert gpu_available() in (True, False)


def test_atomics_int_unsigned_float(feature):
    rng = np.random.default_rng(0)
    n = 1000
    bins = rng.integers(0, 10, n).astype(np.int32)
    hist, ucount = np.zeros(10, np.int32), np.zeros(1, np.uint32)
    fsum, fexch = np.zeros(1, np.float32), np.zeros(1, np.float32)
    imax, imin, cas = np.array([-10**9], np.int32), np.array([10**9], np.int32), np.array([-1], np.int32)
    tickets, won = np.full(n, 7, np.uint32), np.full(n, 7, np.int32)
    feature("atomics")(ceil_div(n, 128), 128, (bins, hist, ucount, fsum, imax, imin, cas, fexch, tickets, won,
                                               np.int32(n)))
    vals = bins * 3 - np.arange(n)
    np.testing.assert_array_equal(hist, np.bincount(bins, minlength=10))
    assert ucount[0] == 2 * n and fsum[0] == 0.5 * n and fexch[0] == 1.5
    assert imax[0] == vals.max() and imin[0] == vals.min()
    np.testing.assert_array_equal(np.sort(tickets), 2 * np.arange(n, dtype=np.uint32))   # atomics return the old value
    assert won.sum() == 1 and cas[0] == np.flatnonzero(won)[0], "atomicCAS: exactly one thread swaps, the winner's id"


def test_warp_shuffles_and_votes(feature):
    x = np.random.default_rng(1).integers(0, 100, 128).astype(np.int32)
    out, votes = np.zeros(6 * 128, np.int32), np.zeros(3 * 4, np.uint32)
    feature("warp_ops")(2, 64, (x, out, votes))
    out, lane = out.reshape(128, 6), np.arange(128) % 32
    base = np.arange(128) - lane
    sub = np.where(lane % 8 + 4 < 8, np.arange(128) + 4, np.arange(128))
    np.testing.assert_array_equal(out[:, 0], x[base + 3])
    np.testing.assert_array_equal(out[:, 1], np.where(lane + 5 < 32, x[np.minimum(np.arange(128) + 5, 127)], x))
    np.testing.assert_array_equal(out[:, 2], np.where(lane >= 2, x[np.maximum(np.arange(128) - 2, 0)], x))
    np.testing.assert_array_equal(out[:, 3], x[np.arange(128) ^ 1])
    np.testing.assert_array_equal(out[:, 4], x[sub])
    np.testing.assert_array_equal(out[:, 5], np.repeat(x.reshape(4, 32).sum(1), 32))
    w = x.reshape(4, 32)
    ballots = [(sum(int(b) << i for i, b in enumerate(row & 1))) for row in w]
    np.testing.assert_array_equal(votes.reshape(4, 3)[:, 0], ballots)
    np.testing.assert_array_equal(votes.reshape(4, 3)[:, 1], (w > 90).any(1))
    np.testing.assert_array_equal(votes.reshape(4, 3)[:, 2], 1)


def test_popc_and_dp4a(feature):
    rng = np.random.default_rng(2)
    n = 50
    u = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    ull = rng.integers(0, 2**63, n, dtype=np.uint64)
    a, b = rng.integers(-2**31, 2**31, n).astype(np.int32), rng.integers(-2**31, 2**31, n).astype(np.int32)
    out = np.zeros(4 * n, np.int32)
    feature("bits")(1, 64, (u, ull, a, b, out, n))
    out = out.reshape(n, 4)
    np.testing.assert_array_equal(out[:, 0], [bin(v).count("1") for v in u])
    np.testing.assert_array_equal(out[:, 1], [bin(v).count("1") for v in ull])
    dot = (a.view(np.int8).reshape(n, 4).astype(np.int32) * b.view(np.int8).reshape(n, 4)).sum(1)
    np.testing.assert_array_equal(out[:, 2], dot + 7)
    np.testing.assert_array_equal(out[:, 3], dot)


def test_half_arithmetic_rounds_like_float16(feature):
    rng = np.random.default_rng(3)
    n = 200
    a = (rng.standard_normal(n) * 100).astype(np.float16)
    b = rng.standard_normal(n).astype(np.float16)
    a[:3] = [65504, 6e-8, -0.0]  # max half, a subnormal, signed zero
    out, out_f = np.zeros(4 * n, np.float16), np.zeros(n, np.float32)
    feature("halves")(2, 128, (a, b, out, out_f, n))
    out = out.reshape(n, 4)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out[:, 0], a + b)
        np.testing.assert_array_equal(out[:, 1], a * b)
        np.testing.assert_array_equal(out[:, 2], a - b)
    np.testing.assert_array_equal(out[:, 3], (a.astype(np.float32) * 0.5).astype(np.float16))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out_f, (a * b + a).astype(np.float32))  # half ops, each rounded


def test_vector_types(feature):
    x = np.arange(64, dtype=np.float32)
    y = np.zeros(64, np.float32)
    c = np.arange(64, dtype=np.int8) - 32
    csum = np.zeros(16, np.int32)
    feature("vectors")(1, 32, (x, y, c, csum, 16))
    np.testing.assert_array_equal(y.reshape(16, 4), x.reshape(16, 4)[:, ::-1] + [0, 0, 0, 1])
    np.testing.assert_array_equal(csum, c.reshape(16, 4).astype(np.int32).sum(1))


def test_dynamic_shared_memory(feature):
    x = np.arange(256, dtype=np.float32)
    out = np.zeros(256, np.float32)
    feature("dyn_shared")(4, 64, (x, out, 256), shared_mem=64 * 4)
    np.testing.assert_array_equal(out, x.reshape(4, 64)[:, ::-1].ravel())


@pytest.mark.parametrize("grid,block", [((3, 2), (4, 5)), ((2, 2, 3), (4, 2, 2)), (5, 7)])
def test_launch_indices_2d_3d(feature, grid, block):
    g, b = (tuple(v) if isinstance(v, tuple) else (v,) for v in (grid, block))
    g, b = g + (1,) * (3 - len(g)), b + (1,) * (3 - len(b))
    W, H, D = g[0] * b[0], g[1] * b[1], g[2] * b[2]
    out = np.zeros(W * H * D, np.int32)
    stats = feature("indices")(grid, block, (out,))
    z, y, x = np.meshgrid(np.arange(D), np.arange(H), np.arange(W), indexing="ij")
    np.testing.assert_array_equal(out, (2 * x + 1000 * y + 100000 * z).ravel())
    assert isinstance(stats, LaunchStats) and stats.tier == "cpu" and stats.grid == g and stats.block == b


def test_math_functions_and_device_helpers(feature):
    import math
    x = np.linspace(0.1, 3.0, 40, dtype=np.float32)
    out = np.zeros(12 * 40, np.float32)
    feature("math_fns")(1, 64, (x, out, 40))
    out = out.reshape(40, 12)
    erf = np.array([math.erf(v) for v in x], np.float32)
    want = [np.exp(x), np.log(x), np.sqrt(x), 1 / np.sqrt(x), np.maximum(x, 1), np.minimum(x, 1), x, np.exp(x),
            np.tanh(x), x ** 1.5, erf, np.maximum(x, 0.5) ** 2 + np.minimum(np.arange(40), 3)]
    np.testing.assert_allclose(out, np.stack(want, 1), rtol=2e-6)


def test_int8_pointer_types(feature):
    a = np.arange(-100, 100, dtype=np.int8)
    b, c = np.zeros_like(a), np.zeros(200, np.uint8)
    feature("int8_copy")(2, 128, (a, b, c, 200))
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(c, (a.astype(np.int32) + 128).astype(np.uint8))


# ---- check modes ------------------------------------------------------------------------------------------------
OOB = """__global__ void scale(const float* x, float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n)  // bug: i == n is past the end
    out[i] = 2.0f;
}
"""


def test_bounds_check_reports_argument_index_and_line():
    k = load_kernel(OOB, "scale")
    x, out = np.ones(1000, np.float32), np.zeros(1000, np.float32)
    k(8, 128, (x, out, np.int32(1000)))  # without a check the bug is silent
    with pytest.raises(KernelCheckError, match=r"out-of-bounds write to argument 'out' \(index 1000, size 1000\) "
                                               r"at kernel.cu:4 in scale"):
        k(8, 128, (x, out, np.int32(1000)), check="bounds")


def test_bounds_check_names_file_of_a_cu_path(tmp_path):
    path = tmp_path / "mykernel.cu"
    path.write_text("// a comment line\n" + OOB.replace("out[i] = 2.0f;", "out[i] = x[i];"))
    k = load_kernel(path, "scale")
    with pytest.raises(KernelCheckError, match=r"read from argument 'x' \(index 10, size 10\) at mykernel.cu:5"):
        k(1, 32, (np.ones(10, np.float32), np.zeros(11, np.float32), 10), check="bounds")


def test_bounds_check_far_out_of_range_does_not_crash():
    k = load_kernel("__global__ void wild(float* out) { out[threadIdx.x * 1000000] = 1.0f; }", "wild")
    with pytest.raises(KernelCheckError, match=r"'out' \(index 1000000, size 64\) at kernel.cu:1"):
        k(1, 64, (np.zeros(64, np.float32),), check="bounds")


def test_race_check_finds_missing_syncthreads():
    racy = SHARED_REDUCE.replace("  __syncthreads();\n  for", "  for", 1)
    k = load_kernel(racy, "block_sum")
    x, out = np.ones(256, np.float32), np.zeros(2, np.float32)
    with pytest.raises(KernelCheckError) as err:
        k(2, 128, (x, out, 256), check="race")
    msg = str(err.value)
    assert "data race on shared memory s" in msg
    assert re.search(r"writes it at kernel.cu:5 in block_sum", msg) and "reads it at kernel.cu:7" in msg


@pytest.mark.parametrize("check", ["bounds", "race"])
def test_correct_kernels_are_clean_under_checks(feature, check):
    k = load_kernel(SHARED_REDUCE, "block_sum")
    x, out = np.arange(300, dtype=np.float32), np.zeros(3, np.float32)
    k(3, 128, (x, out, 300), check=check)
    np.testing.assert_array_equal(out, [x[:128].sum(), x[128:256].sum(), x[256:].sum()])
    vals = np.random.default_rng(0).integers(0, 100, 128).astype(np.int32)
    feature("warp_ops")(2, 64, (vals, np.zeros(6 * 128, np.int32), np.zeros(12, np.uint32)), check=check)
    bins = np.zeros(64, np.int32)
    feature("atomics")(1, 64, (bins, np.zeros(10, np.int32), np.zeros(1, np.uint32), np.zeros(1, np.float32),
                               np.zeros(1, np.int32), np.zeros(1, np.int32), np.zeros(1, np.int32),
                               np.zeros(1, np.float32), np.zeros(64, np.uint32), np.zeros(64, np.int32), 64),
                      check=check)
    feature("dyn_shared")(4, 64, (np.ones(256, np.float32), np.zeros(256, np.float32), 256), shared_mem=256,
                          check=check)


def test_dynamic_shared_memory_overrun_is_reported(feature):
    with pytest.raises(KernelCheckError, match=r"extern __shared__ memory \(byte 128, but shared_mem=128"):
        feature("dyn_shared")(1, 64, (np.ones(64, np.float32), np.zeros(64, np.float32), 64), shared_mem=128,
                              check="bounds")


def test_warp_primitive_in_divergent_code_is_a_deadlock_error():
    src = """__global__ void bad(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
  else __syncthreads();
}"""
    with pytest.raises(KernelCheckError, match=r"deadlock.*kernel.cu:2.*kernel.cu:3"):
        load_kernel(src, "bad")(1, 32, (np.zeros(32, np.int32),))


def test_counters_count_global_and_shared_traffic():
    k = load_kernel(SHARED_REDUCE, "block_sum")
    stats = k(2, 128, (np.ones(256, np.float32), np.zeros(2, np.float32), 256), counters=True)
    assert (stats.bytes_loaded, stats.bytes_stored, stats.atomics) == (256 * 4, 2 * 4, 0)
    assert stats.shared_stored == 4 * (256 + 2 * sum(128 >> j for j in range(1, 8)))
    assert stats.barriers == 2 * 8
    plain = k(2, 128, (np.ones(256, np.float32), np.zeros(2, np.float32), 256))
    assert plain.bytes_loaded is None and plain.seconds > 0


# ---- API and bad input --------------------------------------------------------------------------------------------
def test_defines_and_ifndef_defaults():
    src = "#ifndef VAL\n#define VAL 3\n#endif\n__global__ void f(int* o) { o[0] = VAL; }"
    out = np.zeros(1, np.int32)
    load_kernel(src, "f")(1, 1, (out,))
    assert out[0] == 3
    load_kernel(src, "f", defines={"VAL": 42})(1, 1, (out,))
    assert out[0] == 42


def test_compiled_library_is_cached():
    k1, k2 = load_kernel(SHARED_REDUCE, "block_sum"), load_kernel(SHARED_REDUCE, "block_sum")
    assert k1.library("fast") == k2.library("fast")
    assert load_kernel(SHARED_REDUCE, "block_sum", {"X": 1}).library("fast") != k1.library("fast")


def test_concurrent_builds_of_one_kernel_are_safe(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYML_CACHE", str(tmp_path))
    tu = cpu_tier.translation_unit(SHARED_REDUCE + "// concurrent\n", "kernel.cu", ())
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: cpu_tier.build_library(tu, "kernel.cu", "fast"), range(2)))
    assert paths[0] == paths[1] and paths[0].exists()
    assert not list(tmp_path.glob("*.tmp*"))


def test_compile_error_shows_kernel_relative_line():
    src = "__global__ void f(float* x) {\n  x[0] = 1.0f;\n  x[1] = undefined_name;\n}\n"
    with pytest.raises(KernelCompileError, match=r"kernel.cu:3:\d+: error: .undefined_name"):
        load_kernel(src, "f")


def test_unknown_kernel_name_lists_the_kernels():
    with pytest.raises(ValueError, match=r"no __global__ kernel named 'nope'.*block_sum"):
        load_kernel(SHARED_REDUCE, "nope")


@pytest.mark.parametrize("args,error,pattern", [
    ((np.ones(4, np.float64), np.zeros(1, np.float32), 4), TypeError,
     r"argument 0 \('x': const float\*\) expects an array of float32 but got float64"),
    ((np.ones((4, 2), np.float32)[:, 0], np.zeros(1, np.float32), 4), ValueError,
     r"argument 0 \('x'.*C-contiguous"),
    ((np.ones(4, np.float32), np.zeros(1, np.float32)), TypeError, r"takes 3 arguments \(x, out, n\) but 2"),
    ((np.ones(4, np.float32), np.zeros(1, np.float32), np.int64(4)), TypeError,
     r"argument 2 \('n': int\) expects np.int32 but got np.int64"),
    ((np.ones(4, np.float32), np.zeros(1, np.float32), 4.0), TypeError, r"argument 2 \('n': int\) expects a scalar"),
    ((np.ones(4, np.float32), np.zeros(1, np.float32), 2**40), ValueError, r"'n'.*does not fit in int32"),
    ((np.ones(4, np.float32), 0.0, 4), TypeError, r"argument 1 \('out': float\*\) expects an array but got float"),
])
def test_bad_arguments_name_the_parameter(args, error, pattern):
    k = load_kernel(SHARED_REDUCE.replace("const float* x", "const float* __restrict__ x"), "block_sum")
    with pytest.raises(error, match=pattern):
        k(1, 128, args)


def test_read_only_array_for_written_parameter():
    out = np.zeros(1, np.float32)
    out.setflags(write=False)
    with pytest.raises(ValueError, match=r"argument 1 \('out'.*read-only"):
        load_kernel(SHARED_REDUCE, "block_sum")(1, 128, (np.ones(4, np.float32), out, 4))


class _FakeCupyArray:
    """Looks like a cupy.ndarray to the tier dispatch (no CuPy needed)."""
    __module__ = "cupy._core.core"
    dtype, data = np.dtype(np.float32), None


def test_mixing_numpy_and_cupy_arrays_names_the_arguments():
    k = load_kernel(SHARED_REDUCE, "block_sum")
    with pytest.raises(TypeError, match=r"argument 0 \('x'\) is a numpy.ndarray but argument 1 \('out'\) is a cupy"):
        k(1, 128, (np.ones(4, np.float32), _FakeCupyArray(), 4))


def test_check_modes_on_gpu_tier_are_rejected():
    k = load_kernel(SHARED_REDUCE, "block_sum")
    with pytest.raises(ValueError, match="CPU-tier features"):
        k(1, 128, (_FakeCupyArray(), _FakeCupyArray(), 4), check="race")


@pytest.mark.parametrize("grid,block,shared,pattern", [
    (0, 128, 0, "grid must be"), ((1, 2, 3, 4), 128, 0, "grid must be"), (1, 2048, 0, "at most 1024"),
    (1, 128, -1, "shared_mem must be"), (1, 128, 1 << 20, "at most 262144")])
def test_bad_launch_configuration(grid, block, shared, pattern):
    k = load_kernel(SHARED_REDUCE, "block_sum")
    with pytest.raises(ValueError, match=pattern):
        k(grid, block, (np.ones(4, np.float32), np.zeros(1, np.float32), 4), shared_mem=shared)


def test_signature_parser_handles_qualifiers_and_types():
    src = """extern "C" __global__ void __launch_bounds__(256) k(const float* __restrict__ a, unsigned int n,
             __half* h, const int8_t* __restrict__ q, float4* v, signed char* c, uint32_t* u, long long s) {}"""
    p = parse_signature(src, "k")
    assert [(x.name, x.ctype, x.pointer, x.const) for x in p] == [
        ("a", "float", True, True), ("n", "unsigned int", False, False), ("h", "__half", True, False),
        ("q", "int8_t", True, True), ("v", "float4", True, False), ("c", "signed char", True, False),
        ("u", "uint32_t", True, False), ("s", "long long", False, False)]
    assert [str(x.dtype) for x in p] == ["float32", "uint32", "float16", "int8", "float32", "int8", "uint32",
                                         "int64"]
    assert p[4].lanes == 4


TEMPLATE_SHARED = r"""
__constant__ float coef[4] = {1.0f, 2.0f, 3.0f, 4.0f};
__device__ int launches;
template <int N> __device__ float block_total(float v) {
  __shared__ float tmp[N];
  tmp[threadIdx.x] = v;
  __syncthreads();
  float s = 0.0f;
  for (int i = 0; i < N; ++i) s += tmp[i];
  __syncthreads();
  return s;
}
__global__ void totals(float* out) {
  float s = block_total<64>(coef[threadIdx.x % 4]);
  if (threadIdx.x == 0) { out[blockIdx.x] = s; atomicAdd(&launches, 1); }
}
"""


@pytest.mark.parametrize("check", [None, "bounds", "race"])
def test_template_shared_constant_and_device_variables(check):
    # Regression: template statics must be private to each library (fast and check builds are both loaded).
    k = load_kernel(TEMPLATE_SHARED, "totals")
    out = np.zeros(2, np.float32)
    k(2, 64, (out,))
    k(2, 64, (out,), check=check)
    np.testing.assert_array_equal(out, [160.0, 160.0])
    with pytest.raises(KernelCheckError, match=r"data race on shared memory tmp .* kernel.cu:6"):
        load_kernel(TEMPLATE_SHARED.replace("  __syncthreads();\n  float s", "  float s"), "totals")(
            2, 64, (out,), check="race")


# ------------------------------------------------------------------ what a GPU would show: undefined shared memory,
# lanes out of lockstep, read-modify-writes of global memory without atomics
EMU_CASES = r"""
__global__ void leftovers(const float* x, float* out) {
  __shared__ float s[32];
  if (blockIdx.x == 0) s[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  out[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x];
}
__global__ void warp_tree(const float* x, float* out) {
  __shared__ float s[64];
  int t = threadIdx.x;
  s[t] = x[t];
  __syncthreads();
  if (t < 32) {
    s[t] += s[t + 32];
    SYNCWARP
    for (int o = 16; o > 0; o >>= 1) {
      float v = t < o ? s[t + o] : 0.0f;
      SYNCWARP
      if (t < o) s[t] += v;
      SYNCWARP
    }
  }
  if (t == 0) out[0] = s[0];
}
__global__ void scatter_add(const int* rows, const float* v, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) ADD(&y[rows[i]], v[i]);
}
__global__ void own_rows(const float* v, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) { y[i] += v[i]; y[i] *= 2.0f; }
}
__global__ void two_parties(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = threadIdx.x;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = s[1];
  if (threadIdx.x == 1) s[1] = s[1] + 1.0f;
}
__global__ void counter_past_end(int* counts) { atomicAdd(&counts[threadIdx.x], 1); }
"""
STATIC_OVERRUN = r"""
__device__ int launches;   // in .bss, right after the shared arrays: not an overrun
__global__ void static_overrun(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x % 64];
  if (threadIdx.x == 0) atomicAdd(&launches, 1);
}
"""


def emu_kernel(name, syncwarp=False, atomic=False):
    defines = {"SYNCWARP": "__syncwarp();" if syncwarp else "", "ADD(p, v)": "atomicAdd(p, v)" if atomic else "(*(p) += (v))"}
    source = "".join(f"#define {k} {v}\n" for k, v in defines.items()) + EMU_CASES
    return load_kernel(source, name)


def test_shared_memory_is_undefined_in_each_block_and_reading_it_unwritten_is_reported():
    x, out = np.arange(32, dtype=np.float32), np.zeros(64, np.float32)
    emu_kernel("leftovers")(2, 32, (x, out))
    np.testing.assert_array_equal(out[:32], x)
    assert np.isnan(out[32:]).all(), "block 1 must not see block 0's shared memory (it reads the poison: NaN)"
    with pytest.raises(KernelCheckError, match=r"thread \(0,0,0\) of block \(1,0,0\) reads shared memory s \(byte 0\) "
                                               r"at kernel.cu:\d+ in leftovers before any thread of its block wrote it"):
        emu_kernel("leftovers")(2, 32, (x, out), check="race")


def test_lanes_of_a_warp_race_without_syncwarp():
    x, out = np.arange(64, dtype=np.float32), np.zeros(1, np.float32)
    with pytest.raises(KernelCheckError, match=r"no __syncwarp\(\) between them"):
        emu_kernel("warp_tree")(1, 64, (x, out), check="race")
    emu_kernel("warp_tree", syncwarp=True)(1, 64, (x, out), check="race")   # __syncwarp orders the lanes
    assert out[0] == x.sum()


def test_global_read_modify_write_without_atomics_is_a_race():
    rows, v = np.array([0, 1] * 32, np.int32), np.ones(64, np.float32)
    for block in (64, 32):   # two lanes of one block, then two blocks, add into the same row
        with pytest.raises(KernelCheckError, match=r"data race on global memory: .* reads argument 'y' \(index [01]\) "
                                                   r"at kernel.cu:\d+ .*need an atomic"):
            emu_kernel("scatter_add")(64 // block, block, (rows, v, np.zeros(2, np.float32), 64), check="race")
    y = np.zeros(2, np.float32)
    emu_kernel("scatter_add", atomic=True)(2, 32, (rows, v, y, 64), check="race")
    np.testing.assert_array_equal(y, [32, 32])
    y = np.ones(64, np.float32)
    emu_kernel("own_rows")(2, 32, (v, y, 64), check="race")   # a thread re-reading its own writes is no race
    np.testing.assert_array_equal(y, 4.0)


def test_race_report_names_both_threads_and_an_atomic_out_of_bounds_is_not_a_read():
    with pytest.raises(KernelCheckError) as err:
        emu_kernel("two_parties")(1, 64, (np.zeros(1, np.float32),), check="race")
    lines = [int(n) for n in re.findall(r"kernel.cu:(\d+)", str(err.value))]
    assert re.search(r"thread \(1,0,0\) writes it at kernel.cu:\d+ .* and thread \(0,0,0\) reads it", str(err.value))
    assert lines[0] == lines[1] + 1, str(err.value)   # the write, and the read on the line before it
    with pytest.raises(KernelCheckError, match=r"out-of-bounds atomic operation on argument 'counts' \(index 4, size 4\)"):
        emu_kernel("counter_past_end")(1, 5, (np.zeros(4, np.int32),), check="bounds")
    with pytest.raises(KernelCheckError, match=r"out-of-bounds write to static __shared__ memory \(byte 256, past the end "
                                               r"of the kernel's 256 bytes of __shared__ arrays\) at kernel.cu:\d+ in "
                                               r"static_overrun, thread \(64,0,0\)"):
        load_kernel(STATIC_OVERRUN, "static_overrun")(1, 65, (np.zeros(65, np.float32),), check="bounds")
    load_kernel(STATIC_OVERRUN, "static_overrun")(1, 64, (np.zeros(64, np.float32),), check="bounds")
