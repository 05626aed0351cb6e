"""Lab 04's once-for-all supernet: shapes, an independent extraction of subnets, kernel transform, errors, BN
recalibration, and MACs three ways (Lab 01's counter on the extraction, PyTorch's FLOP counter, a formula here)."""
import copy
import importlib.util
import math
import random
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tinyml_lib.data import nas as nas_data
from tinyml_lib.metrics import count_macs, count_params
from tinyml_lib.nas.space import sample_subnet
from tinyml_lib.models import vgg_like
from tinyml_lib.supernet import (DynamicBatchNorm2d, Supernet, SubnetConfig, SupernetSpace, depthwise_dense,
                                 recalibrate_bn, resize)

ROOT = Path(__file__).resolve().parents[1]

SPACE = SupernetSpace()
WIDTHS = {1.0: (24, 32, 48), 0.75: (20, 24, 36)}  # stage channels, written out: 0.75 * (24, 32, 48) to multiples of 4


def script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "data" / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN = script("train_supernet")
DATASET = script("make_subnet_dataset")


def random_configs(n, seed=0):
    rng = random.Random(seed)
    return [sample_subnet(SPACE, rng) for _ in range(n)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one thread is as fast and does not spin against a loaded machine's other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def net():
    """A supernet whose BN statistics, affine parameters and kernel transforms are all far from their init."""
    torch.manual_seed(0)
    model = Supernet(SPACE)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
        for name, p in model.named_parameters():
            if "transforms" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


# --- an independent extraction: the static network a student's extract_subnet should build -----------------------

def transformed_kernel(weight7, matrices, k):
    """Centre 5x5 of the 7x7 times M_7to5, then centre 3x3 of that times M_5to3 (OFA Sec. 3.2), per channel."""
    w = weight7
    for big, small in ((7, 5), (5, 3)):
        if k == big:
            break
        lo = (big - small) // 2
        flat = w[:, 0, lo:lo + small, lo:lo + small].reshape(len(w), small * small)
        w = torch.einsum("ij,cj->ci", matrices[f"{big}to{small}"], flat).reshape(len(w), 1, small, small)
    return w


def sliced_bn(bn, c):
    out = nn.BatchNorm2d(c)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(out, name).copy_(getattr(bn, name)[:c])
    return out


def conv(weight, stride=1, groups=1):
    c_out, c_in_per_group, k, _ = weight.shape
    layer = nn.Conv2d(c_in_per_group * groups, c_out, k, stride, k // 2, groups=groups, bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


class Residual(nn.Module):
    def __init__(self, body, residual):
        super().__init__()
        self.body, self.residual = body, residual

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def extract_subnet(net, config):
    layers, c_in = [copy.deepcopy(net.stem), copy.deepcopy(net.first)], SPACE.stem_channels
    for s, c_out in enumerate(WIDTHS[config.width]):
        for b in range(config.depths[s]):
            block, k, e = net.stages[s][b], config.kernels[s][b], config.expands[s][b]
            stride, hidden = (SPACE.stage_strides[s] if b == 0 else 1), e * c_in
            kernel = transformed_kernel(block.depthwise.weight[:hidden].detach(), block.depthwise.transforms, k)
            body = nn.Sequential(conv(block.expand.weight[:hidden, :c_in]), sliced_bn(block.bn1, hidden), nn.ReLU6(),
                                 conv(kernel, stride, groups=hidden), sliced_bn(block.bn2, hidden), nn.ReLU6(),
                                 conv(block.project.weight[:c_out, :hidden]), sliced_bn(block.bn3, c_out))
            layers.append(Residual(body, stride == 1 and c_in == c_out))
            c_in = c_out
    layers += [conv(net.head.weight[:, :c_in]), copy.deepcopy(net.head_bn), nn.ReLU6(), nn.AdaptiveAvgPool2d(1),
               nn.Flatten(), copy.deepcopy(net.classifier)]
    return nn.Sequential(*layers).eval()


def analytic_macs(config):
    """MACs of one image: stem, first block, elastic blocks, head, classifier, from the layer shapes."""
    h = math.ceil(config.resolution / 2)
    stem = SPACE.stem_channels
    macs = 9 * SPACE.in_channels * stem * h * h + 9 * stem * h * h + stem * stem * h * h
    c_in = stem
    for s, c_out in enumerate(WIDTHS[config.width]):
        for b in range(config.depths[s]):
            h_out = math.ceil(h / (SPACE.stage_strides[s] if b == 0 else 1))
            k, hidden = config.kernels[s][b], config.expands[s][b] * c_in
            macs += c_in * hidden * h * h + k * k * hidden * h_out ** 2 + hidden * c_out * h_out ** 2
            c_in, h = c_out, h_out
    return macs + c_in * SPACE.head_channels * h * h + SPACE.head_channels * SPACE.num_classes


# --- tests ---------------------------------------------------------------------------------------------------------

def test_forward_shapes_at_every_resolution(net):
    for r in SPACE.resolutions:
        configs = [SubnetConfig(r, c.width, c.depths, c.kernels, c.expands)
                   for c in [SPACE.largest(), SPACE.smallest()] + random_configs(2, seed=r)]
        for config in configs:
            assert net(resize(torch.randn(3, 1, 28, 28), r), config).shape == (3, 10)
    assert SPACE.largest().resolution == 28 and SPACE.smallest().depths == (1, 1, 1)


def test_resize():
    x = torch.randn(2, 1, 28, 28)
    assert resize(x, 28) is x and resize(x, 20).shape == (2, 1, 20, 20)
    assert torch.allclose(resize(torch.ones(1, 1, 28, 28), 24), torch.ones(1, 1, 24, 24), atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_supernet_equals_a_static_module_of_sliced_weights(net, seed):
    configs = random_configs(3, seed=seed) + ([SPACE.largest(), SPACE.smallest()] if seed == 0 else [])
    for config in configs:
        x = torch.randn(4, 1, config.resolution, config.resolution)
        static = extract_subnet(net, config)
        with torch.no_grad():
            assert torch.allclose(net(x, config), static(x), atol=1e-5), config
        # train mode, with autograd on (the depthwise layers' dense path): both use batch statistics
        same = torch.allclose(net.train()(x, config), static.train()(x), atol=1e-5)
        net.eval()
        assert same, config


@pytest.mark.parametrize("channels, size, kernel, stride", [(5, 7, 7, 1), (3, 4, 7, 1), (4, 14, 7, 2), (2, 5, 5, 2),
                                                            (3, 3, 7, 1), (2, 9, 3, 2), (1, 1, 5, 1)])
def test_dense_depthwise_equals_conv2d_with_gradients(channels, size, kernel, stride):
    x = torch.randn(3, channels, size, size, requires_grad=True)
    w = torch.randn(channels, 1, kernel, kernel, requires_grad=True)
    ref = F.conv2d(x, w, stride=stride, padding=kernel // 2, groups=channels)
    out = depthwise_dense(x, w, stride)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (x, w))
    for got, expected in zip(grads, torch.autograd.grad(ref.square().sum(), (x, w))):
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_kernel_transform_at_identity_is_the_centre_crop():
    fresh = Supernet(SPACE)
    dw = fresh.stages[1][0].depthwise
    assert dw.weight.shape == (144, 1, 7, 7) and set(dw.transforms) == {"7to5", "5to3"}
    assert torch.equal(dw.kernel(100, 7), dw.weight[:100])
    assert torch.equal(dw.kernel(100, 5), dw.weight[:100, :, 1:6, 1:6])
    assert torch.equal(dw.kernel(100, 3), dw.weight[:100, :, 2:5, 2:5])
    with torch.no_grad():
        dw.transforms["7to5"].mul_(2.0)
    assert torch.allclose(dw.kernel(8, 3), 2 * dw.weight[:8, :, 2:5, 2:5])  # 3x3 crops the *transformed* 5x5


def changed(config, **fields):
    values = dict(resolution=config.resolution, width=config.width, depths=config.depths, kernels=config.kernels,
                  expands=config.expands)
    return SubnetConfig(**{**values, **fields})


@pytest.mark.parametrize("make, message", [
    (lambda c: changed(c, kernels=((4, 7, 7),) + c.kernels[1:]),
     r"kernels\[0\]\[0\]: expected one of \(3, 5, 7\), got 4"),
    (lambda c: changed(c, expands=(c.expands[0], (6, 5, 6), c.expands[2])), r"expands\[1\]\[1\].*got 5"),
    (lambda c: changed(c, depths=(3, 0, 3), kernels=(c.kernels[0], (), c.kernels[2]),
                       expands=(c.expands[0], (), c.expands[2])), r"depths\[1\]: expected one of \(1, 2, 3\), got 0"),
    (lambda c: changed(c, resolution=30), r"resolution: expected one of \(20, 24, 28\), got 30"),
    (lambda c: changed(c, width=0.5), r"width: expected one of \(0.75, 1.0\), got 0.5"),
    (lambda c: changed(c, depths=(3, 3), kernels=c.kernels[:2], expands=c.expands[:2]), "expected 3 stages"),
])
def test_bad_configs_raise_clear_errors(net, make, message):
    with pytest.raises(ValueError, match=message):
        net(torch.zeros(1, 1, 28, 28), make(SPACE.largest()))


def test_a_config_of_the_wrong_type_raises_type_error(net):
    with pytest.raises(TypeError, match="config: expected a SubnetConfig, got str"):
        net(torch.zeros(1, 1, 28, 28), "largest")


@pytest.mark.parametrize("fields, error, message", [
    (dict(depths=(2, 3, 3)), ValueError, r"kernels\[0\]: expected 2 values"),
    (dict(resolution=28.0), TypeError, "resolution: expected an int"),
    (dict(kernels=((7, 7, 7.0),) * 3), TypeError, "expected a tuple of ints"),
    (dict(expands=((6, 6, 6),) * 2), ValueError, "one tuple per stage"),
])
def test_malformed_configs_raise_on_construction(fields, error, message):
    with pytest.raises(error, match=message):
        changed(SPACE.largest(), **fields)


def test_configs_are_hashable_and_lists_become_tuples():
    c = SubnetConfig(24, 1, [1, 2, 1], [[3], [5, 7], [3]], [[3], [4, 6], [6]])
    assert c == SubnetConfig(24, 1.0, (1, 2, 1), ((3,), (5, 7), (3,)), ((3,), (4, 6), (6,))) and len({c, c}) == 1


def test_input_at_the_wrong_resolution_raises(net):
    with pytest.raises(ValueError, match=r"expected \(B, 1, 20, 20\) for resolution 20 .*got \(1, 1, 28, 28\)"):
        net(torch.zeros(1, 1, 28, 28), SPACE.smallest())


def test_recalibrate_bn_sets_the_used_channels_to_batch_statistics(net):
    model = copy.deepcopy(net).train()
    model.stem[0].train(False)  # a mixed mode, to see it restored
    modes = {name: m.training for name, m in model.named_modules()}
    config = random_configs(1, seed=7)[0]
    before = {name: (m.running_mean.clone(), m.running_var.clone()) for name, m in model.named_modules()
              if isinstance(m, nn.BatchNorm2d)}
    inputs = {}
    hooks = [m.register_forward_pre_hook(lambda m, i, name=name: inputs.setdefault(name, []).append(i[0]))
             for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    x = torch.randn(60, 1, 28, 28)
    recalibrate_bn(model, config, x, batch=40)  # batches of 40 and 20: a cumulative average of the two
    for h in hooks:
        h.remove()
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert any(isinstance(m, DynamicBatchNorm2d) for m in model.modules())
    for name, m in model.named_modules():
        if not isinstance(m, nn.BatchNorm2d):
            continue
        mean0, var0 = before[name]
        if name not in inputs:  # a skipped block: untouched
            assert torch.equal(m.running_mean, mean0) and torch.equal(m.running_var, var0), name
            continue
        assert [len(t) for t in inputs[name]] == [40, 20]
        c = inputs[name][0].shape[1]
        mean = sum(t.mean((0, 2, 3)) for t in inputs[name]) / 2
        var = sum(t.transpose(0, 1).flatten(1).var(1) for t in inputs[name]) / 2  # unbiased, as BN's running var
        assert torch.allclose(m.running_mean[:c], mean, atol=1e-5), name
        assert torch.allclose(m.running_var[:c], var, rtol=1e-4, atol=1e-5), name
        assert torch.equal(m.running_mean[c:], mean0[c:]) and torch.equal(m.running_var[c:], var0[c:]), name


def test_recalibrate_bn_on_a_plain_module_and_bad_input():
    model = vgg_like().eval()
    x = torch.randn(30, 1, 28, 28)
    recalibrate_bn(model, None, x)
    first = model[1]
    assert not model.training and first.momentum == 0.1
    assert torch.allclose(first.running_mean, model[0](x).mean((0, 2, 3)), atol=1e-5)
    with pytest.raises(ValueError, match="config: expected the SubnetConfig"):
        recalibrate_bn(Supernet(SPACE), None, x)
    with pytest.raises(ValueError, match="N >= 1"):
        recalibrate_bn(model, None, x[:0])


@pytest.mark.parametrize("which", ["largest", "smallest", "random"])
def test_macs_three_ways(net, which):
    configs = {"largest": [SPACE.largest()], "smallest": [SPACE.smallest()], "random": random_configs(3, seed=3)}
    for config in configs[which]:
        expected = analytic_macs(config)
        r = config.resolution
        assert count_macs(extract_subnet(net, config), (1, 1, r, r)) == expected, config
        assert DATASET.subnet_macs(net, config) == expected, config
    if which == "largest":
        assert expected == 5_002_368 and count_params(extract_subnet(net, config)) == 218_954
    if which == "smallest":
        assert expected == 301_284 and count_params(extract_subnet(net, config)) == 17_982


def test_dataset_rows_round_trip():
    for config in random_configs(5, seed=11) + [SPACE.largest(), SPACE.smallest()]:
        row = nas_data.to_row(SPACE, config, 123, 90.5)
        header = nas_data.columns(SPACE)
        assert len(row) == len(header) == 2 + 3 + 9 + 9 + 2
        assert nas_data.from_row(SPACE, {k: str(v) for k, v in zip(header, row)}) == config


def test_a_sandwich_step_reaches_the_kernel_transforms():
    torch.manual_seed(0)
    model = Supernet(SPACE).train()
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    losses = TRAIN.sandwich_step(model, x, y, [SPACE.largest(), SPACE.smallest()], smoothing=0.05)
    assert all(math.isfinite(v) and v > 0 for v in losses.values())
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert grads["stages.0.0.depthwise.transforms.5to3"].abs().sum() > 0  # the smallest's 3x3 kernels train them
    assert grads["stages.2.2.depthwise.weight"].abs().sum() > 0  # only the largest runs a third block
    assert grads["stages.2.2.expand.weight"][:, 36:].abs().sum() > 0  # ... and the channels of width 1.0
