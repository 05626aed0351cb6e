"""Turn a failed check-mode launch (program counters, addresses) into a message naming the kernel's lines."""
import re
import subprocess
from functools import lru_cache

STATUS_OOB, STATUS_RACE, STATUS_DIVERGE, STATUS_GLOBAL_RACE, STATUS_UNINIT = 1, 2, 3, 5, 6
VERBS = {0: "read from", 1: "write to", 2: "atomic operation on"}


def source_line(lib_path, pc):
    """'reduction.cu:37 in reduce_v2' for a return address `pc` (offset into the library), or '<unknown line>'.

    The first frame outside cuda_emu.h is the kernel's: helpers such as atomicAdd are inlined into it.
    """
    if not pc:
        return "<unknown line>"
    try:
        out = subprocess.run(["addr2line", "-e", str(lib_path), "-f", "-C", "-i", hex(pc - 1)],
                             capture_output=True, text=True, timeout=30).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return "<unknown line: addr2line not available>"
    frames = list(zip(out[0::2], out[1::2]))
    for func, loc in frames:
        file = loc.split(" ")[0]
        if "cuda_emu.h" not in file and not file.startswith("??"):
            return f"{file.rsplit('/', 1)[-1]} in {func.split('(')[0]}"
    return "<unknown line>"


@lru_cache(maxsize=32)
def _symbols(lib_path):
    """(start, size, name) of the library's data symbols, from nm."""
    out = subprocess.run(["nm", "-C", "-S", "--defined-only", str(lib_path)], capture_output=True, text=True).stdout
    syms = []
    for line in out.splitlines():
        m = re.match(r"([0-9a-f]+) ([0-9a-f]+) [bBdDrRuVvC] (.+)", line)
        if m:
            syms.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
    return syms


def shared_name(lib_path, addr):
    """'sdata[+12 bytes]' for a shared-memory address (offset into the library)."""
    try:
        for start, size, name in _symbols(lib_path):
            if start <= addr < start + size:
                label = "extern __shared__ memory" if name == "cuemu_dyn_smem" else name.rsplit("::", 1)[-1]
                return f"{label} (byte {addr - start})"
    except OSError:
        pass
    return "(variable unknown)"


def _thread(t):
    return f"({t[0]},{t[1]},{t[2]})"


def _describe_oob(lib_path, name, params, args, info):
    verb = VERBS[int(info.is_store)]
    where = source_line(lib_path, info.pc)
    at = f"at {where}, thread {_thread(info.tid)} of block {_thread(info.bid)}"
    if info.arg == -3:
        return (f"{name}: out-of-bounds {verb} static __shared__ memory (byte {info.offset}, past the end of the "
                f"kernel's {info.size} bytes of __shared__ arrays) {at}")
    if info.arg == -2:
        return (f"{name}: out-of-bounds {verb} extern __shared__ memory (byte {info.offset}, but shared_mem="
                f"{info.size} bytes were requested) {at}")
    if info.arg < 0:
        return f"{name}: {verb} an invalid address {info.offset:#x} {at}"
    p, a = params[info.arg], args[info.arg]
    elem = a.itemsize * p.lanes
    return (f"{name}: out-of-bounds {verb} argument '{p.name}' (index {info.offset // elem}, size {a.size // p.lanes})"
            f" {at}")


def _linear(t, block) -> int:
    return t[0] + block[0] * (t[1] + block[1] * t[2])


def describe_failure(lib_path, name, params, args, info, block):
    """The KernelCheckError message for a LaunchInfo whose status is not 0; `block` is the launch's block shape."""
    kinds = {True: "writes", False: "reads"}
    if info.status == STATUS_OOB:
        return _describe_oob(lib_path, name, params, args, info)
    if info.status == STATUS_RACE:
        one_warp = _linear(info.tid, block) // 32 == _linear(info.tid2, block) // 32
        missing = ("no __syncwarp() between them: lanes of one warp do not run in lockstep (since Volta), so "
                   "they need __syncwarp() (missing __syncwarp()?)" if one_warp else
                   "no __syncthreads() between them (missing __syncthreads()?)")
        return (f"{name}: data race on shared memory {shared_name(lib_path, info.sym)} in block {_thread(info.bid)}: "
                f"thread {_thread(info.tid)} {kinds[bool(info.is_store)]} it at {source_line(lib_path, info.pc)} and "
                f"thread {_thread(info.tid2)} {kinds[bool(info.is_store2)]} it at {source_line(lib_path, info.pc2)} "
                f"with {missing}")
    if info.status == STATUS_GLOBAL_RACE:
        p, a = params[info.arg], args[info.arg]
        same_block = tuple(info.bid) == tuple(info.bid2)
        why = ("no __syncthreads() between them" if same_block else
               "threads of different blocks are never ordered within a launch")
        return (f"{name}: data race on global memory: thread {_thread(info.tid)} of block {_thread(info.bid)} reads "
                f"argument '{p.name}' (index {info.offset // (a.itemsize * p.lanes)}) at "
                f"{source_line(lib_path, info.pc)}, which thread {_thread(info.tid2)} of block {_thread(info.bid2)} "
                f"wrote at {source_line(lib_path, info.pc2)} in this launch, with {why}. Several threads that update "
                f"one address need an atomic (atomicAdd & co.): with a plain read-modify-write a GPU loses updates")
    if info.status == STATUS_UNINIT:
        return (f"{name}: thread {_thread(info.tid)} of block {_thread(info.bid)} reads shared memory "
                f"{shared_name(lib_path, info.sym)} at {source_line(lib_path, info.pc)} before any thread of its block "
                f"wrote it: shared memory is undefined at the start of every block (the CPU tier fills it with 0xFF "
                f"bytes: NaN as float, -1 as int)")
    return (f"{name}: deadlock: in one warp, thread {_thread(info.tid)} waits at a warp primitive at "
            f"{source_line(lib_path, info.pc)} while thread {_thread(info.tid2)} waits at __syncthreads() at "
            f"{source_line(lib_path, info.pc2)}")
