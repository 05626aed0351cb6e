"""How often does a graded speed check fail a correct solution (or pass a slow one) on a loaded machine?

Runs Lab 01's batching check (target lab01.batched_speedup) N times while `--load` busy processes compete for the
cores, and counts false failures of the correct solution and false passes of the per-sample loop.

    OMP_NUM_THREADS=1 python benchmarks/speed_check_flakes.py --runs 200 --load 2
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--load", type=int, default=2, help="busy background processes")
    parser.add_argument("--slow-runs", type=int, default=20, help="runs of the slow (wrong) answer")
    parser.add_argument("--shape", type=int, nargs=3, default=(4096, 4096, 64), help="out, in, batch (as in Lab 01)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    out_f, in_f, batch = args.shape
    w = rng.standard_normal((out_f, in_f), dtype=np.float32)
    x = rng.standard_normal((batch, in_f), dtype=np.float32)
    loop = lambda: np.stack([w @ xi for xi in x])  # noqa: E731
    min_ratio = target("lab01.batched_speedup")
    procs = [mp.Process(target=burn, args=(time.time() + 3600,), daemon=True) for _ in range(args.load)]
    for p in procs:
        p.start()
    start = time.time()
    try:
        good = [check(lambda: x @ w.T, loop, min_ratio) for _ in range(args.runs)]
        bad = [check(loop, loop, min_ratio) for _ in range(args.slow_runs)]
    finally:
        for p in procs:
            p.terminate()
    ratios = np.array([r for _, r in good])
    print(f"{args.runs} runs of a correct solution under {args.load} busy processes: "
          f"{sum(not ok for ok, _ in good)} false failures; ratio min {ratios.min():.2f}x, median "
          f"{np.median(ratios):.2f}x, threshold {min_ratio}x")
    print(f"{args.slow_runs} runs of the per-sample loop: {sum(ok for ok, _ in bad)} false passes")
    print(f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
