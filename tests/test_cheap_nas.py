"""Lab 04b's library (tinyml_lib.cheap_nas, generated from the lab) against independent references: the trained
MobileNetV2 checkpoint's logits before and after growth, activation codes read from module outputs with scipy's
Hamming distance, and the Zen-score written out in torch.nn.functional."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from torch import nn
from torch.nn import functional as F

from test_supernet import SPACE, net, one_thread, random_configs  # noqa: F401 (fixtures)
from tinyml_lib.checkpoints import load_checkpoint
from tinyml_lib.cheap_nas.net2net import identity_conv_bn_relu, widen_inverted_residual
from tinyml_lib.cheap_nas.proxies import naswot_score, zen_score
from tinyml_lib.data import load_fashion_mnist
from tinyml_lib.models import InvertedResidual
from tinyml_lib.nas.extraction import extract_subnet
from tinyml_lib.supernet import Supernet, resize
from tinyml_lib.training import TrainConfig, accuracy, learning_curve, train_classifier


@pytest.fixture(scope="module")
def mobilenet():
    """The shipped, trained MobileNetV2-like model and 200 validation images."""
    model, _ = load_checkpoint("mobilenetv2")
    return model.eval(), load_fashion_mnist("val", 200, seed=0)[0]


def test_growing_a_trained_mobilenet_keeps_its_logits(mobilenet):
    model, x = mobilenet
    gen = torch.Generator().manual_seed(0)
    layers = [widen_inverted_residual(m, 8, gen) if isinstance(m, InvertedResidual) and len(m.block) == 3 else m
              for m in model]
    with torch.no_grad():
        stem = model[0](x)
    grown = nn.Sequential(layers[0], identity_conv_bn_relu(stem, 3), *layers[1:]).eval()
    assert sum(p.numel() for p in grown.parameters()) > 1.2 * sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(grown(x), model(x), rtol=1e-4, atol=1e-4)


def test_widening_every_block_of_random_subnets_of_a_perturbed_supernet(net):
    gen = torch.Generator().manual_seed(1)
    for config in random_configs(6, seed=3):
        subnet = extract_subnet(net, config)
        x = torch.randn(3, 1, config.resolution, config.resolution)
        for i, layer in enumerate(subnet):
            if isinstance(layer, InvertedResidual) and len(layer.block) == 3:
                subnet_wide = nn.Sequential(*subnet[:i], widen_inverted_residual(layer, 6, gen), *subnet[i + 1:])
                with torch.no_grad():
                    torch.testing.assert_close(subnet_wide(x), subnet(x), rtol=1e-4, atol=1e-4)


def test_widened_copies_split_their_outgoing_weight_by_the_copy_count():
    """Net2Net's Eq.: column j of the next layer is the old column g(j) / |{j' : g(j') = g(j)}|."""
    block = InvertedResidual(4, 4, 1, 2).eval()
    gen = torch.Generator().manual_seed(0)
    wide = widen_inverted_residual(block, 5, gen)      # hidden 8 -> 20
    g = torch.cat([torch.arange(8), torch.randint(8, (12,), generator=torch.Generator().manual_seed(0))])
    old, new = block.block[2][0].weight[:, :, 0, 0], wide.block[2][0].weight[:, :, 0, 0]
    for j in range(20):
        torch.testing.assert_close(new[:, j], old[:, g[j]] / int((g == g[j]).sum()))


def test_the_identity_layer_trains_from_the_identity():
    """One SGD step on the inserted layer alone moves it off the identity (gradients flow), starting from it."""
    x = 6 * torch.rand(32, 4, 5, 5)
    layer = identity_conv_bn_relu(x, 3).train()
    torch.testing.assert_close(layer(x), x, rtol=1e-4, atol=1e-4)
    loss = (layer(x) - x.flip(0)).pow(2).mean()
    loss.backward()
    assert layer[0].weight.grad.abs().sum() > 0 and layer[1].weight.grad.abs().sum() > 0


def independent_naswot(model: nn.Module, x: torch.Tensor) -> float:
    """Codes read from the activations' outputs (> 0 exactly when the input is > 0), K from scipy's Hamming distance."""
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o.flatten(1) > 0))
             for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    model.load_state_dict(state)
    codes = torch.cat(outputs, 1).numpy()
    return float(np.linalg.slogdet(codes.shape[1] * (1 - cdist(codes, codes, "hamming")))[1])


