"""CUDA C kernels in three tiers: NumPy references (`*_ref`), the same CUDA C source run on the CPU by an emulator
(NumPy arrays; bounds check, race check and memory-traffic counters), and CuPy/NVRTC on a GPU (CuPy arrays).

    from tinyml_lib.kernels import load_kernel
    k = load_kernel("kernels/reduction.cu", "reduce_v2", defines={"BLOCK": 256})
    stats = k(grid, block, (x, out, np.int32(n)), check="bounds", counters=True)

Beside them, the C tier (c_tier.py): a C/C++ function compiled at -O3 for this CPU, OpenMP threads, real speed.

    from tinyml_lib.kernels import load_c
    f = load_c(SRC, "matmul_naive")
    f(a, b, c, m, n, k)                     # float32 arrays, ints; check="bounds", threads=2
"""
from .c_tier import CFunction, CpuFeatures, cpu_features, load_c
from .errors import KernelCheckError, KernelCompileError
from .gpu_tier import gpu_available
from .launcher import Kernel, LaunchStats, ceil_div, load_kernel


def benchmark_gpu(kernel, grid, block, args, shared_mem=0, n_repeat=20, n_warmup=3):
    """Median seconds per launch of `kernel` on the GPU (CUDA events); same as kernel.time_gpu(...)."""
    return kernel.time_gpu(grid, block, args, shared_mem, n_repeat, n_warmup)


__all__ = ["load_kernel", "gpu_available", "benchmark_gpu", "ceil_div", "Kernel", "LaunchStats",
           "KernelCheckError", "KernelCompileError", "load_c", "CFunction", "cpu_features", "CpuFeatures"]
