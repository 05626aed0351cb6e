"""The library's copy of Lab 01's graded functions (generated from the solution notebook) and the course models."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tinyml_lib import metrics
from tinyml_lib.models import alexnet, mobilenetv2_like, vgg_like
from tinyml_lib.tracing import LayerRecord, trace_layers


def torch_macs(model, shape):
    with FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(shape, device=next(model.parameters()).device))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("build,shape", [(alexnet, (1, 3, 224, 224)), (vgg_like, (2, 1, 28, 28)),
                                         (mobilenetv2_like, (3, 1, 28, 28))])
def test_macs_match_pytorch_counter(build, shape):
    assert metrics.count_macs(build(), shape) == torch_macs(build(), shape)


@settings(max_examples=25, deadline=None)
@given(c_in=st.integers(1, 4), c_out_mult=st.integers(1, 3), groups=st.sampled_from([1, 2]), k=st.integers(1, 3),
       size=st.integers(3, 9), stride=st.integers(1, 2))
def test_conv_macs_property(c_in, c_out_mult, groups, k, size, stride):
    c_in, c_out = c_in * groups, c_out_mult * groups
    model = nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, groups=groups))
    assert metrics.count_macs(model, (1, c_in, size, size)) == torch_macs(model, (1, c_in, size, size))


def test_alexnet_activation_numbers_from_the_notes():
    assert metrics.activation_memory(trace_layers(alexnet(), (1, 3, 224, 224))) == (932_264, 440_928)


def test_params_and_size():
    assert metrics.count_params(alexnet()) == 62_378_344
    assert metrics.model_size_bytes(nn.Linear(10, 10), 4) == 55.0


@pytest.mark.parametrize("call", [
    lambda: metrics.count_params("not a model"),
    lambda: metrics.model_size_bytes(nn.Linear(1, 1), 0),
    lambda: metrics.activation_memory([]),
    lambda: metrics.measure_latency(lambda: None, repeats=0),
    lambda: metrics.roofline_bound(1.0, -1.0, 1.0),
    lambda: metrics.estimate_energy_pj(-1, 0),
    lambda: trace_layers(nn.Linear(2, 2), (0, 2)),
])
def test_bad_input_raises_clear_errors(call):
    with pytest.raises((TypeError, ValueError), match="expected"):
        call()


def test_roofline_and_energy_values():
    assert metrics.roofline_bound(1.0, 10.0, 2.0) == (2.0, "memory")
    assert metrics.estimate_energy_pj(0, 4) == pytest.approx(640.0)
    fc = LayerRecord("fc", nn.Linear(8, 8, bias=False), (8,), (8,))
    assert metrics.arithmetic_intensity(fc) == pytest.approx(2 * 64 / ((64 + 16) * 4))


def test_models_shapes_and_meta_alexnet():
    assert vgg_like()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert mobilenetv2_like()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert next(alexnet().parameters()).is_meta  # counted, never materialised
    depthwise = [m for m in mobilenetv2_like().modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)


def test_trace_layers_restores_mode_and_records_shapes():
    net = vgg_like().train()
    records = trace_layers(net, (1, 1, 28, 28))
    assert net.training
    assert records[0].in_shape == (1, 28, 28) and records[-1].out_shape == (10,)
    assert math.prod(records[0].out_shape) == 16 * 28 * 28


def test_measure_latency_statistics_on_known_durations():
    # Calls of 1, 1, 1, 1 and 10 ms on a fake clock: median 1, mean 2.8, min 1, p90 6.4 and p99 9.64 (NumPy's linear
    # interpolation between order statistics: rank 0.9 * 4 = 3.6 -> 1 + 0.6 * 9).
    clock, durations = [0.0], iter([5.0, 1.0, 1.0, 1.0, 1.0, 10.0])   # the first is the warm-up call

    def work():
        clock[0] += next(durations) * 1e-3

    stats = metrics.measure_latency(work, warmup=1, repeats=5, timer=lambda: clock[0])
    assert stats == pytest.approx({"median_ms": 1.0, "mean_ms": 2.8, "min_ms": 1.0, "p90_ms": 6.4, "p99_ms": 9.64})


def test_energy_and_intensity_on_hand_worked_layers():
    # 10 MACs at 4.6 pJ and 8 SRAM bytes at 1.25 pJ; a bias-free Linear(8, 8) on a batch of 4 moves 256 B of
    # weights and 128 B in and out each for 2 * 8 * 8 * 4 = 512 FLOPs.
    assert metrics.estimate_energy_pj(10, 0, 8) == pytest.approx(56.0)
    fc = LayerRecord("fc", nn.Linear(8, 8, bias=False), (8,), (8,))
    assert metrics.arithmetic_intensity(fc, batch=4) == pytest.approx(1.0)
