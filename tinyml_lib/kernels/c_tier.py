"""C tier: a C/C++ function from a notebook cell, compiled at -O3 for the CPU it runs on and called with NumPy arrays.

Unlike the CPU tier of the CUDA kernels (an emulator: right answers, meaningless timings), speed here is real: the
function runs as native code, on as many OpenMP threads as asked. It shares the kernel tiers' machinery: the same
signature parser and argument checks (signature.py: the same errors for a wrong dtype, a non-contiguous or read-only
array, a mistyped scalar), the same compiler and on-disk cache (cpu_tier, cache.py), and, with check="bounds", the
CPU tier's checked build (cuda_emu.h's access hooks): the function runs once, on one thread, and any read or write
outside the arrays passed, its own locals and the library's statics stops it with the file and line.

    from tinyml_lib.kernels import load_c
    matmul = load_c(SRC, "matmul_naive")            # SRC: C++ text; the function returns void
    matmul(a, b, c, m, n, k)                         # float32 arrays, ints
    matmul(a, b, c, m, n, k, check="bounds")         # one checked run
    matmul(a, b, c, m, n, k, threads=2)              # OpenMP's thread count for this call and later ones

The source is compiled as C++20 (C code compiles as C++ but for a few things: cast malloc's result; `restrict` is
accepted). Portable SIMD: GCC/Clang vector extensions (`typedef float f8 __attribute__((vector_size(32)))`);
`cpu_features()` says which instruction sets the compiler targets here.
"""
import ctypes
import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import cpu_tier
from .cache import build_cached, cache_dir, cache_key
from .errors import KernelCheckError
from .signature import VECTOR_TYPES, check_args, parse_function

# Idle OpenMP threads sleep instead of spinning (libgomp reads this when it is loaded, with the first C function):
# a thread's CPU time is then the share of the work it did (Lab 06 checks a loop's split with it), and a thread
# waiting at a barrier does not take the core of a measurement running beside it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
FAST_FLAGS = ("-std=c++20", "-O3", "-fPIC", "-fvisibility=hidden", "-fno-gnu-unique", "-Wno-unknown-pragmas")
CHECKS = (None, "bounds")
_PRELUDE = "#include <cstddef>\n#include <cstdint>\n#define restrict __restrict\n"
# (macro the compiler predefines, name shown) for the SIMD instruction sets worth naming, widest last per family
_SIMD_MACROS = (("__SSE2__", "SSE2"), ("__SSE4_2__", "SSE4.2"), ("__AVX__", "AVX"), ("__AVX2__", "AVX2"),
                ("__FMA__", "FMA"), ("__AVX512F__", "AVX-512F"), ("__ARM_NEON", "NEON"), ("__ARM_FEATURE_SVE", "SVE"))


@dataclass(frozen=True)
class CpuFeatures:
    """What the compiler targets with -march=`arch` on this machine.

    arch: the -march value.  target: the CPU the compiler resolved it to (e.g. "znver3").  simd: instruction sets
    enabled, e.g. ("SSE2", "SSE4.2", "AVX", "AVX2", "FMA").  vector_bytes: the widest SIMD register the code may
    use: 64 (AVX-512), 32 (AVX/AVX2), 16 (SSE2, NEON) or 8 (none).
    """
    arch: str
    target: str
    simd: tuple
    vector_bytes: int

    def floats_per_vector(self) -> int:
        """float32 lanes in one vector register (vector_bytes / 4)."""
        return self.vector_bytes // 4


def _check_arch(arch):
    if not isinstance(arch, str) or not re.fullmatch(r"[A-Za-z0-9][\w.+-]*", arch):
        raise ValueError(f"arch must be a -march value such as 'native' or 'x86-64-v2', got {arch!r}")
    return arch


