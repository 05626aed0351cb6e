"""Lab 01's roofline (tinyml_lib.machine, plotting) bounds the points drawn on it, also on a loaded machine."""
import subprocess
import sys

import matplotlib
import pytest
import torch
from torch import nn

from tinyml_lib import machine, metrics, plotting
from tinyml_lib.models import vgg_like
from tinyml_lib.tracing import trace_layers

matplotlib.use("Agg")

# The lab's settings (solutions/lab01_metrics, settings cell): batch 32, 10 rounds, all of torch's threads.
ROOFLINE_BATCH, ROOFLINE_ROUNDS = 32, 10
# A point may exceed its roof by at most this fraction (the acceptance criterion).
TOLERANCE = 0.10
# Another process that keeps one core busy with fp32 matmuls (the FMA units and caches the roofline measures) for as
# long as it runs; it also stops when its parent (this test) is gone.
LOADER = ("import os, torch\ntorch.set_num_threads(1)\na = torch.randn(384, 384)\nparent = os.getppid()\n"
          "print('ready', flush=True)\nwhile os.getppid() == parent:\n    a @ a\n")


def vgg_workloads(batch: int) -> list[machine.Workload]:
    """The VGG-like conv and linear layers as the lab's roofline cell builds them."""
    workloads = []
    for r in trace_layers(vgg_like().eval(), (batch, 1, 28, 28), (nn.Conv2d, nn.Linear)):
        x = torch.randn(batch, *r.in_shape)
        flops = 2 * batch * metrics.layer_macs(r)
        workloads.append(machine.Workload(r.name, lambda m=r.module, x=x: m(x), flops,
                                          flops / metrics.arithmetic_intensity(r, batch)))
    return workloads


def roof_ratios(roof: machine.Roofline) -> dict[str, float]:
    """Per point, achieved / attainable FLOP/s under its roof (cache roof if cache-resident, else DRAM; compute)."""
    ratios = {}
    for name, intensity, achieved in roof.points():
        bandwidth, _ = roof.bandwidth_for(name)
        ratios[name] = achieved / metrics.roofline_bound(intensity, roof.peak_flops, bandwidth)[0]
    return ratios


def points_above_roof(roof: machine.Roofline, tolerance: float = TOLERANCE) -> dict[str, float]:
    """The points above their roof by more than `tolerance`, with their ratio achieved / attainable."""
    return {name: ratio for name, ratio in roof_ratios(roof).items() if ratio > 1 + tolerance}


