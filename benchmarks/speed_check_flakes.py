"""How often does a graded speed check fail a correct solution (or pass a slow one) on a loaded machine?

Runs a graded speed check N times while `--load` busy processes compete for the cores, and counts false failures of
the correct solution and false passes of the slow answer:
  batched     Lab 01's batching check (lab01.batched_speedup): batched GEMM vs a per-sample loop.
  sparse_ffn  Lab 07's row-skipping FFN (lab07.sparse_ffn_speedup): 4096 x 11008, 90% of rows skipped, vs the dense FFN.
  lab06_reordered, lab06_simd, lab06_gemv  Lab 06's C speed checks (lab06.*_speedup), the solution notebook's sources:
              the reordered and the register-blocked SIMD matmul against the naive loop at 512^3, the int4 GEMV against
              its naive version at 32000 x 4096, one thread each.
  latency_table  Lab 04's latency table (lab04.latency_table_tau): the table is built and the shipped table's first
              30 subnets timed whole, as the lab does, each run; Kendall tau of the table's sums vs the measured
              latencies. The wrong answer is the proxy a latency table replaces: MACs in place of milliseconds.
              (A table shuffled among its pieces is no wrong answer: at batch 1 these subnets' latency is mostly
              per-layer overhead, so any per-piece constant ranks them by depth, tau ~0.75-0.89.)

    OMP_NUM_THREADS=1 python benchmarks/speed_check_flakes.py --runs 200 --load 2 [--check sparse_ffn|latency_table]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import time
from pathlib import Path

import numpy as np

from tinyml_lib.grading import assert_speedup, target


def burn(stop_at: float) -> None:
    """Busy loop with some memory traffic, until `stop_at` (time.time())."""
    buf = np.ones(1 << 22, dtype=np.float32)
    while time.time() < stop_at:
        buf *= 1.0000001


def check(fast, baseline, min_ratio) -> tuple[bool, float]:
    try:
        return True, assert_speedup(fast, baseline, min_ratio).ratio
    except AssertionError as err:
        return False, float(str(err).split("x", 1)[0].split()[-1])


def batched_check(shape):
    """(fast, slow, threshold) of Lab 01's batching check on (out, in, batch) = shape."""
    rng = np.random.default_rng(0)
    out_f, in_f, batch = shape
    w = rng.standard_normal((out_f, in_f), dtype=np.float32)
    x = rng.standard_normal((batch, in_f), dtype=np.float32)
    return (lambda: x @ w.T), (lambda: np.stack([w @ xi for xi in x])), target("lab01.batched_speedup")