@lru_cache(maxsize=None)
def cpu_features(arch: str = "native") -> CpuFeatures:
    """The SIMD instruction sets the compiler enables with -march=`arch` (its predefined macros, not /proc/cpuinfo:
    what the compiled code may use)."""
    cxx, _ = cpu_tier.compiler()
    macros = subprocess.run([cxx, f"-march={_check_arch(arch)}", "-dM", "-E", "-x", "c++", "/dev/null"],
                            capture_output=True, text=True, check=True).stdout
    defined = set(re.findall(r"#define (\w+)", macros))
    simd = tuple(name for macro, name in _SIMD_MACROS if macro in defined)
    vector_bytes = 64 if "AVX-512F" in simd else 32 if "AVX" in simd else 16 if {"SSE2", "NEON"} & set(simd) else 8
    resolved = subprocess.run([cxx, f"-march={arch}", "-Q", "--help=target"], capture_output=True, text=True).stdout
    target = re.search(r"^\s+-march=\s+(\S+)", resolved, re.M)
    return CpuFeatures(arch, target.group(1) if target else arch, simd, vector_bytes)


def _entry(name, params):
    """extern "C" wrapper `tinyml_c_<name>(void** a)` calling the function with a[i] read as parameter i's type."""
    def ctype(p):
        return f"{'const ' if p.const else ''}{p.ctype}*" if p.pointer else p.ctype
    call = ", ".join(f"*static_cast<{ctype(p)}*>(a[{p.index}])" for p in params)
    return (f'extern "C" __attribute__((visibility("default"))) void tinyml_c_{name}(void** a) '
            f"{{ {name}({call}); }}\n")


class CFunction:
    """A C/C++ function compiled for this CPU; call it with NumPy arrays and scalars (see the module docstring).

    Attributes:
        name, params (signature.Param list), filename, source, defines ((NAME, value) pairs), arch, openmp.
    """

    def __init__(self, source, name, defines, filename, include_dirs, arch, openmp):
        self.source, self.name, self.defines, self.filename = source, name, defines, filename
        self.include_dirs, self.arch, self.openmp = include_dirs, _check_arch(arch), openmp
        self.params = parse_function(source, name)
        for p in self.params:
            if p.ctype in VECTOR_TYPES or p.ctype in ("half", "__half"):
                raise TypeError(f"{name}: {p.describe()}: CUDA's vector and half types are not C types; pass "
                                f"a float* (or uint16_t*) instead")
        head = _PRELUDE + "".join(f"#define {k} {v}\n" for k, v in defines)
        quoted = filename.replace("\\", "/").replace('"', "")
        threads = ('#ifdef _OPENMP\n#include <omp.h>\nextern "C" __attribute__((visibility("default"))) void '
                   "tinyml_c_set_threads(int n) { omp_set_num_threads(n); }\n#endif\n")
        self._fast_tu = (f'{head}#line 1 "{quoted}"\n{source}\n#line 1 "<tinyml_lib entry points>"\n'
                         f"{_entry(name, self.params)}{threads}")
        self._check_tu = cpu_tier.translation_unit(source, filename, defines, names=(name,), prelude=_PRELUDE)
        self._built = {}   # mode -> library path, once per object: a timed call hashes no source

    def __repr__(self):
        return f"CFunction({self.name!r} from {self.filename}, arch={self.arch!r}, openmp={self.openmp})"

    def library(self, mode="fast"):
        """Path of the compiled library: "fast" (-O3, -march, OpenMP) or "check" (the CPU tier's checked build)."""
        if mode not in self._built:
            self._built[mode] = self._build(mode)
        return self._built[mode]

    def _build(self, mode):
        if mode == "check":
            # Without -fopenmp the pragmas are ignored (one thread, as the checks need); omp_* calls link to libgomp.
            return cpu_tier.build_library(self._check_tu, self.filename, "check", self.include_dirs,
                                          extra_flags=(f"-march={self.arch}",), libraries=("-lgomp",))
        cxx, version = cpu_tier.compiler()
        flags = (*FAST_FLAGS, f"-march={self.arch}") + (("-fopenmp",) if self.openmp else ())
        key = cache_key(self._fast_tu, version, flags, cpu_tier.LINK_FLAGS, self.include_dirs,
                        cpu_features(self.arch).target)
        path = cache_dir() / f"c-{key}.so"

        def build(tmp):
            src = tmp.with_suffix(".cpp")
            src.write_text(self._fast_tu)
            try:
                cpu_tier.run_compiler([cxx, *flags, *(f"-I{d}" for d in self.include_dirs), str(src),
                                       *cpu_tier.LINK_FLAGS, "-lgomp", "-o", str(tmp)], self.filename, "the C tier")
            finally:
                src.unlink(missing_ok=True)
        return build_cached(path, build)

    def __call__(self, *args, check=None, threads=None):
        """Run the function once on `args` (NumPy arrays and scalars, checked against its parameters).

        Args:
            check: None, or "bounds": one run of the checked build, on one thread (OpenMP pragmas ignored): an access
                outside the arrays passed raises KernelCheckError with the file and line.
            threads: OpenMP threads for this call and later ones (None: leave as it is: OMP_NUM_THREADS, else every
                core); only for a function compiled with openmp=True.
        """
        if check not in CHECKS:
            raise ValueError(f"{self.name}: check must be one of {CHECKS}, got {check!r}")
        for a in args:
            if type(a).__module__.split(".")[0] in ("torch", "cupy"):
                raise TypeError(f"{self.name}: pass NumPy arrays (a {type(a).__module__.split('.')[0]} array came): "
                                f"the C tier runs on the CPU")
        args = check_args(self.params, args, self.name, lambda a: isinstance(a, np.ndarray))
        if threads is not None:
            if not self.openmp:
                raise ValueError(f"{self.name}: threads={threads!r} needs load_c(..., openmp=True)")
            if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
                raise ValueError(f"{self.name}: threads must be a positive int, got {threads!r}")
        if check == "bounds":
            try:
                cpu_tier.launch(self.library("check"), self.name, self.params, args, (1, 1, 1), (1, 1, 1), 0,
                                cpu_tier.FLAG_BOUNDS | cpu_tier.FLAG_INSTR)
            except KernelCheckError as e:   # one thread: no thread or block to name
                raise KernelCheckError(_c_message(str(e))) from None
            return
        lib = _load(self.library("fast"), self.name)
        if threads is not None:
            lib.tinyml_c_set_threads(int(threads))
        argv, _, _, _keep = cpu_tier.marshal(self.params, args)
        getattr(lib, f"tinyml_c_{self.name}")(argv)