@pytest.fixture(scope="module")
def machine_loaded():
    """LOADER running in a subprocess, started once for the tests that use it."""
    proc = subprocess.Popen([sys.executable, "-c", LOADER], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready", "the load process did not start"
        yield proc
    finally:
        proc.kill()
        proc.wait()


# The lab's thread count (all of torch's threads) and one thread, where the layers come closest to the roofs.
@pytest.mark.parametrize("threads", sorted({1, torch.get_num_threads()}))
def test_roofline_bounds_the_vgg_layers_under_load(threads, machine_loaded):
    workloads = vgg_workloads(ROOFLINE_BATCH)
    roof = machine.measure_roofline(workloads, threads, ROOFLINE_ROUNDS)
    assert machine_loaded.poll() is None, "the load process ended before the measurement did"
    ratios = roof_ratios(roof)
    print(f"threads {threads}: peak {roof.peak_flops / 1e9:.1f} GFLOP/s, DRAM {roof.dram_bandwidth / 1e9:.1f} GB/s, "
          f"LLC {roof.cache_bandwidth / 1e9:.1f} GB/s; worst point/roof {max(ratios.values()):.3f}")
    assert set(ratios) == {w.name for w in workloads}
    assert all(roof.working_set[w.name] == w.bytes for w in workloads)
    above = points_above_roof(roof)
    assert not above, (f"points above their roof by more than {TOLERANCE:.0%} (achieved / attainable): {above}; "
                       f"peak {roof.peak_flops:.3g} FLOP/s, DRAM {roof.dram_bandwidth:.3g} B/s, "
                       f"cache {roof.cache_bandwidth:.3g} B/s, achieved {roof.achieved}")


def made_up_roofline(achieved: float, working_set: float) -> machine.Roofline:
    """A Roofline with peak 100 GFLOP/s, DRAM 10 GB/s, cache 50 GB/s (32 MiB) and one point "p" at I = 2 FLOP/B."""
    return machine.Roofline(peak_flops=100e9, dram_bandwidth=10e9, cache_bandwidth=50e9, cache_bytes=32 * 2**20,
                            dram_buffer_bytes=128 * 2**20, cache_buffer_bytes=2**20, threads=1, rounds=3,
                            achieved={"p": achieved}, intensity={"p": 2.0}, working_set={"p": working_set})


def test_a_point_above_its_roof_is_detected():
    in_dram, in_cache = 64 * 2**20, 2**20
    # I = 2: DRAM roof 20 GFLOP/s, cache roof 100 GFLOP/s (= peak).
    assert points_above_roof(made_up_roofline(21.9e9, in_dram)) == {}
    assert points_above_roof(made_up_roofline(23e9, in_dram)) == {"p": pytest.approx(1.15)}
    # Above the DRAM line is allowed for a cache-resident layer, above the cache roof is not.
    assert points_above_roof(made_up_roofline(60e9, in_cache)) == {}
    assert points_above_roof(made_up_roofline(120e9, in_cache)) == {"p": pytest.approx(1.2)}
    assert made_up_roofline(1.0, in_cache).bandwidth_for("p") == (50e9, "cache")
    assert made_up_roofline(1.0, in_dram).bandwidth_for("p") == (10e9, "DRAM")
    with pytest.raises(ValueError, match="expected one of"):
        made_up_roofline(1.0, in_dram).bandwidth_for("q")


def test_measure_roofline_times_everything_and_restores_threads():
    before = torch.get_num_threads()
    calls = []
    a = torch.randn(64, 64)
    work = machine.Workload("mm64", lambda: calls.append(a @ a), 2.0 * 64**3, 3 * 64 * 64 * 4.0)
    roof = machine.measure_roofline([work], threads=1, rounds=3)
    assert torch.get_num_threads() == before
    assert roof.threads == 1 and roof.rounds == 3 and len(calls) >= 2 + 3
    assert roof.peak_flops > 0 and roof.dram_bandwidth > 0 and roof.cache_bandwidth > 0
    assert roof.points() == [("mm64", pytest.approx(2 * 64 / 12), roof.achieved["mm64"])]
    assert roof.cache_buffer_bytes <= roof.cache_bytes // 2 < roof.cache_bytes < roof.dram_buffer_bytes


@pytest.mark.parametrize("call,error", [
    (lambda: machine.measure_roofline([], 1), ValueError),
    (lambda: machine.measure_roofline("abc", 1), ValueError),
    (lambda: machine.measure_roofline([("a", print, 1.0, 1.0)], 1), TypeError),
    (lambda: machine.measure_roofline([machine.Workload("a", print, 0.0, 1.0)], 1), ValueError),
    (lambda: machine.measure_roofline([machine.Workload("a", print, 1.0, -1.0)], 1), ValueError),
    (lambda: machine.measure_roofline([machine.Workload("a", None, 1.0, 1.0)], 1), ValueError),
    (lambda: machine.measure_roofline([machine.Workload("a", print, 1.0, 1.0)] * 2, 1), ValueError),
    (lambda: machine.measure_roofline([machine.Workload("a", print, 1.0, 1.0)], 0), ValueError),
    (lambda: machine.measure_roofline([machine.Workload("a", print, 1.0, 1.0)], 1.5), ValueError),
    (lambda: machine.measure_roofline([machine.Workload("a", print, 1.0, 1.0)], 1, rounds=2), ValueError),
    (lambda: machine.measure_roofline([machine.Workload("a", print, 1.0, 1.0)], 1, min_sample_s=0), ValueError),
    (lambda: plotting.plot_roofline(0.0, 1e9, []), ValueError),
    (lambda: plotting.plot_roofline(1e9, 1e9, [], cache_bandwidth=-1.0), ValueError),
])
def test_bad_input_raises_clear_errors(call, error):
    with pytest.raises(error, match="expected"):
        call()


def test_cache_sizes_from_sysfs(tmp_path, monkeypatch):
    for index, (level, kind, size) in enumerate([(1, "Data", "32K"), (1, "Instruction", "32K"),
                                                 (2, "Unified", "512K"), (3, "Unified", "32768K")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(f"{value}\n")
    monkeypatch.setattr(machine, "CACHE_SYSFS", tmp_path)
    assert machine.cache_sizes() == {1: 32 * 2**10, 2: 512 * 2**10, 3: 32 * 2**20}
    # Cache roof: 2x the private L2 of the threads, at most half the LLC; DRAM roof: 4x the LLC, at least 64 MiB.
    assert machine.bandwidth_buffer_sizes(2) == (32 * 2**20, 2 * 2**20, 128 * 2**20)
    assert machine.bandwidth_buffer_sizes(64) == (32 * 2**20, 16 * 2**20, 128 * 2**20)
    monkeypatch.setattr(machine, "CACHE_SYSFS", tmp_path / "absent")
    assert machine.cache_sizes() == machine.DEFAULT_CACHES


def test_plot_roofline_draws_both_roofs_and_the_points():
    fig = plotting.plot_roofline(100e9, 10e9, [("a", 2.0, 15e9), ("b", 50.0, 80e9)], 40e9, "LLC")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(label.startswith("DRAM roof") for label in labels)
    assert any(label.startswith("LLC roof") for label in labels)
    assert sum(label.startswith("_") for label in labels) == 2  # the two points
    dram, llc = fig.axes[0].get_lines()[:2]
    assert max(dram.get_ydata()) == pytest.approx(100.0) and max(llc.get_ydata()) == pytest.approx(100.0)
