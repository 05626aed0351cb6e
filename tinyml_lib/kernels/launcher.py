"""One launcher for both tiers: `load_kernel(src, name)` returns a Kernel; calling it launches on the tier that
matches the arrays passed (NumPy -> CPU emulation, CuPy -> GPU)."""
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cpu_tier, gpu_tier
from .signature import check_args, parse_signature

CHECKS = (None, "bounds", "race")


@dataclass(frozen=True)
class LaunchStats:
    """What one launch did. Traffic fields are None unless counters=True (CPU tier only).

    bytes_loaded / bytes_stored: global-memory bytes read / written by plain loads and stores.
    atomics: global-memory atomic operations.  shared_loaded / shared_stored: shared-memory bytes.
    barriers: __syncthreads() intervals completed, summed over blocks.  seconds: wall time (CPU tier; None on GPU,
    where launches are asynchronous: use Kernel.time_gpu).
    """
    tier: str
    grid: tuple
    block: tuple
    shared_mem: int
    seconds: float | None = None
    bytes_loaded: int | None = None
    bytes_stored: int | None = None
    atomics: int | None = None
    shared_loaded: int | None = None
    shared_stored: int | None = None
    barriers: int | None = None


def ceil_div(a, b):
    """Smallest integer >= a / b for positive ints (the grid size that covers `a` items with `b` per block)."""
    return -(-a // b)


def kernels_dir():
    """The course's kernel folder: <repo>/kernels (the library is installed editable), or $TINYML_KERNELS_DIR."""
    return Path(os.environ.get("TINYML_KERNELS_DIR") or Path(__file__).resolve().parents[2] / "kernels")


def kernel_file(filename):
    """Path of a course kernel file, e.g. kernel_file("reduction.cu") -> <repo>/kernels/reduction.cu.

    The .cu files live in the repository's kernels/ folder (the library is installed editable); set
    $TINYML_KERNELS_DIR to use another folder.
    """
    path = kernels_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: install tinyml_lib editable from the repository "
                                f"(pip install -e .) or set TINYML_KERNELS_DIR")
    return path


def host_arrays(*arrays):
    """The arrays as NumPy arrays (CuPy arrays are copied from the GPU): what a `_ref` computes on."""
    return tuple(a.get() if gpu_tier.is_cupy_array(a) else np.asarray(a) for a in arrays)


def check_version(version, versions):
    """Raise ValueError unless `version` is one of a kernel family's `versions`."""
    if version not in versions:
        raise ValueError(f"version must be one of {tuple(versions)}, got {version!r}")


def array_module(x):
    """cupy for a CuPy array, numpy otherwise: lets a launcher allocate its output on the input's device."""
    if gpu_tier.is_cupy_array(x):
        import cupy
        return cupy
    return np


