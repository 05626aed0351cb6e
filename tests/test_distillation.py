"""Lab 05's library (tinyml_lib.distillation, generated from the lab) against independent references: PyTorch's
softmax, kl_div and mse_loss, the soft term's analytic gradient T (q - p) / B, the attention map written out, and the
fused kernel (kernels/softmax_kl.cu) against the loss."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinyml_lib.distillation.features import attention_map, fitnet_hint_loss
from tinyml_lib.distillation.soft_targets import kd_loss, softmax_with_temperature
from tinyml_lib.kernels.softmax_kl import softmax_kl


def logits(b=32, c=10, scale=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(b, c, generator=g, dtype=torch.float64), scale * torch.randn(b, c, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0, 20.0])
def test_softmax_with_temperature_is_torchs(temperature):
    z, _ = logits()
    torch.testing.assert_close(softmax_with_temperature(z, temperature), torch.softmax(z / temperature, -1))
    assert torch.isfinite(softmax_with_temperature(torch.tensor([[1e30, 0.0]]), 1.0)).all()


@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (4.0, 0.9), (10.0, 1.0), (2.0, 0.0)])
def test_kd_loss_is_kl_div_and_cross_entropy(temperature, alpha):
    s, t = logits()
    y = torch.arange(32) % 10
    want = alpha * temperature ** 2 * F.kl_div(F.log_softmax(s / temperature, 1), F.log_softmax(t / temperature, 1),
                                               reduction="batchmean", log_target=True) + (1 - alpha) * F.cross_entropy(s, y)
    torch.testing.assert_close(kd_loss(s, t, y, temperature, alpha), want)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 20.0])
def test_soft_term_gradient_is_t_times_q_minus_p_over_b(temperature):
    """d/ds [T^2 KL(p_T || q_T)] with batchmean = T (q_T - p_T) / B (Hinton et al., Sec. 2.1)."""
    s, t = logits(b=16)
    s.requires_grad_()
    kd_loss(s, t, torch.zeros(16, dtype=torch.long), temperature, 1.0).backward()
    p, q = torch.softmax(t / temperature, 1), torch.softmax(s.detach() / temperature, 1)
    torch.testing.assert_close(s.grad, temperature * (q - p) / 16)


def test_the_fused_kernel_is_the_soft_term():
    s, t = logits(b=8, c=300)
    kl = softmax_kl(t.float().numpy(), s.float().numpy(), 4.0)
    loss = kd_loss(s, t, torch.zeros(8, dtype=torch.long), 4.0, 1.0)
    assert 16 * float(np.mean(kl)) == pytest.approx(float(loss), rel=1e-5)


def test_attention_map_written_out():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, 5, generator=g)
    q = (x[:, 0] ** 2 + x[:, 1] ** 2 + x[:, 2] ** 2).reshape(2, 20)
    torch.testing.assert_close(attention_map(x), q / q.norm(dim=1, keepdim=True))


def test_fitnet_hint_loss_is_mse_through_the_regressor():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(4, 3, 5, 5, generator=g), torch.randn(4, 6, 5, 5, generator=g)
    reg = nn.Conv2d(3, 6, 1)
    torch.testing.assert_close(fitnet_hint_loss(s, t, reg), F.mse_loss(reg(s), t))
    with pytest.raises(ValueError, match="channels"):
        fitnet_hint_loss(s, t, nn.Conv2d(3, 5, 1))
