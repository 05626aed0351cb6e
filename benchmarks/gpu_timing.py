"""What every kernel benchmark shares: GPU time of a callable in milliseconds, and the note printed without a GPU.

    from gpu_timing import gpu_missing, gpu_ms
    if gpu_missing():
        return
    print(gpu_ms(cupy.matmul, a, b))
"""
from tinyml_lib.kernels import gpu_available
from tinyml_lib.kernels.gpu_tier import time_gpu_call


def gpu_ms(fn, *args, repeats: int = 50, warmup: int = 5) -> float:
    """Median milliseconds per call of fn(*args) on the GPU (CUDA events, `repeats` timed calls after `warmup`)."""
    return time_gpu_call(fn, *args, n_repeat=repeats, n_warmup=warmup) * 1e3


def gpu_missing() -> bool:
    """True (and says so) when there is no CUDA device to time on."""
    if gpu_available():
        return False
    print("GPU timing skipped: no CUDA device (install requirements-gpu.txt on a machine with an NVIDIA GPU).")
    return True