def test_naswot_equals_an_independent_count_on_random_init_subnets():
    torch.manual_seed(0)
    fresh = Supernet(SPACE)
    x28 = load_fashion_mnist("train", 16, seed=0)[0]
    for config in random_configs(4, seed=5):
        subnet, x = extract_subnet(fresh, config), resize(x28, config.resolution)
        assert naswot_score(subnet, x) == pytest.approx(independent_naswot(subnet, x), rel=1e-9, abs=1e-9)


def test_naswot_ignores_the_order_of_the_batch_and_sees_a_repeated_image():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU())
    x = torch.randn(10, 5)
    assert naswot_score(model, x) == pytest.approx(naswot_score(model, x.flip(0)), rel=1e-12)
    assert naswot_score(model, torch.cat([x, x[:1]])) == -math.inf
    with pytest.raises(ValueError, match="ReLU"):
        naswot_score(nn.Sequential(nn.Linear(5, 2)), x)


def functional_zen(channels: tuple[int, ...], shape, alpha: float, seed: int) -> float:
    """Zen-score of a chain of 3x3 conv-BN-ReLU layers (Gaussian weights, batch statistics), in torch.nn.functional."""
    gen = torch.Generator().manual_seed(seed)
    weights = [torch.randn(c_out, c_in, 3, 3, generator=gen) for c_in, c_out in zip(channels, channels[1:])]
    x, eps = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    log_scales = []

    def f(v, record):
        for w in weights:
            v = F.conv2d(v, w, padding=1)
            if record:
                log_scales.append(0.5 * math.log(v.var((0, 2, 3), unbiased=False).mean()))
            v = F.relu(F.batch_norm(v, None, None, training=True))
        return v

    delta = (f(x, True) - f(x + alpha * eps, False)).flatten(1).norm(dim=1).mean()
    return math.log(delta) + sum(log_scales)


@pytest.mark.parametrize("channels", [(2, 6), (3, 8, 8, 4)])
def test_zen_score_equals_a_functional_reference(channels):
    layers = []
    for c_in, c_out in zip(channels, channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    model = nn.Sequential(*layers)
    shape = (8, channels[0], 6, 6)
    got = zen_score(model, shape, 0.01, torch.Generator().manual_seed(4))
    assert got == pytest.approx(functional_zen(channels, shape, 0.01, 4), rel=1e-5, abs=1e-5)


def test_zen_score_sees_the_architecture_not_the_weights():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=1))
    other = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=1))
    a = zen_score(model, (4, 1, 8, 8), 0.01, torch.Generator().manual_seed(0))
    assert a == zen_score(other, (4, 1, 8, 8), 0.01, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="alpha"):
        zen_score(model, (4, 1, 8, 8), 0.0, torch.Generator())


def test_train_classifier_calls_on_step_after_every_step_in_train_mode():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.BatchNorm1d(2))
    x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    seen = []

    def on_step(step):
        seen.append((step, model.training))
        model.eval()   # e.g. an evaluation: train_classifier puts train mode back

    train_classifier(model, loader, TrainConfig(epochs=2), progress=False, on_step=on_step)
    assert seen == [(step, True) for step in range(1, 11)]


def test_learning_curve_records_every_few_steps():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    curve, on_step = learning_curve(model, x, y, every=3)
    train_classifier(model, loader, TrainConfig(epochs=2), progress=False, on_step=on_step)
    assert [step for step, _ in curve] == [0, 3, 6, 9]
    assert curve[-1][1] == accuracy(model, x, y)
    with pytest.raises(ValueError, match="every"):
        learning_curve(model, x, y, every=0)
