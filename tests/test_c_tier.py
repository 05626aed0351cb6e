"""The C tier (tinyml_lib.kernels.c_tier): C/C++ compiled for this CPU, called with NumPy arrays, with the kernel
tiers' argument checks and, on request, their bounds check."""
import re
import subprocess

import numpy as np
import pytest

from tinyml_lib.kernels import KernelCheckError, KernelCompileError, cpu_features, load_c
from tinyml_lib.kernels.cpu_tier import compiler

SRC = r"""
#include <omp.h>
// c[m x n] = a[m x k] b[k x n], row-major
void matmul(const float* a, const float* b, float* c, int m, int n, int k) {
  #pragma omp parallel for
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float s = 0.0f;
      for (int p = 0; p < k; ++p) s += a[i * k + p] * b[p * n + j];
      c[i * n + j] = s;
    }
}
void threads_seen(int* out) {
  out[0] = omp_get_max_threads();
  #pragma omp parallel
  { if (omp_get_thread_num() == 0) out[1] = omp_get_num_threads(); }
}
void fill_one_past(float* y, int n) { for (int i = 0; i <= n; ++i) y[i] = 1.0f; }
void read_before(const float* restrict x, float* restrict y, int n) { for (int i = 0; i < n; ++i) y[i] = x[i - 1]; }
static inline float twice(float v) { return 2.0f * v; }
void scale(float* y, double s, long long n, unsigned char flag) { for (long long i = 0; i < n; ++i) y[i] = twice(y[i]) * (float)s + flag; }
"""
SIMD = r"""
#include <cstring>
typedef float f8 __attribute__((vector_size(32)));   // 8 float lanes; GCC splits it where the CPU's vectors are narrower
void axpy(const float* x, float* y, float alpha, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    f8 xv, yv;
    std::memcpy(&xv, x + i, sizeof xv);   // unaligned loads, portable
    std::memcpy(&yv, y + i, sizeof yv);
    yv += alpha * xv;
    std::memcpy(y + i, &yv, sizeof yv);
  }
  for (; i < n; ++i) y[i] += alpha * x[i];   // the tail
}
"""


def rng_arrays(*shapes, seed=0):
    g = np.random.default_rng(seed)
    return [g.standard_normal(s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 13, 5), (33, 17, 64)])
def test_matmul_equals_numpy_on_ragged_shapes_fast_and_checked(m, n, k):
    f = load_c(SRC, "matmul")
    a, b = rng_arrays((m, k), (k, n))
    for check in (None, "bounds"):
        c = np.full((m, n), np.nan, np.float32)
        f(a, b, c, m, n, k, check=check)
        np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_openmp_threads_are_set_per_call_and_ignored_when_checked():
    f = load_c(SRC, "threads_seen")
    out = np.zeros(2, np.int32)
    for threads in (1, 2, 3):
        f(out, threads=threads)
        assert out.tolist() == [threads, threads]
    f(out, check="bounds")   # the checked build ignores the pragmas: one thread
    assert out[1] == 1
    serial = load_c(SRC, "matmul", openmp=False)
    with pytest.raises(ValueError, match=r"threads=2 needs load_c\(\.\.\., openmp=True\)"):
        serial(*rng_arrays((2, 2), (2, 2)), np.zeros((2, 2), np.float32), 2, 2, 2, threads=2)
    with pytest.raises(ValueError, match="threads must be a positive int, got 0"):
        f(out, threads=0)


def test_scalars_of_every_width_and_static_helpers():
    f = load_c(SRC, "scale")
    y = np.arange(5, dtype=np.float32)
    f(y, 0.5, 5, 3)
    np.testing.assert_array_equal(y, np.arange(5) + 3.0)
    assert [p.ctype for p in f.params] == ["float", "double", "long long", "unsigned char"]


def test_bounds_check_names_the_argument_index_and_line():
    with pytest.raises(KernelCheckError, match=r"^fill_one_past: out-of-bounds write to argument 'y' \(index 8, size 8\) "
                                               r"at kernel\.c:\d+ in fill_one_past$"):
        load_c(SRC, "fill_one_past")(np.zeros(8, np.float32), 8, check="bounds")
    line = next(i for i, text in enumerate(SRC.splitlines(), 1) if "void read_before" in text)
    with pytest.raises(KernelCheckError, match=rf"read from argument 'x' \(index -1, size 4\) at kernel\.c:{line} in read_before"):
        load_c(SRC, "read_before")(np.ones(4, np.float32), np.zeros(4, np.float32), 4, check="bounds")


