"""Lab 05b's library (tinyml_lib.tiny_training, generated from the lab) against independent references: PyTorch's
kl_div and autograd for deep mutual learning, ordinary nn.Conv2d / nn.BatchNorm2d layers holding copies of the
slices for NetAug (at the tiny width and at the full augmented width), and the pruned weights read back after
fine-tuning."""
import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tinyml_lib.checkpoints import load_checkpoint
from tinyml_lib.data import load_fashion_mnist
from tinyml_lib.models import STUDENT_CONFIG, VGGConfig, vgg_like
from tinyml_lib.pruning import magnitude_mask, prunable_weights
from tinyml_lib.tiny_training.mutual import mutual_losses
from tinyml_lib.tiny_training.netaug import AugmentedVGG, netaug_loss, sliced_conv_bn_relu, tiny_model
from tinyml_lib.tiny_training.repair import finetune_compressed
from tinyml_lib.training import TrainConfig


def kl(p_logits, q_logits):
    """KL(p || q) from logits, PyTorch's kl_div (batch mean)."""
    return F.kl_div(F.log_softmax(q_logits, 1), F.log_softmax(p_logits, 1), reduction="batchmean", log_target=True)


@pytest.mark.parametrize("scale", [0.1, 3.0, 300.0])
def test_mutual_losses_equal_cross_entropy_plus_kl_and_their_gradients(scale):
    g = torch.Generator().manual_seed(0)
    a, b = scale * torch.randn(32, 7, generator=g, dtype=torch.float64), scale * torch.randn(32, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 7, (32,), generator=g)
    a.requires_grad_(), b.requires_grad_()
    loss_a, loss_b = mutual_losses(a, b, y)
    torch.testing.assert_close(loss_a, F.cross_entropy(a, y) + kl(b.detach(), a))
    torch.testing.assert_close(loss_b, F.cross_entropy(b, y) + kl(a.detach(), b))
    grad_a, grad_b = torch.autograd.grad(loss_a + loss_b, (a, b), retain_graph=True)
    ref_a = torch.autograd.grad(F.cross_entropy(a, y) + kl(b.detach(), a), a)[0]
    ref_b = torch.autograd.grad(F.cross_entropy(b, y) + kl(a.detach(), b), b)[0]
    torch.testing.assert_close(grad_a, ref_a)   # the sum's gradient for each student is its own loss's
    torch.testing.assert_close(grad_b, ref_b)
    # d(KL(p_b || p_a)) / d(logits_a) = (p_a - p_b) / B: the peer's distribution is the target
    kl_grad = torch.autograd.grad(loss_a - F.cross_entropy(a, y), a)[0]
    torch.testing.assert_close(kl_grad, (a.softmax(1) - b.softmax(1)).detach() / 32)


def test_mutual_losses_reject_mismatched_students():
    with pytest.raises(ValueError, match="one shape"):
        mutual_losses(torch.zeros(4, 10), torch.zeros(4, 9), torch.zeros(4, dtype=torch.long))


def copied_layer(conv, bn, c_in, c_out):
    """An ordinary conv + BN holding copies of the slice."""
    small_conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    small_bn = nn.BatchNorm2d(c_out)
    with torch.no_grad():
        small_conv.weight.copy_(conv.weight[:c_out, :c_in])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(small_bn, name).copy_(getattr(bn, name)[:c_out])
    return small_conv, small_bn


@pytest.mark.parametrize("c_in,c_out", [(1, 1), (3, 5), (6, 12)])
def test_a_sliced_layer_equals_an_ordinary_layer_with_the_slice_copied(c_in, c_out):
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(6, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2), bn.bias.uniform_(-1, 1), bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    x = torch.randn(16, c_in, 7, 7)
    small_conv, small_bn = copied_layer(conv, bn, c_in, c_out)
    for mode in ("eval", "train"):
        conv.train(mode == "train"), bn.train(mode == "train"), small_bn.train(mode == "train")
        torch.testing.assert_close(sliced_conv_bn_relu(x, conv, bn, c_out, tiny=True), F.relu(small_bn(small_conv(x))),
                                   rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn.running_mean[:c_out], small_bn.running_mean)   # the slice updated in place
        torch.testing.assert_close(bn.running_var[:c_out], small_bn.running_var)


