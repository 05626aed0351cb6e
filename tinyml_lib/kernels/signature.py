"""Parse `__global__` kernel signatures from CUDA C source and check launch arguments against them.

Both tiers use this, so a wrong dtype or a Python int where the kernel wants `int` fails with the same message
whether the arrays are NumPy or CuPy (on a GPU a mistyped scalar silently reads garbage).
"""
import re
from dataclasses import dataclass

import numpy as np

# C scalar type -> NumPy dtype. `char` is signed on the platforms the course uses (x86-64 and NVIDIA GPUs).
SCALAR_TYPES = {
    "float": np.float32, "double": np.float64, "__half": np.float16, "half": np.float16,
    "int": np.int32, "signed int": np.int32, "signed": np.int32, "int32_t": np.int32,
    "unsigned int": np.uint32, "unsigned": np.uint32, "uint32_t": np.uint32,
    "short": np.int16, "int16_t": np.int16, "unsigned short": np.uint16, "uint16_t": np.uint16,
    "char": np.int8, "signed char": np.int8, "int8_t": np.int8,
    "unsigned char": np.uint8, "uint8_t": np.uint8,
    "long long": np.int64, "long long int": np.int64, "long": np.int64, "int64_t": np.int64,
    "unsigned long long": np.uint64, "unsigned long": np.uint64, "uint64_t": np.uint64, "size_t": np.uint64,
    "bool": np.bool_,
}
# Vector type -> (element dtype, lanes): a float4* views a float32 array whose size is a multiple of 4.
VECTOR_TYPES = {
    "float2": (np.float32, 2), "float4": (np.float32, 4), "double2": (np.float64, 2),
    "int2": (np.int32, 2), "int4": (np.int32, 4), "uint2": (np.uint32, 2), "uint4": (np.uint32, 4),
    "short2": (np.int16, 2), "short4": (np.int16, 4), "char2": (np.int8, 2), "char4": (np.int8, 4),
    "uchar2": (np.uint8, 2), "uchar4": (np.uint8, 4), "__half2": (np.float16, 2), "half2": (np.float16, 2),
}
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict", "__grid_constant__"}
_KERNEL_RE = re.compile(r"__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+"
                        r"(?:__launch_bounds__\s*\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\(([^)]*)\)")


@dataclass(frozen=True)
class Param:
    """One kernel parameter: `const float* __restrict__ x` -> Param("x", "float", True, True, 0)."""
    name: str
    ctype: str          # base C type without qualifiers or '*'
    pointer: bool
    const: bool         # pointee is const (the kernel cannot write through it)
    index: int

    @property
    def dtype(self):
        """np.dtype of one element of the array (pointers) or of the value (scalars); None for void*."""
        if self.ctype == "void":
            return None
        base = VECTOR_TYPES[self.ctype][0] if self.ctype in VECTOR_TYPES else SCALAR_TYPES[self.ctype]
        return np.dtype(base)

    @property
    def lanes(self):
        """Elements of `dtype` per C element (4 for float4, 1 for float)."""
        return VECTOR_TYPES[self.ctype][1] if self.ctype in VECTOR_TYPES else 1

    def describe(self):
        """'argument 1 (out: float*)' -- how error messages name a parameter."""
        star = "*" if self.pointer else ""
        return f"argument {self.index} ('{self.name}': {'const ' if self.const else ''}{self.ctype}{star})"


def strip_comments(src):
    """Remove // and /* */ comments, keeping newlines so line numbers stay valid."""
    src = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), src, flags=re.S)
    return re.sub(r"//[^\n]*", "", src)


def _parse_param(text, index, kernel):
    tokens = re.findall(r"[A-Za-z_]\w*|\*|&", text)
    if len(tokens) < 2 or "&" in tokens:
        raise ValueError(f"kernel {kernel}: cannot parse parameter {index} {text.strip()!r}")
    const = "const" in tokens[:tokens.index("*")] if "*" in tokens else "const" in tokens
    stars = tokens.count("*")
    words = [t for t in tokens[:-1] if t not in _QUALIFIERS and t != "*"]
    ctype = " ".join(words)
    if stars > 1:
        raise TypeError(f"kernel {kernel}: parameter {tokens[-1]!r} is a pointer to pointer, which is not supported")
    known = ctype in SCALAR_TYPES or ctype in VECTOR_TYPES or (ctype == "void" and stars == 1)
    if not known:
        raise TypeError(f"kernel {kernel}: parameter {tokens[-1]!r} has unsupported type {ctype!r}")
    return Param(tokens[-1], ctype, stars == 1, const, index)


def kernel_names(src):
    """Names of the `__global__` kernels in `src`, in order of appearance."""
    return [m.group(1) for m in _KERNEL_RE.finditer(strip_comments(src))]