def test_memory_from_malloc_is_outside_the_checked_arrays_and_said_so():
    f = load_c("#include <cstdlib>\nvoid copy_via_heap(float* y, int n) {\n  float* t = (float*)malloc(n * sizeof(float));\n"
               "  for (int i = 0; i < n; ++i) t[i] = i;\n  for (int i = 0; i < n; ++i) y[i] = t[i];\n  free(t);\n}", "copy_via_heap")
    y = np.zeros(4, np.float32)
    f(y, 4)
    assert y.tolist() == [0, 1, 2, 3]
    with pytest.raises(KernelCheckError, match=r"write to argument 'y' \(index (-?\d+), size 4\) at kernel\.c:4 in "
                                               r"copy_via_heap") as err:
        f(y, 4, check="bounds")
    index = int(re.search(r"index (-?\d+)", str(err.value))[1])
    if not -4 <= index < 8:   # the heap block lies far from y (as it does here): the message names the likely cause
        assert "memory from malloc or new is outside every array passed" in str(err.value)


def test_bad_arguments_get_the_kernel_tiers_errors():
    f = load_c(SRC, "matmul")
    a, b = rng_arrays((2, 3), (3, 4))
    c = np.zeros((2, 4), np.float32)
    cases = [((a.astype(np.float64), b, c, 2, 4, 3), TypeError, r"argument 0 \('a': const float\*\) expects an array of float32 but got float64"),
             ((a, b, c, 2, 4), TypeError, r"matmul takes 6 arguments \(a, b, c, m, n, k\) but 5 were given"),
             ((a, b, c, 2.0, 4, 3), TypeError, r"argument 3 \('m': int\) expects a scalar np.int32 but got float"),
             ((a, b, c[:, ::2].copy().T, 2, 4, 3), ValueError, r"argument 2 \('c': float\*\) must be C-contiguous"),
             ((a, b, c, 2, 4, 2**40), ValueError, r"value 1099511627776 does not fit in int32"),
             ((a, b, 1.0, 2, 4, 3), TypeError, r"argument 2 \('c': float\*\) expects an array but got float")]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            f(*args)
    frozen = c.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="is written by the kernel but the array is read-only"):
        f(a, b, frozen, 2, 4, 3)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="pass NumPy arrays"):
        f(torch.from_numpy(a), b, c, 2, 4, 3)
    with pytest.raises(ValueError, match="check must be one of"):
        f(a, b, c, 2, 4, 3, check="race")


def test_source_errors_are_clear():
    with pytest.raises(KernelCompileError, match=r"kernel\.c:1:\d+: error: .y. was not declared"):
        load_c("void f(float* x) { x[0] = y; }", "f")
    with pytest.raises(TypeError, match="f returns 'int': a function called from Python returns void"):
        load_c("int f(float* x) { return 1; }", "f")
    with pytest.raises(ValueError, match=r"no function named 'g' defined in the source \(found: f\)"):
        load_c("void f(float* x) { }", "g")
    with pytest.raises(TypeError, match="CUDA's vector and half types are not C types"):
        load_c("struct float4 { float x, y, z, w; };\nvoid f(float4* x) { }", "f")
    with pytest.raises(ValueError, match="arch must be a -march value"):
        load_c(SRC, "matmul", arch="native; rm -rf /")


def test_defines_and_the_cache():
    src = "void fill(float* y, int n) { for (int i = 0; i < n; ++i) y[i] = VALUE; }"
    y = np.zeros(3, np.float32)
    first = load_c(src, "fill", defines={"VALUE": 7})
    first(y, 3)
    assert y.tolist() == [7, 7, 7]
    again, other = load_c(src, "fill", defines={"VALUE": 7}), load_c(src, "fill", defines={"VALUE": 8})
    assert again.library() == first.library() != other.library()
    if "SSE2" in cpu_features().simd:   # x86: the stated baseline is another build
        assert load_c(src, "fill", defines={"VALUE": 7}, arch="x86-64").library() != first.library()


def test_vector_extensions_give_the_scalar_answer_with_a_tail():
    f = load_c(SIMD, "axpy")
    for n in (1, 8, 13, 100):
        x, y = rng_arrays(n, n, seed=n)
        expected = y + np.float32(0.5) * x
        f(x, y, 0.5, n)
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    x, y = rng_arrays(13, 13)
    f(x, y, 0.5, 13, check="bounds")


def test_cpu_features_match_the_compilers_own_view():
    features = cpu_features()
    cxx, _ = compiler()
    macros = subprocess.run([cxx, "-march=native", "-dM", "-E", "-x", "c++", "/dev/null"], capture_output=True,
                            text=True).stdout
    assert ("AVX2" in features.simd) == ("#define __AVX2__ 1" in macros)
    assert ("NEON" in features.simd) == bool(re.search(r"#define __ARM_NEON\b", macros))
    assert features.vector_bytes in (8, 16, 32, 64) and features.floats_per_vector() == features.vector_bytes // 4
    if "AVX" in features.simd:
        assert features.vector_bytes >= 32
    baseline = cpu_features("x86-64") if "SSE2" in features.simd else None
    if baseline:   # the stated baseline of x86-64: SSE2 only, 16-byte vectors
        assert baseline.simd == ("SSE2",) and baseline.vector_bytes == 16
