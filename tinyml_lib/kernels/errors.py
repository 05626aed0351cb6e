"""Exceptions raised by tinyml_lib.kernels."""


class KernelCompileError(RuntimeError):
    """The kernel source did not compile; the message holds the compiler's messages (lines are kernel-relative)."""


class KernelCheckError(RuntimeError):
    """A check-mode launch found a bug in the kernel: an out-of-bounds access, a data race or a synchronisation
    deadlock. The message names the kernel's file and line."""
