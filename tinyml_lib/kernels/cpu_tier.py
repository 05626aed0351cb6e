"""CPU tier: the kernel's CUDA C source compiled with the system C++ compiler against cuda_emu.h, called via ctypes.

Two builds of the same source: "fast" (-O2, plain launches) and "check" (-fsanitize=thread instrumentation linked
against cuda_emu.h's hooks instead of ThreadSanitizer: bounds check, race check, memory-traffic counters).
See cuda_emu.h for the execution model.
"""
import ctypes
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from .cache import build_cached, cache_dir, cache_key, write_if_changed
from .errors import KernelCheckError, KernelCompileError
from .signature import kernel_names

HEADER = Path(__file__).with_name("cuda_emu.h")
# CUDA headers a kernel may include: on the CPU tier the force-included cuda_emu.h already provides their API.
STUB_HEADERS = ("cuda_fp16.h", "cuda_runtime.h", "cuda_runtime_api.h", "cuda.h", "device_launch_parameters.h")
# No tail calls: check-mode return addresses must point into the kernel. Hidden symbols and no STB_GNU_UNIQUE:
# otherwise the dynamic linker makes every loaded kernel library share the first one's template statics.
BASE_FLAGS = ("-std=c++20", "-fPIC", "-Wno-unknown-pragmas", "-Wno-attributes", "-fno-optimize-sibling-calls",
              "-fvisibility=hidden", "-fno-gnu-unique")
MODE_FLAGS = {
    "fast": ("-O2", "-gdwarf-4", "-g1"),
    # -O1 keeps line attribution exact enough; entry/exit hooks are not needed (we only watch memory accesses).
    "check": ("-O1", "-gdwarf-4", "-fno-omit-frame-pointer", "-fsanitize=thread", "--param=tsan-instrument-func-entry-exit=0"),
}
LINK_FLAGS = ("-shared", "-Wl,-Bsymbolic") + (("-Wl,-z,defs",) if sys.platform.startswith("linux") else ())
FLAG_BOUNDS, FLAG_RACE, FLAG_COUNT, FLAG_INSTR = 1, 2, 4, 8
STATUS_OOB, STATUS_RACE, STATUS_DIVERGE, STATUS_CONFIG = 1, 2, 3, 4


class LaunchInfo(ctypes.Structure):
    """Mirror of `struct CuemuInfo` in cuda_emu.h."""
    _fields_ = [(n, ctypes.c_int64) for n in ("status", "bytes_loaded", "bytes_stored", "atomics", "shared_loaded",
                                              "shared_stored", "barriers", "is_store", "arg", "offset", "size")]
    _fields_ += [(n, ctypes.c_uint64) for n in ("pc", "pc2", "sym")]
    _fields_ += [(n, ctypes.c_int64 * 3) for n in ("tid", "bid", "tid2")] + [("is_store2", ctypes.c_int64)]
    _fields_ += [("bid2", ctypes.c_int64 * 3)]


@lru_cache(maxsize=1)
def compiler():
    """The C++ compiler command ($CXX or g++), checked once."""
    cxx = os.environ.get("CXX", "g++")
    if not shutil.which(cxx):
        raise KernelCompileError(f"the CPU tier needs a C++20 compiler: {cxx!r} is not on PATH (set CXX)")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return cxx, version


def run_compiler(cmd, display_name, tier="the CPU tier"):
    """Run a compiler command; KernelCompileError with its first 80 lines of messages if it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "In file included from <command-line>" not in ln]
        shown = "\n".join(lines[:80]) + ("\n..." if len(lines) > 80 else "")
        raise KernelCompileError(f"{display_name} failed to compile for {tier} ({cmd[0]}):\n{shown}")


@lru_cache(maxsize=None)
def runtime_object():
    """Path of cuda_emu.h's runtime compiled once into an object file (cached on disk)."""
    cxx, version = compiler()
    header = HEADER.read_text()
    path = cache_dir() / f"cuemu-runtime-{cache_key(header, version, BASE_FLAGS)}.o"
    build = lambda tmp: run_compiler([cxx, *BASE_FLAGS, "-O2", "-DCUEMU_RUNTIME", "-x", "c++", "-c", str(HEADER),
                                       "-o", str(tmp)], "cuda_emu.h runtime")
    return build_cached(path, build)


@lru_cache(maxsize=None)
def stub_include_dir():
    """A folder of empty stand-ins for the CUDA headers a kernel may #include."""
    folder = cache_dir() / f"include-{cache_key(HEADER.read_text())}"
    folder.mkdir(exist_ok=True)
    for name in STUB_HEADERS:
        write_if_changed(folder / name, "// tinyml_lib.kernels CPU tier: cuda_emu.h (force-included) provides this API\n")
    return folder


_EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?"
                            r"([A-Za-z_][\w\s]*?)\s*(?:__align__\s*\(\s*\d+\s*\)\s*)?\b([A-Za-z_]\w*)\s*\[\s*\]\s*;")