def parse_signature(src, name):
    """Parameters of kernel `name` in CUDA C source `src`.

    Args:
        src: CUDA C source text.
        name: the kernel's name.
    Returns:
        list of Param, in declaration order.
    """
    for m in _KERNEL_RE.finditer(strip_comments(src)):
        if m.group(1) == name:
            body = m.group(2).strip()
            if body in ("", "void"):
                return []
            return [_parse_param(p, i, name) for i, p in enumerate(body.split(","))]
    raise ValueError(f"no __global__ kernel named {name!r} in the source (found: {kernel_names(src) or 'none'})")


def parse_function(src, name):
    """Parameters of the plain C/C++ function `name` (returning void) in `src`: the C tier's signatures.

    Args:
        src: C/C++ source text.  name: the function's name.
    Returns:
        list of Param, in declaration order.
    """
    text = strip_comments(src)
    found = re.search(rf"(?<![\w.>:])([A-Za-z_][\w\s\*]*?)\s*\b{re.escape(name)}\s*\(([^)]*)\)\s*\{{", text)
    if not found:
        defined = re.findall(r"\bvoid\s+([A-Za-z_]\w*)\s*\([^)]*\)\s*\{", text)
        raise ValueError(f"no function named {name!r} defined in the source (found: {', '.join(defined) or 'none'})")
    returns = found.group(1).split()
    if returns[-1] != "void" or "*" in found.group(1):
        raise TypeError(f"{name} returns {found.group(1).strip()!r}: a function called from Python returns void and "
                        f"writes its results into an output array")
    body = found.group(2).strip()
    return [] if body in ("", "void") else [_parse_param(p, i, name) for i, p in enumerate(body.split(","))]


def data_ptr(a):
    """Address of the first element of a NumPy or CuPy array."""
    return a.data.ptr if hasattr(a.data, "ptr") else a.ctypes.data


def _check_array(p, a, kernel):
    if p.dtype is not None and a.dtype != p.dtype:
        raise TypeError(f"{kernel}: {p.describe()} expects an array of {p.dtype} but got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{kernel}: {p.describe()} must be C-contiguous (pass np.ascontiguousarray(...))")
    if not p.const and not a.flags.writeable:
        raise ValueError(f"{kernel}: {p.describe()} is written by the kernel but the array is read-only")
    if p.lanes > 1 and (a.size % p.lanes or data_ptr(a) % (a.itemsize * p.lanes)):
        raise ValueError(f"{kernel}: {p.describe()} needs a size that is a multiple of {p.lanes} "
                         f"and {a.itemsize * p.lanes}-byte alignment")


def _convert_scalar(p, v, kernel):
    dtype = p.dtype
    if isinstance(v, np.generic):
        if v.dtype != dtype:
            raise TypeError(f"{kernel}: {p.describe()} expects np.{dtype.name} but got np.{v.dtype.name}")
        return v
    kinds = {"f": (int, float), "i": (int,), "u": (int,), "b": (bool,)}
    if isinstance(v, bool) and dtype.kind != "b" or not isinstance(v, kinds[dtype.kind]):
        raise TypeError(f"{kernel}: {p.describe()} expects a scalar np.{dtype.name} but got {type(v).__name__}")
    if dtype.kind in "iu" and not np.iinfo(dtype).min <= v <= np.iinfo(dtype).max:
        raise ValueError(f"{kernel}: {p.describe()} value {v} does not fit in {dtype.name}")
    return dtype.type(v)


def check_args(params, args, kernel, is_array):
    """Check launch arguments against the kernel's parameters; return them with scalars as NumPy scalars.

    Args:
        params: list of Param from parse_signature.
        args: tuple of arrays (NumPy or CuPy) and scalars (NumPy scalars, or Python int/float/bool).
        kernel: kernel name, for messages.
        is_array: predicate telling an array of the tier being launched from a scalar.
    Returns:
        tuple of the arguments, scalars converted to the parameter's NumPy scalar type.
    """
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"{kernel}: args must be a tuple of arguments, got {type(args).__name__}")
    if len(args) != len(params):
        names = ", ".join(p.name for p in params)
        raise TypeError(f"{kernel} takes {len(params)} arguments ({names}) but {len(args)} were given")
    out = []
    for p, a in zip(params, args):
        if p.pointer != is_array(a):
            want = "an array" if p.pointer else "a scalar"
            raise TypeError(f"{kernel}: {p.describe()} expects {want} but got {type(a).__name__}")
        if p.pointer:
            _check_array(p, a, kernel)
            out.append(a)
        else:
            out.append(_convert_scalar(p, a, kernel))
    return tuple(out)