def _dim3(value, what):
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in dims):
        raise ValueError(f"{what} must be a positive int or a tuple of 1-3 positive ints, got {value!r}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))


def _pick_tier(params, args, name):
    """'gpu' if the arrays are CuPy, 'cpu' if NumPy; TypeError naming the argument that does not match."""
    tiers = {}
    for i, a in enumerate(args):
        if gpu_tier.is_cupy_array(a):
            tiers.setdefault("gpu", i)
        elif isinstance(a, np.ndarray):
            tiers.setdefault("cpu", i)
        elif type(a).__module__.split(".")[0] == "torch":
            raise TypeError(f"{name}: argument {i} is a torch tensor: pass .numpy() (CPU tier) or a CuPy array")
    if len(tiers) == 2:
        label = lambda i: f"argument {i} ('{params[i].name}')" if i < len(params) else f"argument {i}"
        raise TypeError(f"{name}: {label(tiers['cpu'])} is a numpy.ndarray but {label(tiers['gpu'])} is a "
                        f"cupy.ndarray: pass all arrays from one library (NumPy: CPU tier, CuPy: GPU tier)")
    return "gpu" if "gpu" in tiers else "cpu"


class Kernel:
    """A CUDA C kernel runnable on the CPU tier (NumPy arrays) and the GPU tier (CuPy arrays).

    Attributes:
        name: kernel name.  params: list of signature.Param.  filename: name used in messages.
        source: CUDA C text.  defines: tuple of (NAME, value) prepended as #define lines.
    """

    def __init__(self, source, name, defines, filename, include_dirs):
        self.source, self.name, self.defines, self.filename = source, name, defines, filename
        self.include_dirs = include_dirs
        self.params = parse_signature(source, name)
        self._gpu_kernel = None
        self._tu = cpu_tier.translation_unit(source, filename, defines)

    def library(self, mode):
        """Path of the compiled CPU-tier library ('fast' or 'check' build), compiling on first use."""
        return cpu_tier.build_library(self._tu, self.filename, mode, self.include_dirs)

    def gpu_kernel(self):
        """The NVRTC-compiled cupy.RawKernel, compiling on first use."""
        if self._gpu_kernel is None:
            self._gpu_kernel = gpu_tier.compile_gpu(self.source, self.name, self.defines, self.filename,
                                                    self.include_dirs)
        return self._gpu_kernel

    def __repr__(self):
        return f"Kernel({self.name!r} from {self.filename}, defines={dict(self.defines)})"

    def __call__(self, grid, block, args, shared_mem=0, check=None, counters=False):
        """Launch over `grid` blocks of `block` threads.

        Args:
            grid, block: int or tuple of 1-3 ints.
            args: tuple matching the kernel's parameters: arrays (NumPy for the CPU tier, CuPy for the GPU tier,
                dtype and contiguity checked) and scalars (NumPy scalars of the parameter's type, or Python numbers).
            shared_mem: bytes of dynamic (extern __shared__) shared memory per block.
            check: None, "bounds" (out-of-bounds accesses) or "race" (shared-memory races, also between lanes of
                one warp; reads of shared memory not yet written in the block; reads of global memory that another
                unordered thread wrote in this launch); CPU tier only.
            counters: count global/shared memory traffic (CPU tier only).
        Returns:
            LaunchStats.
        """
        grid, block = _dim3(grid, "grid"), _dim3(block, "block")
        if check not in CHECKS:
            raise ValueError(f"{self.name}: check must be one of {CHECKS}, got {check!r}")
        if not isinstance(shared_mem, (int, np.integer)) or shared_mem < 0:
            raise ValueError(f"{self.name}: shared_mem must be a non-negative int (bytes), got {shared_mem!r}")
        tier = _pick_tier(self.params, args, self.name)
        if tier == "gpu":
            return self._launch_gpu(grid, block, args, int(shared_mem), check, counters)
        args = check_args(self.params, args, self.name, lambda a: isinstance(a, np.ndarray))
        return self._launch_cpu(grid, block, args, int(shared_mem), check, counters)

    def _launch_cpu(self, grid, block, args, shared_mem, check, counters):
        flags = {None: 0, "bounds": cpu_tier.FLAG_BOUNDS, "race": cpu_tier.FLAG_RACE}[check]
        flags |= cpu_tier.FLAG_COUNT if counters else 0
        mode = "check" if flags else "fast"
        flags |= cpu_tier.FLAG_INSTR if flags else 0
        start = time.perf_counter()
        info = cpu_tier.launch(self.library(mode), self.name, self.params, args, grid, block, shared_mem, flags)
        seconds = time.perf_counter() - start
        traffic = {}
        if counters:
            traffic = {f: getattr(info, f) for f in ("bytes_loaded", "bytes_stored", "atomics", "shared_loaded",
                                                      "shared_stored", "barriers")}
        return LaunchStats("cpu", grid, block, shared_mem, seconds, **traffic)

    def _launch_gpu(self, grid, block, args, shared_mem, check, counters):
        if check is not None or counters:
            raise ValueError(f"{self.name}: check={check!r} / counters={counters!r} are CPU-tier features: "
                             f"pass NumPy arrays to run the kernel on the CPU emulator")
        args = check_args(self.params, args, self.name, gpu_tier.is_cupy_array)
        gpu_tier.launch_gpu(self.gpu_kernel(), grid, block, args, shared_mem)
        return LaunchStats("gpu", grid, block, shared_mem)

    def time_gpu(self, grid, block, args, shared_mem=0, n_repeat=20, n_warmup=3):
        """Median seconds per launch on the GPU, timed with CUDA events (args must be CuPy arrays / scalars)."""
        args = check_args(self.params, args, self.name, gpu_tier.is_cupy_array)
        return gpu_tier.time_gpu(self.gpu_kernel(), _dim3(grid, "grid"), _dim3(block, "block"), args,
                                 int(shared_mem), n_repeat, n_warmup)


WITHHELD = "// Withheld:"  # first line of a kernel file withheld from a student (autograders/answers.py writes it)


def read_source(src, suffix=r"\.cuh?", default_name="kernel.cu", what="a .cu file or CUDA C"):
    """(source text, file name for messages, include dirs) from a path whose name matches `suffix`, or source text
    (named `default_name`; the course's kernels/ folder on its include path). The C tier reads its C/C++ with it."""
    if isinstance(src, Path) or (isinstance(src, str) and "\n" not in src and re.search(rf"{suffix}$", src.strip())):
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"source file not found: {path}")
        text = path.read_text()
        if text.startswith(WITHHELD):  # a student workspace or bundle: the file answers an exercise not revealed
            raise FileNotFoundError(f"{path.name}: {text[len(WITHHELD):].strip()}")
        return text, path.name, (str(path.resolve().parent),)
    if not isinstance(src, str):
        raise TypeError(f"src must be a path to {what} source text, got {type(src).__name__}")
    return src, default_name, (str(kernels_dir()),)   # a notebook's source may #include the course's headers


def checked_defines(defines):
    """dict NAME -> value as sorted (NAME, value) pairs for `#define` lines; ValueError for a name that is not a C
    identifier (bools become 0 / 1)."""
    items = tuple(sorted((defines or {}).items()))
    for key, value in items:
        if not re.fullmatch(r"[A-Za-z_]\w*", str(key)):
            raise ValueError(f"define name {key!r} is not a C identifier")
    return tuple((k, int(v) if isinstance(v, (bool, np.bool_)) else v) for k, v in items)


def load_kernel(src, name, defines=None):
    """Load kernel `name` from a .cu file or CUDA C source text.

    Args:
        src: str/Path of a .cu file, or CUDA C source text (e.g. from a notebook cell).
        name: the __global__ function's name.
        defines: dict NAME -> value, emitted as `#define NAME value` before the source.
    Returns:
        Kernel. It is compiled now for the tier this machine will use (compile errors raise KernelCompileError).
    """
    source, filename, include_dirs = read_source(src)
    kernel = Kernel(source, name, checked_defines(defines), filename, include_dirs)
    if gpu_tier.gpu_available():
        kernel.gpu_kernel()
    else:
        kernel.library("fast")
    return kernel