def translation_unit(source, filename, defines, names=None, prelude=""):
    """The C++ text compiled for the CPU tier: prelude, defines, the kernel source (line-numbered as `filename`), an
    entry point per kernel: `names`, or every `__global__` function of the source.

    `extern __shared__ T name[];` (dynamic shared memory) becomes a pointer to the runtime's buffer, on the same
    line so compiler messages keep the kernel's line numbers.
    """
    head = prelude + "".join(f"#define {k} {v}\n" for k, v in defines)
    body = _EXTERN_SHARED.sub(lambda m: f"{m.group(1)}* const {m.group(2)} = "
                              f"reinterpret_cast<{m.group(1)}*>(cuemu_dyn_smem);", source)
    entries = "".join(f'extern "C" __attribute__((visibility("default"))) CUEMU_UNCHECKED void cuemu_entry_{n}(void** a) '
                      f"{{ cuemu_invoke({n}, a); }}\n" for n in dict.fromkeys(names or kernel_names(source)))
    quoted = filename.replace("\\", "/").replace('"', "")
    return f'{head}#line 1 "{quoted}"\n{body}\n#line 1 "<tinyml_lib entry points>"\n{entries}'


def build_library(tu_text, display_name, mode, include_dirs=(), extra_flags=(), libraries=()):
    """Compile a translation unit into a shared library (cached by content, mode and header version).

    Args:
        tu_text: C++ text from translation_unit().
        display_name: file name shown in compiler messages ("reduction.cu").
        mode: "fast" or "check".
        include_dirs: extra -I folders (the .cu file's folder).
        extra_flags: more compiler flags (the C tier's -march).  libraries: -l flags for the link (its -lgomp).
    Returns:
        Path of the .so file.
    """
    cxx, version = compiler()
    rt = runtime_object()
    headers = tuple(h.read_text() for d in include_dirs for h in sorted(Path(d).glob("*.cuh")))  # a changed header rebuilds
    key = cache_key(tu_text, mode, HEADER.read_text(), version, BASE_FLAGS, MODE_FLAGS[mode], LINK_FLAGS,
                    tuple(map(str, include_dirs)), headers, *extra_flags, *libraries)
    path = cache_dir() / f"k-{key}-{mode}.so"
    incs = ["-include", str(HEADER), "-I", str(stub_include_dir())] + [f"-I{d}" for d in include_dirs]

    def build(tmp):
        src = tmp.with_suffix(".cpp")
        src.write_text(tu_text)
        obj = tmp.with_suffix(".o")
        try:
            run_compiler([cxx, *BASE_FLAGS, *MODE_FLAGS[mode], *extra_flags, *incs, "-c", str(src), "-o", str(obj)],
                         display_name)
            run_compiler([cxx, *LINK_FLAGS, str(obj), str(rt), *libraries, "-o", str(tmp)], display_name)
        finally:
            for f in (src, obj):
                f.unlink(missing_ok=True)
    return build_cached(path, build)


@lru_cache(maxsize=None)
def load_library(path):
    """ctypes handle of a kernel library, with cuemu_launch's prototype set."""
    lib = ctypes.CDLL(str(path))
    P = ctypes.POINTER
    lib.cuemu_launch.argtypes = [ctypes.c_void_p, P(ctypes.c_void_p), P(ctypes.c_void_p), P(ctypes.c_int64),
                                 ctypes.c_int, P(ctypes.c_uint), P(ctypes.c_uint), ctypes.c_size_t, ctypes.c_int,
                                 P(LaunchInfo)]
    lib.cuemu_launch.restype = ctypes.c_int
    return lib


def marshal(params, args):
    """ctypes arrays for cuemu_launch: argv (pointers to values), host buffers, sizes; plus objects to keep alive."""
    n = len(args)
    argv, host, nbytes = (ctypes.c_void_p * n)(), (ctypes.c_void_p * n)(), (ctypes.c_int64 * n)()
    keep = []
    for i, (p, a) in enumerate(zip(params, args)):
        if p.pointer:
            value = ctypes.c_void_p(a.ctypes.data)
            nbytes[i] = a.nbytes
            host[i] = None if p.const else a.ctypes.data  # const arrays are never copied back (may be read-only)
        else:
            value = ctypes.create_string_buffer(a.tobytes(), max(a.nbytes, 8))
            nbytes[i] = -1
        keep.append(value)
        argv[i] = ctypes.addressof(value)
    return argv, host, nbytes, keep


def launch(path, name, params, args, grid, block, shared_mem, flags):
    """Run kernel `name` from library `path` over grid x block; raise KernelCheckError on a check-mode finding.

    Args:
        path: .so from build_library.  name: kernel name.  params: list of Param.
        args: checked arguments (NumPy arrays and NumPy scalars).
        grid, block: 3-tuples of ints.  shared_mem: dynamic shared memory in bytes.
        flags: FLAG_* bits.
    Returns:
        LaunchInfo with the counters.
    """
    lib = load_library(path)
    entry = ctypes.cast(getattr(lib, f"cuemu_entry_{name}"), ctypes.c_void_p)
    argv, host, nbytes, _keep = marshal(params, args)
    info = LaunchInfo()
    status = lib.cuemu_launch(entry, argv, host, nbytes, len(args), (ctypes.c_uint * 3)(*grid),
                              (ctypes.c_uint * 3)(*block), shared_mem, flags, ctypes.byref(info))
    if status == STATUS_CONFIG:
        raise ValueError(f"{name}: launch configuration not supported by the CPU tier (block {block}: at most 1024 "
                         f"threads; shared_mem {shared_mem}: at most 262144 bytes)")
    if status:
        from .diagnose import describe_failure
        raise KernelCheckError(describe_failure(path, name, params, args, info, block))
    return info
