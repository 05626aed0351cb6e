"""GPU tier: the same CUDA C source compiled by NVRTC through cupy.RawModule, timed with CUDA events."""
import os
import re
import site
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import KernelCompileError

_FALLBACK_NOTED = []


def _note_fallback(reason):
    if not _FALLBACK_NOTED:  # one line per process, not one per launch
        print(f"tinyml_lib.kernels: {reason}: using the CPU tier")
        _FALLBACK_NOTED.append(reason)


@lru_cache(maxsize=1)
def gpu_available():
    """True when CuPy imports and a CUDA device answers; never raises.

    Returns:
        bool. On False, prints one line (once per process) saying why the CPU tier is used.
    """
    try:
        import cupy
    except Exception:  # ImportError, or a CuPy wheel that does not match the CUDA driver
        _note_fallback("CuPy is not installed (pip install -r requirements-gpu.txt for the GPU tier)")
        return False
    try:
        ok = bool(cupy.is_available())
    except Exception:
        ok = False
    if not ok:
        _note_fallback("no CUDA device (cupy.is_available() is False)")
    return ok


def is_cupy_array(a):
    """True for a cupy.ndarray, tested without importing CuPy."""
    return type(a).__module__.split(".")[0] == "cupy" and hasattr(a, "data") and hasattr(a, "dtype")


@lru_cache(maxsize=1)
def cuda_include_dirs():
    """The folder holding cuda_fp16.h for NVRTC, as a 0- or 1-tuple.

    Order: $CUDA_PATH/$CUDA_HOME (an explicit choice), then the `nvidia` pip packages that cuda-toolkit[nvrtc]
    installs next to CuPy (site-packages/nvidia/<component>/include: same CUDA version as NVRTC), then
    /usr/local/cuda. Only the first is used: headers of another CUDA version can break NVRTC.
    """
    candidates = [Path(os.environ[v]) / "include" for v in ("CUDA_PATH", "CUDA_HOME") if os.environ.get(v)]
    roots = [Path(p) / "nvidia" for p in [*sys.path, *site.getsitepackages(), site.getusersitepackages()] if p]
    for root in dict.fromkeys(roots):
        if root.is_dir():
            candidates += [h.parent for pat in ("*/include/cuda_fp16.h", "*/*/include/cuda_fp16.h")
                           for h in sorted(root.glob(pat))]
    candidates.append(Path("/usr/local/cuda/include"))
    found = [str(d) for d in candidates if (d / "cuda_fp16.h").is_file()]
    return tuple(found[:1])


def _is_extern_c(source, name):
    return re.search(r'extern\s+"C"[^;{]*__global__[^;{]*\b' + re.escape(name) + r"\s*\(", source) is not None


def compile_gpu(source, name, defines, filename, include_dirs=()):
    """Compile kernel `name` with NVRTC and return the cupy.RawKernel.

    Args:
        source: CUDA C source text.  name: kernel name.  defines: tuple of (NAME, value).
        filename: shown in compiler messages.  include_dirs: extra -I folders.
    Returns:
        cupy.RawKernel (compiled now, so errors surface at load time).
    """
    import cupy
    head = "".join(f"#define {k} {v}\n" for k, v in defines)
    code = f'{head}#line 1 "{filename}"\n{source}'
    options = ("--std=c++17", *(f"-I{d}" for d in (*cuda_include_dirs(), *include_dirs)))
    # C++ kernels have mangled names: NVRTC looks them up from a name expression.
    exprs = None if _is_extern_c(source, name) else [name]
    try:
        module = cupy.RawModule(code=code, options=options, name_expressions=exprs)
        kernel = module.get_function(name)
        kernel.attributes  # forces the compile and the module load
    except cupy.cuda.compiler.CompileException as e:
        raise KernelCompileError(f"{filename} failed to compile for the GPU tier (NVRTC):\n{e}") from None
    return kernel


def launch_gpu(kernel, grid, block, args, shared_mem):
    """Launch a compiled RawKernel (asynchronously, on the current stream)."""
    if shared_mem > 48 * 1024:  # above 48 KiB, dynamic shared memory must be opted into per kernel
        kernel.max_dynamic_shared_size_bytes = shared_mem
    kernel(grid, block, args, shared_mem=shared_mem)


def time_gpu_call(fn, *args, n_repeat=20, n_warmup=3):
    """Median seconds per call of fn(*args) on the GPU, measured with CUDA events (cupyx.profiler.benchmark)."""
    from cupyx.profiler import benchmark
    return float(np.median(benchmark(fn, args, n_repeat=n_repeat, n_warmup=n_warmup).gpu_times[0]))


def time_gpu(kernel, grid, block, args, shared_mem=0, n_repeat=20, n_warmup=3):
    """Median seconds per launch of a compiled kernel, measured with CUDA events."""
    return time_gpu_call(launch_gpu, kernel, grid, block, args, shared_mem, n_repeat=n_repeat, n_warmup=n_warmup)
