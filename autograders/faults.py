"""Planted faults in the code that grading trusts: each must make a fast test fail (tests/test_planted_faults.py).

The labs' mutants (autograders/mutants/) are wrong answers that the graded cells must reject. These are their
counterpart for everything those cells rely on: the checkers and the timer, the export of solution cells into the
library, the sandbox's scoring and the re-check, the library's modules and the CUDA emulator's primitives. Each fault is a realistic wrong version of one line or a
few (an exact piece of the file and what it becomes) and names the fast tests that must catch it. A fault whose
text no longer occurs in its file is an error, so the list follows the code as it changes.

    python -m autograders.faults            # list the faults
    python -m autograders.faults NAME       # print the planted diff of one
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autograders.answers import ROOT


@dataclass(frozen=True)
class Fault:
    name: str                 # what is wrong, as a reviewer would say it
    path: str                 # file, relative to the repository root
    old: str                  # an exact piece of that file (occurring once)
    new: str                  # the planted wrong version
    tests: tuple[str, ...]    # pytest node ids of fast tests; one of them must fail

    def planted(self, root: Path = ROOT) -> str:
        text = (root / self.path).read_text()
        if text.count(self.old) != 1:
            raise ValueError(f"fault {self.name!r}: its text occurs {text.count(self.old)} times in {self.path}, "
                             "expected once (update the fault with the code)")
        return text.replace(self.old, self.new)


G, T, SB, RC = "tinyml_lib/grading.py", "tinyml_lib/timing.py", "autograders/sandbox.py", "autograders/recheck.py"
EMU = "tinyml_lib/kernels/cuda_emu.h"
GRADING_TESTS, KERNEL_TESTS = "tests/test_grading.py", "tests/test_kernels_runtime.py"
FAULTS = [
    # ---- the checkers
    Fault("check_close swaps rtol and atol", G, "np.isclose(a, e, rtol=rtol, atol=atol)",
          "np.isclose(a, e, rtol=atol, atol=rtol)",
          (f"{GRADING_TESTS}::test_check_close_uses_the_callers_rtol_and_atol_each_for_its_own_part",)),
    Fault("check_close ignores the caller's rtol", G, "np.isclose(a, e, rtol=rtol, atol=atol)",
          "np.isclose(a, e, rtol=1e-5, atol=atol)",
          (f"{GRADING_TESTS}::test_check_close_uses_the_callers_rtol_and_atol_each_for_its_own_part",)),
    Fault("check_equal compares with isclose", G, "    bad = a != e\n", "    bad = ~np.isclose(a, e)\n",
          (f"{GRADING_TESTS}::test_check_equal_is_exact_on_large_integers",)),
    Fault("assert_speedup takes the best pair", G, "SpeedResult(statistics.median(ratios), tb, tf, min_ratio, attempt)",
          "SpeedResult(max(ratios), tb, tf, min_ratio, attempt)",
          (f"{GRADING_TESTS}::test_assert_speedup_decides_on_the_median_of_the_pairs",)),
    Fault("assert_speedup takes the worst pair", G, "SpeedResult(statistics.median(ratios), tb, tf, min_ratio, attempt)",
          "SpeedResult(min(ratios), tb, tf, min_ratio, attempt)",
          (f"{GRADING_TESTS}::test_assert_speedup_decides_on_the_median_of_the_pairs",)),
    Fault("assert_speedup takes the mean", G, "SpeedResult(statistics.median(ratios), tb, tf, min_ratio, attempt)",
          "SpeedResult(statistics.mean(ratios), tb, tf, min_ratio, attempt)",
          (f"{GRADING_TESTS}::test_assert_speedup_decides_on_the_median_of_the_pairs",)),
    Fault("assert_speedup passes its last attempt whatever it measured", G, "        if result.passed:\n",
          "        if result.passed or attempt == retries:\n",
          (f"{GRADING_TESTS}::test_assert_speedup_fails_after_retries_with_ratio",
           f"{GRADING_TESTS}::test_assert_speedup_decides_on_the_median_of_the_pairs")),
    Fault("the peak-memory check reads current memory", G, "peak = tracemalloc.get_traced_memory()[1]",
          "peak = tracemalloc.get_traced_memory()[0]",
          (f"{GRADING_TESTS}::test_peak_memory_counts_a_temporary_freed_before_the_end",)),
    # ---- the timer
    Fault("no A/B alternation: the baseline always runs first", T, "            if i % 2 == 0:\n",
          "            if True:\n", (f"{GRADING_TESTS}::test_pairs_alternate_which_side_runs_first",)),
    Fault("the clock is looked up at call time (a student's patch applies)", T, "_clock_ns = time.perf_counter_ns\n",
          "def _clock_ns():\n    return time.perf_counter_ns()\n",
          (f"{GRADING_TESTS}::test_speed_check_ignores_a_patched_clock",)),
    Fault("time_loops reports seconds per sample, not per call", T, "    return (_clock_ns() - start) * 1e-9 / loops\n",
          "    return (_clock_ns() - start) * 1e-9\n",
          (f"{GRADING_TESTS}::test_timed_seconds_are_per_call_and_samples_long_enough",)),
    Fault("calibrate_loops stops at a tenth of the minimum sample", T,
          "if time_loops(fn, loops) * loops >= min_sample_s:", "if time_loops(fn, loops) * loops >= min_sample_s / 10:",
          (f"{GRADING_TESTS}::test_timed_seconds_are_per_call_and_samples_long_enough",)),
    Fault("the pair ratio is inverted", T, "ratios.append(tb / tf)", "ratios.append(tf / tb)",
          (f"{GRADING_TESTS}::test_assert_speedup_passes_and_reports_ratio",)),
    Fault("steady_heap keeps nothing", T, "    libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)\n    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)\n",
          "", (f"{GRADING_TESTS}::test_steady_heap_keeps_temporaries_off_the_page_fault_path",)),
    # ---- the export of the solution cells into the library
    Fault("export keeps the solution markers", "tinyml_lib/export.py",
          "for line in lines[1:] if line.strip() not in MARKERS]", "for line in lines[1:]]",
          ("tests/test_export.py::test_export_collects_tagged_cells_in_order",)),
    Fault("export leaves the library-only lines as comments", "tinyml_lib/export.py",
          'body = [LIBRARY_ONLY.sub(r"\\g<indent>\\g<code>", line) for line', "body = [line for line",
          ("tests/test_export.py::test_library_only_lines_are_code_in_the_module_and_comments_in_the_notebook",)),
    Fault("export writes the cells in reverse order", "tinyml_lib/export.py",
          '            found.append((match["path"], "\\n".join(body).strip() + "\\n"))',
          '            found.insert(0, (match["path"], "\\n".join(body).strip() + "\\n"))',
          ("tests/test_export.py::test_export_collects_tagged_cells_in_order",)),
    # ---- the sandbox's scoring and the re-check
    Fault("a cell without a re-check verdict (the re-check stopped) counts", SB,
          "elif gid in rechecked and not (rechecked[gid] or (False,))[0]:",
          "elif gid in rechecked and rechecked[gid] is not None and not rechecked[gid][0]:",
          ("tests/test_recheck.py::test_verdicts_come_from_replies_and_the_recheck_not_from_outputs",)),
    Fault("a cell that failed the re-check counts (only a missing verdict fails)", SB,
          "elif gid in rechecked and not (rechecked[gid] or (False,))[0]:",
          "elif gid in rechecked and rechecked[gid] is None:",
          ("tests/test_recheck.py::test_verdicts_come_from_replies_and_the_recheck_not_from_outputs",)),
    Fault("a cell passes without an execute reply", SB,
          'replies.get(index, (False, "NotExecuted", stopped or "the cell did not run"))',
          'replies.get(index, (True, "NotExecuted", stopped or "the cell did not run"))',
          ("tests/test_recheck.py::test_verdicts_come_from_replies_and_the_recheck_not_from_outputs",)),
    Fault("the re-check does not restore the checkers before a test", RC,
          '        if cell["kind"] == "test":\n            restore()\n', "",
          ("tests/test_recheck.py::test_recheck_restores_checkers_and_clock_and_reports_each_test",)),
    # ---- the library
    Fault("fold_ar_scale returns alpha squared", "tinyml_lib/pruning/folding.py",
          "return (n_c / norm.clamp(min=1e-12)).to(w.dtype)", "return (n_c / norm.clamp(min=1e-12)).pow(2).to(w.dtype)",
          ("tests/test_pruning.py::test_fold_ar_scale_on_hand_worked_clusters",)),
    Fault("share_weights returns its initial centroids", "tinyml_lib/pruning/compression.py",
          "    codebook = codebook[:, 0]\n", "    codebook = init[:, 0]\n",
          ("tests/test_pruning.py::test_share_weights_moves_the_centroids_to_the_cluster_means",)),
    Fault("rank_channels keeps the weakest channels", "tinyml_lib/pruning/__init__.py",
          "norms.argsort(descending=True, stable=True)", "norms.argsort(descending=False, stable=True)",
          ("tests/test_pruning.py::test_rank_channels_keeps_the_strongest_filters",)),
    Fault("perplexity_windows scores unshifted logits", "tinyml_lib/llm/perplexity.py",
          "F.cross_entropy(logits[:-1].float(), window[1:]", "F.cross_entropy(logits[1:].float(), window[1:]",
          ("tests/test_llm_deploy_utils.py::test_perplexity_windows_predicts_each_token_from_the_logits_before_it",)),
    Fault("overlapping windows score tokens without the context before them", "tinyml_lib/lm/smollm2.py",
          "                total += _window_nll(model, ids_t, begin, end, first)\n",
          "                total += _window_nll(model, ids_t, first - 1, end, first)\n",
          ("tests/test_smollm2.py::test_perplexity_scores_each_token_from_its_own_context",)),
    Fault("capture_inputs records the RMSNorm's input", "tinyml_lib/lm/calibration.py",
          "        hooks.append(linears[members[0]].register_forward_pre_hook(hook))\n",
          "        layer = model.model.layers[int(members[0].split('.')[2])]\n"
          "        norm = {'self_attn': layer.input_layernorm, 'mlp': layer.post_attention_layernorm}[members[0].split('.')[3]]\n"
          "        hooks.append((linears[members[0]] if 'down_proj' in members[0] else norm).register_forward_pre_hook(hook))\n",
          ("tests/test_llm_deploy_utils.py::test_capture_inputs_records_what_the_linears_read_after_the_norm",)),
    Fault("measure_latency reports the mean as the median", "tinyml_lib/metrics/__init__.py",
          '"median_ms": float(np.median(s))', '"median_ms": float(s.mean())',
          ("tests/test_metrics.py::test_measure_latency_statistics_on_known_durations",)),
    Fault("nm_mask keeps the smallest weights of each group", "tinyml_lib/pruning/__init__.py",
          "keep = groups.argsort(dim=1, descending=True, stable=True)[:, :n]",
          "keep = groups.argsort(dim=1, descending=False, stable=True)[:, :n]",
          ("tests/test_pruning.py::test_nm_mask_and_compression_on_a_hand_worked_row",)),
    Fault("generate_greedy takes the least likely token", "tinyml_lib/lm/decoding.py",
          "        token = logits.argmax(-1, keepdim=True)  # (B, 1)\n",
          "        token = logits.argmin(-1, keepdim=True)  # (B, 1)\n",
          ("tests/test_llm_deploy_utils.py::test_generate_greedy_is_the_argmax_loop_and_down_proj_reads_the_gated_product",)),
    # ---- the references of the CUDA kernels
    Fault("the int8 GEMM reference truncates instead of rounding", "tinyml_lib/kernels/int8_gemm.py",
          "q = ((acc * m0.astype(np.int64) + (np.int64(1) << (s - 1))) >> s) + int(zy)",
          "q = ((acc * m0.astype(np.int64)) >> s) + int(zy)",
          ("tests/test_int8_gemm.py::test_references_on_hand_worked_values",)),
    Fault("pack_w4 puts column 0 in the high nibble", "tinyml_lib/kernels/w4a16_gemv.py",
          "    shifts = (4 * np.arange(8, dtype=np.uint32))\n", "    shifts = (4 * np.arange(7, -1, -1, dtype=np.int64)).astype(np.uint32)\n",
          ("tests/test_w4a16_gemv.py::test_packing_and_dequantization_on_hand_worked_values",)),
    Fault("pack_sign_rows sets the bits of the negative signs", "tinyml_lib/kernels/xnor_gemm.py",
          "    bits[:, :x.shape[1]] = x >= 0\n", "    bits[:, :x.shape[1]] = x < 0\n",
          ("tests/test_xnor_gemm.py::test_sign_rows_pack_little_endian_bits_of_the_positive_signs",)),
    # ---- the CUDA emulator
    Fault("atomics return the new value", EMU,
          "    cuemu_atomic_store(p, (T)(NEWVAL));                                          \\\n"
          "    return old;                                                                  \\\n",
          "    cuemu_atomic_store(p, (T)(NEWVAL));                                          \\\n"
          "    return cuemu_atomic_load(p);                                                 \\\n",
          (f"{KERNEL_TESTS}::test_atomics_int_unsigned_float",)),
    Fault("atomicCAS ignores its compare value", EMU, "    if (old == compare) cuemu_atomic_store(p, val);",
          "    (void)compare; cuemu_atomic_store(p, val);",
          (f"{KERNEL_TESTS}::test_atomics_int_unsigned_float",)),
    Fault("shared memory keeps its values across blocks and launches", EMU,
          "        if (g_smem_hi > g_smem_lo) memset(g_smem_lo, 0xFF, (size_t)(g_smem_hi - g_smem_lo));\n"
          "        memset(cuemu_dyn_smem, 0xFF, g_dyn_bytes);\n", "",
          (f"{KERNEL_TESTS}::test_shared_memory_is_undefined_in_each_block_and_reading_it_unwritten_is_reported",)),
    Fault("a read of unwritten shared memory is not reported", EMU, "    if (g_uninit.set) return report_uninit();\n",
          "", (f"{KERNEL_TESTS}::test_shared_memory_is_undefined_in_each_block_and_reading_it_unwritten_is_reported",)),
    Fault("the race check takes the lanes of a warp to run in lockstep", EMU,
          "  return !((tid >> 5) == (me >> 5) && g_warps[me >> 5].epoch != wepoch);",
          "  return (tid >> 5) != (me >> 5);", (f"{KERNEL_TESTS}::test_lanes_of_a_warp_race_without_syncwarp",)),
    Fault("global memory is not race-checked (a plain += passes)", EMU,
          "      if (g_gshadow && !(kind & A_ATOMIC)) check_global(p, size, (kind & A_STORE) != 0, i, pc);\n", "",
          (f"{KERNEL_TESTS}::test_global_read_modify_write_without_atomics_is_a_race",)),
    Fault("an overrun of a static __shared__ array goes unreported", EMU,
          "  if ((g_flags & F_BOUNDS) && g_guard && p >= g_guard && p < g_guard + CUEMU_SMEM_GUARD) {",
          "  if (false) {",
          (f"{KERNEL_TESTS}::test_race_report_names_both_threads_and_an_atomic_out_of_bounds_is_not_a_read",)),
    Fault("a race report names the writing thread as the other reader", EMU,
          "  bool last = prev_store || s->r_tid != g_cur->linear;", "  bool last = true;",
          (f"{KERNEL_TESTS}::test_race_report_names_both_threads_and_an_atomic_out_of_bounds_is_not_a_read",)),
]

MIRRORED = ("tinyml_lib", "autograders", "tests", "kernels")   # copied (small): a symbolic link's target would be
# what pytest and Path.resolve() see, and the conftest would put the real repository first on sys.path
SKIPPED = {".git", ".venv", "grading", "workspace", "test-artifacts", ".pytest_cache", "__pycache__"}


def mirror(dest: Path, patched: dict[str, str] | None = None, root: Path = ROOT) -> Path:
    """A view of the repository in `dest`: copies of the code folders (MIRRORED), symbolic links to everything else
    (data, notebooks), and `patched` (path -> text) written over their files. Returns dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if entry.name in SKIPPED:
            continue
        if entry.name not in MIRRORED:
            (dest / entry.name).symlink_to(entry)
            continue
        for folder, subdirs, files in os.walk(entry):
            subdirs[:] = [d for d in subdirs if d not in SKIPPED]
            rel = Path(folder).relative_to(root)
            (dest / rel).mkdir(parents=True, exist_ok=True)
            for name in files:
                shutil.copyfile(Path(folder) / name, dest / rel / name)
    for path, text in (patched or {}).items():
        (dest / path).write_text(text)
    return dest