def _c_message(message):
    """A checked run's finding in C terms: no thread or block (one thread ran), and, for an access far outside the
    nearest array, the likely cause."""
    message = re.sub(r",? thread \(0,0,0\) of block \(0,0,0\)", "", message)
    found = re.search(r"\(index (-?\d+), size (\d+)\)", message)
    if found and not -int(found[2]) <= int(found[1]) < 2 * int(found[2]):
        message += (" (far outside it: memory from malloc or new is outside every array passed, which is all a "
                    "checked run knows; use arrays on the stack or pass a buffer)")
    return message


@lru_cache(maxsize=None)
def _load(path, name):
    lib = ctypes.CDLL(str(path))
    getattr(lib, f"tinyml_c_{name}").argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    return lib


def load_c(src, name, defines=None, arch="native", openmp=True) -> CFunction:
    """Load C/C++ function `name` (returning void) from a file or from source text, compiled now.

    Args:
        src: str/Path of a .c/.cpp file, or C/C++ source text (e.g. a notebook cell's SRC).
        name: the function's name.
        defines: dict NAME -> value, emitted as `#define NAME value` before the source.
        arch: -march value: "native" (this CPU's instruction sets) or a stated baseline ("x86-64-v2", "armv8-a").
        openmp: compile with -fopenmp (`#pragma omp parallel for` runs on threads); False ignores the pragmas (the
            omp_* functions still link: libgomp's).
    Returns:
        CFunction. Compile errors raise KernelCompileError with the source's line numbers.
    """
    from .launcher import checked_defines, read_source
    source, filename, include_dirs = read_source(src, r"\.(c|cc|cpp|cxx|h|hpp)", "kernel.c", "a .c/.cpp file or C/C++")
    function = CFunction(source, name, checked_defines(defines), filename, include_dirs, arch, bool(openmp))
    function.library("fast")
    return function