def test_an_augmented_width_uses_batch_statistics_and_leaves_the_running_ones():
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
    x = torch.randn(16, 4, 5, 5)
    reference = nn.BatchNorm2d(8, track_running_stats=False)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2), bn.bias.uniform_(-1, 1)
        reference.weight.copy_(bn.weight), reference.bias.copy_(bn.bias)
    for training in (True, False):
        bn.train(training)
        before = bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()
        torch.testing.assert_close(sliced_conv_bn_relu(x, conv, bn, 8, tiny=False), F.relu(reference(conv(x))),
                                   rtol=1e-5, atol=1e-5)
        assert all(torch.equal(u, v) for u, v in zip(before, (bn.running_mean, bn.running_var, bn.num_batches_tracked)))


def test_the_augmented_vgg_at_full_width_is_a_wide_vgg_and_at_width_one_the_tiny_model():
    config = VGGConfig(stages=(4, "M", 6, 6, "M"), num_classes=7)
    torch.manual_seed(2)
    model = AugmentedVGG(config, 3)
    with torch.no_grad():
        for bn in model.bns:
            bn.weight.uniform_(0.5, 2), bn.bias.uniform_(-1, 1), bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    wide = vgg_like(VGGConfig(stages=(12, "M", 18, 18, "M"), num_classes=7))
    with torch.no_grad():
        for theirs, ours in zip([m for m in wide if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))],
                                [m for pair in zip(model.convs, model.bns) for m in pair] + [model.fc]):
            theirs.load_state_dict(ours.state_dict())
    x = torch.randn(8, 1, 28, 28)
    wide.train()   # augmented widths always normalise with batch statistics
    torch.testing.assert_close(model(x, 3), wide(x), rtol=1e-5, atol=1e-5)
    model.eval()
    torch.testing.assert_close(tiny_model(model)(x), model(x, 1), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="width"):
        model(x, 4)


def test_netaug_gradients_reach_the_tiny_slice_from_both_terms():
    torch.manual_seed(3)
    model = AugmentedVGG(STUDENT_CONFIG, 2)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    netaug_loss(model, x, y, 2, 1.0).backward()
    both = model.convs[1].weight.grad.clone()
    assert both[16:].abs().sum() > 0 and both[:16, :8].abs().sum() > 0   # the augmented channels and the tiny slice
    model.zero_grad()
    F.cross_entropy(model(x, 1), y).backward()
    alone = model.convs[1].weight.grad
    assert alone[16:].abs().sum() == 0 and not torch.allclose(alone[:16, :8], both[:16, :8])
    with pytest.raises(ValueError, match="augmented width"):
        netaug_loss(model, x, y, 1, 1.0)


def test_finetuning_a_pruned_model_keeps_it_pruned_and_is_seeded():
    student, _ = load_checkpoint("student")
    teacher, _ = load_checkpoint("teacher")
    x, y = load_fashion_mnist("train", 256, seed=3)
    with torch.no_grad():
        logits = teacher.eval()(x)
    masks = {name: magnitude_mask(w.detach(), 0.7) for name, w in prunable_weights(student).items()}
    runs = []
    for _ in range(2):
        model = finetune_compressed(copy.deepcopy(student), x, y, logits, TrainConfig(epochs=2, lr=1e-3, seed=4),
                                    distill=True, masks=masks)
        for name, w in prunable_weights(model).items():
            assert (w[~masks[name]] == 0).all() and (w[masks[name]] != 0).float().mean() > 0.99, name
        runs.append(model(x[:16]))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="as many"):
        finetune_compressed(student, x, y[:10], logits, TrainConfig(epochs=1), distill=False)