def run_tests(runs: list[tuple[Path, tuple[str, ...]]], workers: int = 2, timeout: int = 600) -> list[tuple[int, str]]:
    """pytest on each (repository view, tests) of `runs`, `workers` at a time, each in a fork of one process that
    imported torch, numpy and pytest once (autograders/fault_runs.py), the view's own tinyml_lib first on sys.path;
    [(exit code, the output's end)] in order. Exit code 1 = a test failed."""
    jobs = [{"view": str(view), "tests": list(tests), "timeout": timeout} for view, tests in runs]
    done = subprocess.run([sys.executable, "-P", str(ROOT / "autograders" / "fault_runs.py"), str(workers)],
                          input=json.dumps(jobs), capture_output=True, text=True, check=True,
                          timeout=timeout * (len(jobs) + 1))
    return [(r["code"], r["out"]) for r in json.loads(done.stdout)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="a fault's name: print its diff")
    args = parser.parse_args(argv)
    for fault in FAULTS:
        if args.name is None:
            print(f"{fault.path}: {fault.name}")
        elif fault.name == args.name:
            before = (ROOT / fault.path).read_text().splitlines(keepends=True)
            sys.stdout.writelines(difflib.unified_diff(before, fault.planted().splitlines(keepends=True),
                                                       fault.path, f"{fault.path} ({fault.name})"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
