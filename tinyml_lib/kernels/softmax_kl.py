"""Fused softmax(z / T) + KL divergence per row: reference and launchers for kernels/softmax_kl.cu (versions v1-v2,
see the file's opening comment).

Math: kl[r] = sum_i p_i (log p_i - log q_i), p = softmax(t[r] / T) (the teacher), q = softmax(s[r] / T) (the student),
in nats, without the T^2 factor of the distillation loss (Hinton, Vinyals, Dean, "Distilling the Knowledge in a
Neural Network", 2015). float32 results agree with the float64 reference to rounding (relative ~1e-6, plus ~1e-6
absolute where the KL is near 0).
"""
from functools import lru_cache

import numpy as np

from .launcher import array_module, check_version, kernel_file, load_kernel

VERSIONS = (1, 2)


def log_softmax_ref(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64, the maximum subtracted first (no overflow). z: (rows, n) -> (rows, n)."""
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_kl_ref(t, s, temperature: float) -> np.ndarray:
    """Reference per-row KL(softmax(t / T) || softmax(s / T)), accumulated in float64.

    Args:
        t, s: (rows, n) float arrays (CuPy arrays are copied to the host).  temperature: T > 0.
    Returns:
        (rows,) float32.
    """
    t, s = (x.get() if hasattr(x, "get") else np.asarray(x) for x in (t, s))
    log_p, log_q = log_softmax_ref(t / temperature), log_softmax_ref(s / temperature)
    return (np.exp(log_p) * (log_p - log_q)).sum(axis=1).astype(np.float32)


@lru_cache(maxsize=None)
def softmax_kl_kernel(version: int, block: int = 128):
    """The loaded Kernel `softmax_kl_v{version}` with BLOCK threads per block."""
    check_version(version, VERSIONS)
    return load_kernel(kernel_file("softmax_kl.cu"), f"softmax_kl_v{version}", defines={"BLOCK": block})


def softmax_kl(t, s, temperature: float, version: int = 2, block: int = 128, check=None, counters=False,
               kernel=None):
    """Per-row KL(softmax(t / T) || softmax(s / T)) on the tier matching t (NumPy: CPU emulator, CuPy: GPU).

    Args:
        t, s: (rows, n) float32, C-contiguous, same shape, n >= 1, both NumPy or both CuPy.
        temperature: T > 0.  version: 1 (three passes) or 2 (one pass, online softmax).
        block: threads per block (a multiple of 32, up to 1024).  check, counters: passed to the launch (CPU tier).
        kernel: a loaded Kernel with softmax_kl_v2's signature and BLOCK = `block` to launch instead of
            softmax_kl_v{version} (e.g. Lab 05's own; then kernels/softmax_kl.cu is not read).
    Returns:
        (rows,) float32 KL per row, or (kl, LaunchStats) when counters=True.
    """
    for name, x in (("t", t), ("s", s)):
        if getattr(x, "dtype", None) != np.float32 or x.ndim != 2 or not x.flags.c_contiguous:
            raise TypeError(f"{name} must be a 2-D C-contiguous float32 array, got "
                            f"{getattr(x, 'dtype', type(x).__name__)} with shape {getattr(x, 'shape', None)}")
    if t.shape != s.shape or t.shape[1] < 1:
        raise ValueError(f"t and s: expected the same shape (rows, n >= 1), got {t.shape} and {s.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature: expected T > 0, got {temperature}")
    if block % 32 or not 32 <= block <= 1024:
        raise ValueError(f"block: expected a multiple of 32 in [32, 1024], got {block}")
    xp = array_module(t)
    kl = xp.zeros(t.shape[0], dtype=xp.float32)
    if t.shape[0] == 0:
        return (kl, None) if counters else kl
    kernel = softmax_kl_kernel(version, block) if kernel is None else kernel
    stats = kernel(t.shape[0], block,
                   (t, s, kl, np.int32(t.shape[1]), np.float32(1.0 / temperature)), check=check, counters=counters)
    return (kl, stats) if counters else kl