def sparse_ffn_check(shape):
    """(fast, slow, threshold) of Lab 07's skipping-FFN check on a (d, d_ff) FFN with 10% of its rows active."""
    import torch
    from tinyml_lib.llm.sparseinfer import ffn_dense, sparse_ffn
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    d, d_ff = shape[:2]
    w1, w2t = torch.randn(d_ff, d, generator=g) / d ** 0.5, torch.randn(d_ff, d, generator=g) / d_ff ** 0.5
    b1, b2, x = torch.zeros(d_ff), torch.zeros(d), torch.randn(d, generator=g)
    active = torch.randperm(d_ff, generator=g)[:d_ff // 10].sort().values
    return (lambda: sparse_ffn(x, w1, b1, w2t, b2, active)), (lambda: ffn_dense(x, w1, b1, w2t, b2)), \
        target("lab07.sparse_ffn_speedup")


def lab06_check(which: str):
    """(fast, slow, threshold) of a Lab 06 speed check, from the solution notebook's C sources: `reordered` and
    `simd` against the naive loop at 512^3, `gemv` the int4 GEMV against the naive one at 32000 x 4096; one thread."""
    import nbformat

    from tinyml_lib.kernels import load_c
    from tinyml_lib.kernels.int4_gemv import random_w4_layer
    nb = nbformat.read(Path(__file__).resolve().parents[1] / "solutions/lab06_loops/lab06_loops.ipynb", as_version=4)
    sources: dict = {}
    for cell in nb.cells:   # the cells' `NAME_SRC = [OTHER_SRC + ]r"""..."""` assignments, in order
        if cell.cell_type == "code" and (found := re.match(r'\w+_SRC = [^"]*r""".*?"""', cell.source, re.S)):
            exec(found[0], sources)
    if which == "gemv":
        n, k, group = 32000, 4096, 64
        w, scale, zero, x = random_w4_layer(n, k, group)
        y = np.zeros(n, np.float32)
        naive, fast = load_c(sources["GEMV_NAIVE_SRC"], "gemv_w4_naive"), load_c(sources["GEMV_FAST_SRC"], "gemv_w4_fast")
        return (lambda: fast(w, scale, zero, x, y, n, k, group, threads=1),
                lambda: naive(w, scale, zero, x, y, n, k, group, threads=1), target("lab06.gemv_speedup"))
    size, rng = 512, np.random.default_rng(0)
    a, b = rng.standard_normal((size, size), dtype=np.float32), rng.standard_normal((size, size), dtype=np.float32)
    c = np.zeros((size, size), np.float32)
    naive = load_c(sources["NAIVE_SRC"], "matmul_naive")
    fast = load_c(sources["REORDERED_SRC"], "matmul_reordered") if which == "reordered" else \
        load_c(sources["SIMD_SRC"], "matmul_simd")
    return (lambda: fast(a, b, c, size, size, size, threads=1), lambda: naive(a, b, c, size, size, size, threads=1),
            target(f"lab06.{which}_speedup"))


def latency_table_run(macs_for_ms: bool) -> tuple[bool, float]:
    """One run of Lab 04's latency-table check (its settings: 15 rounds for the pieces, 30 for the subnets, one thread)."""
    import torch
    from scipy.stats import kendalltau

    from tinyml_lib.checkpoints import load_supernet
    from tinyml_lib.data.nas import load_subnet_dataset
    from tinyml_lib.nas.cost import PieceCost, build_cost_table, predict_cost, time_round_robin_ms
    from tinyml_lib.nas.extraction import extract_subnet
    torch.set_num_threads(1)
    net, _ = load_supernet()
    configs = load_subnet_dataset(net.space).configs[:30]
    table = build_cost_table(net, lambda pieces: time_round_robin_ms(pieces, 15))
    if macs_for_ms:
        table = {k: PieceCost(float(t.macs), t.macs, t.peak) for k, t in table.items()}
    measured = time_round_robin_ms([(extract_subnet(net, c), (1, 1, c.resolution, c.resolution)) for c in configs], 30)
    tau = kendalltau([predict_cost(table, c).latency_ms for c in configs], measured).statistic
    return tau >= target("lab04.latency_table_tau"), tau


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--load", type=int, default=2, help="busy background processes")
    parser.add_argument("--slow-runs", type=int, default=20, help="runs of the slow (wrong) answer")
    parser.add_argument("--check", choices=("batched", "sparse_ffn", "latency_table", "lab06_reordered", "lab06_simd",
                                            "lab06_gemv"), default="batched")
    parser.add_argument("--shape", type=int, nargs="+", default=None,
                        help="batched: out in batch (default 4096 4096 64); sparse_ffn: d d_ff (default 4096 11008)")
    args = parser.parse_args()
    if args.check == "batched":
        fast, slow, min_ratio = batched_check(args.shape or (4096, 4096, 64))
    elif args.check == "sparse_ffn":
        fast, slow, min_ratio = sparse_ffn_check(args.shape or (4096, 11008))
    elif args.check.startswith("lab06_"):
        fast, slow, min_ratio = lab06_check(args.check.removeprefix("lab06_"))
    procs = [mp.Process(target=burn, args=(time.time() + 86400,), daemon=True) for _ in range(args.load)]
    for p in procs:
        p.start()
    start = time.time()
    try:
        if args.check == "latency_table":
            bad = [latency_table_run(True) for _ in range(args.slow_runs)]
            print(f"MACs for ms: tau {' '.join(f'{tau:.2f}' for _, tau in bad)}", flush=True)
            good = []
            for i in range(args.runs):   # a run takes ~20 s at load 2: report as it goes
                good.append(latency_table_run(False))
                print(f"run {i}: tau {good[-1][1]:.3f} {'ok' if good[-1][0] else 'FAIL'}", flush=True)
            min_ratio = target("lab04.latency_table_tau")
        else:
            good = [check(fast, slow, min_ratio) for _ in range(args.runs)]
            bad = [check(slow, slow, min_ratio) for _ in range(args.slow_runs)]
    finally:
        for p in procs:
            p.terminate()
    ratios = np.array([r for _, r in good])
    print(f"{args.check}: {args.runs} runs of a correct solution under {args.load} busy processes: "
          f"{sum(not ok for ok, _ in good)} false failures; ratio min {ratios.min():.2f}x, median "
          f"{np.median(ratios):.2f}x, threshold {min_ratio}x (latency_table: Kendall tau, not x)")
    print(f"{args.slow_runs} runs of the slow answer against itself: {sum(ok for ok, _ in bad)} false passes")
    print(f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
