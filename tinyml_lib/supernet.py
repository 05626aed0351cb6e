"""A once-for-all (OFA) supernet for Fashion-MNIST: one set of MobileNetV2-like weights, many subnets (Lab 04).

Cai, Gan, Wang, Zhang, Han, "Once-for-All: Train One Network and Specialize it for Efficient Deployment", ICLR 2020.
A subnet (`SubnetConfig`) picks, from a `SupernetSpace`:
- the input resolution (20, 24 or 28: images are resized from 28 with `resize`),
- a width multiplier (0.75 or 1.0) applied to every elastic stage's output channels, rounded to a multiple of 4,
- a depth per stage (1-3): the first d blocks of the stage run, the others are skipped (OFA's elastic depth),
- per block a depthwise kernel size (3, 5, 7) and an expand ratio (3, 4, 6).

Elastic width and expand ratio keep the *first* channels of every weight, and of every BatchNorm's affine parameters
and running statistics (`DynamicBatchNorm2d`). Channels are not re-sorted by importance (OFA's progressive shrinking
does that; this supernet is trained with the sandwich rule, which trains the shared leading channels directly).

Elastic kernel size uses OFA's *learned kernel transformation* (ICLR 2020, Sec. 3.2), not a plain centre crop:
the 5x5 kernel is the centre 5x5 of the 7x7 kernel, flattened to 25 values and multiplied by a 25x25 matrix; the 3x3
kernel is the centre 3x3 of that *transformed* 5x5 kernel times a 9x9 matrix. One matrix pair per depthwise layer,
shared by its channels, initialised to the identity (so an untrained transform is exactly the centre crop) and
trained with the supernet.

Layout (channels for width 1.0; spatial size for a 28x28 / 20x20 input):
    stem      conv3x3 s2 1->16, BN, ReLU6                         14x14 / 10x10   fixed
    first     MobileNetV2 block, expand 1, dw3x3, 16->16, residual 14x14 / 10x10   fixed (as OFA's first block)
    stage 1   1-3 elastic blocks -> 24, first stride 2             7x7  / 5x5
    stage 2   1-3 elastic blocks -> 32, first stride 2             4x4  / 3x3
    stage 3   1-3 elastic blocks -> 48, stride 1                   4x4  / 3x3
    head      conv1x1 -> 128, BN, ReLU6; global average pool; linear 128 -> 10
An elastic block is MobileNetV2's inverted residual: 1x1 expand (expand ratio x its input channels), kxk depthwise,
1x1 linear projection; residual when the stride is 1 and input and output channels agree.

With autograd on (training), 5x5 and 7x7 depthwise layers run as one dense matrix per channel (`depthwise_dense`,
equal to F.conv2d and much faster to differentiate on CPU); evaluation runs F.conv2d.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from tinyml_lib.models import InvertedResidual, conv_bn_relu


def make_divisible(value: float, divisor: int = 4) -> int:
    """`value` rounded to the nearest multiple of `divisor`, never more than 10% below it (MobileNet's rounding)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Images resized to resolution x resolution (bilinear, antialiased); returned unchanged if already that size.

    Args:
        x: (B, C, H, W) float32 images, H = W (28 for Fashion-MNIST).
        resolution: output height and width, a positive int.
    Returns:
        (B, C, resolution, resolution) float32.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise TypeError(f"x: expected a (B, C, H, W) float tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise ValueError(f"resolution: expected a positive int, got {resolution!r}")
    if x.shape[-2:] == (resolution, resolution):
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)


def _int_tuple(value, name: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise TypeError(f"{name}: expected a tuple of ints, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class SubnetConfig:
    """One subnet of the supernet (hashable; lists are accepted and stored as tuples).

    resolution: input height = width in pixels.  width: width multiplier of the elastic stages.
    depths: (stages,) blocks per stage.  kernels, expands: per stage, a tuple of depths[s] depthwise kernel sizes and
    expand ratios of the stage's first depths[s] blocks, e.g. kernels=((7, 3), (5,), (3, 3, 3)) for depths=(2, 1, 3).
    Which values are allowed is the space's business: `SupernetSpace.check`.
    """
    resolution: int
    width: float
    depths: tuple[int, ...]
    kernels: tuple[tuple[int, ...], ...]
    expands: tuple[tuple[int, ...], ...]

    def __post_init__(self):
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int):
            raise TypeError(f"resolution: expected an int, got {self.resolution!r}")
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)):
            raise TypeError(f"width: expected a float, got {self.width!r}")
        object.__setattr__(self, "width", float(self.width))
        depths = _int_tuple(self.depths, "depths")
        object.__setattr__(self, "depths", depths)
        for name in ("kernels", "expands"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != len(depths):
                raise ValueError(f"{name}: expected one tuple per stage ({len(depths)} for depths={depths}), "
                                 f"got {value!r}")
            per_stage = tuple(_int_tuple(v, f"{name}[{s}]") for s, v in enumerate(value))
            for s, (v, d) in enumerate(zip(per_stage, depths)):
                if len(v) != d:
                    raise ValueError(f"{name}[{s}]: expected {d} values (depths[{s}] = {d}), got {v!r}")
            object.__setattr__(self, name, per_stage)


@dataclass(frozen=True)
class SupernetSpace:
    """The design space: the choices a subnet may take, and the fixed skeleton around them.

    stage_channels, stage_strides: (stages,) output channels at width 1.0 and the stride of each stage's first block.
    """
    resolutions: tuple[int, ...] = (20, 24, 28)
    widths: tuple[float, ...] = (0.75, 1.0)
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (1, 2, 3)
    stage_channels: tuple[int, ...] = (24, 32, 48)
    stage_strides: tuple[int, ...] = (2, 2, 1)
    stem_channels: int = 16
    head_channels: int = 128
    in_channels: int = 1
    num_classes: int = 10
    channel_divisor: int = field(default=4, repr=False)

    def __post_init__(self):
        for name in ("resolutions", "widths", "kernels", "expands", "depths", "stage_channels", "stage_strides"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or not value:
                raise TypeError(f"{name}: expected a non-empty tuple, got {value!r}")
            object.__setattr__(self, name, tuple(sorted(value)) if name not in ("stage_channels", "stage_strides")
                               else tuple(value))
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels: expected odd sizes (centred crops), got {self.kernels}")
        if len(self.stage_channels) != len(self.stage_strides):
            raise ValueError(f"stage_strides: expected {len(self.stage_channels)} strides, got {self.stage_strides}")

    def stage_widths(self, width: float) -> tuple[int, ...]:
        """Output channels of each elastic stage at width multiplier `width`."""
        return tuple(make_divisible(c * width, self.channel_divisor) for c in self.stage_channels)

    def _uniform(self, pick) -> SubnetConfig:
        depth = pick(self.depths)
        n = len(self.stage_channels)
        return SubnetConfig(pick(self.resolutions), pick(self.widths), (depth,) * n,
                            ((pick(self.kernels),) * depth,) * n, ((pick(self.expands),) * depth,) * n)

    def largest(self) -> SubnetConfig:
        """The subnet with every choice at its maximum (the most MACs)."""
        return self._uniform(max)

    def smallest(self) -> SubnetConfig:
        """The subnet with every choice at its minimum (the fewest MACs)."""
        return self._uniform(min)

    def check(self, config: SubnetConfig) -> None:
        """Raise TypeError/ValueError, saying what was expected and what came, unless `config` is in this space."""
        if not isinstance(config, SubnetConfig):
            raise TypeError(f"config: expected a SubnetConfig, got {type(config).__name__}")
        if config.resolution not in self.resolutions:
            raise ValueError(f"resolution: expected one of {self.resolutions}, got {config.resolution}")
        if config.width not in self.widths:
            raise ValueError(f"width: expected one of {self.widths}, got {config.width}")
        if len(config.depths) != len(self.stage_channels):
            raise ValueError(f"depths: expected {len(self.stage_channels)} stages, got {config.depths}")
        for s, d in enumerate(config.depths):
            if d not in self.depths:
                raise ValueError(f"depths[{s}]: expected one of {self.depths}, got {d}")
            for name, allowed in (("kernels", self.kernels), ("expands", self.expands)):
                for b, v in enumerate(getattr(config, name)[s]):
                    if v not in allowed:
                        raise ValueError(f"{name}[{s}][{b}]: expected one of {allowed}, got {v}")


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over the first C of its channels, C taken from the input (elastic width).

    Train mode normalises with the batch statistics and updates running_mean[:C], running_var[:C] (momentum, or a
    cumulative average when momentum is None, exactly as nn.BatchNorm2d); eval mode uses the sliced running stats.
    Channels C.. are never read or written.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float32 with C <= num_features -> (B, C, H, W) float32."""
        c = x.shape[1]
        assert c <= self.num_features, f"{c} channels into a BatchNorm of {self.num_features}"
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        # Slices of 1-D buffers are contiguous views: batch_norm updates the first c running stats in place.
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, factor, self.eps)


class DynamicPointwise(nn.Module):
    """1x1 convolution (no bias) with elastic input and output channels: the top-left corner of the full weight."""

    def __init__(self, max_in: int, max_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, 1, 1))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        """x: (B, C_in, H, W) float32 -> (B, out_channels, H, W) float32, weight[:out_channels, :C_in]."""
        return F.conv2d(x, self.weight[:out_channels, :x.shape[1]])


# PyTorch's CPU backward of a 5x5 or 7x7 depthwise convolution is 10-17x its forward on 4x4-14x14 maps. As one
# matrix per channel (out_pixels x in_pixels, entries picked from the kernel) it is a batched matmul whose backward
# is 4-8x faster: training takes that path. Without autograd (evaluation, MAC counting) F.conv2d runs, as does any
# 3x3 kernel, where F.conv2d is the faster.
DENSE_MAX_PIXELS = 256


class DynamicDepthwise(nn.Module):
    """Depthwise convolution with elastic channels and OFA's learned kernel transformation (stride s, 'same' pad).

    The full weight is (max_channels, 1, K, K) with K the largest kernel; transforms["7to5"] is (25, 25) and
    transforms["5to3"] is (9, 9), identities at init.
    """

    def __init__(self, max_channels: int, kernels: tuple[int, ...]):
        super().__init__()
        self.kernels = tuple(sorted(kernels, reverse=True))  # e.g. (7, 5, 3)
        self.weight = nn.Parameter(torch.empty(max_channels, 1, self.kernels[0], self.kernels[0]))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.transforms = nn.ParameterDict({f"{big}to{small}": nn.Parameter(torch.eye(small * small))
                                            for big, small in zip(self.kernels, self.kernels[1:])})

    def kernel(self, channels: int, size: int) -> torch.Tensor:
        """The (channels, 1, size, size) float32 kernel: centre crops through the transforms, largest first.

        Math: w_5 = reshape(M_7to5 @ vec(centre_5(w_7))), w_3 = reshape(M_5to3 @ vec(centre_3(w_5))), per channel.
        """
        w = self.weight[:channels]
        for big, small in zip(self.kernels, self.kernels[1:]):
            if big == size:
                break
            start = (big - small) // 2
            crop = w[:, :, start:start + small, start:start + small].reshape(channels, small * small)
            w = F.linear(crop, self.transforms[f"{big}to{small}"]).view(channels, 1, small, small)  # crop @ M.T
        return w

    def forward(self, x: torch.Tensor, size: int, stride: int) -> torch.Tensor:
        """x: (B, C, H, W) float32 -> (B, C, ceil(H / stride), ceil(W / stride)) float32."""
        c, h, w = x.shape[1:]
        if torch.is_grad_enabled() and size > 3 and h * w <= DENSE_MAX_PIXELS:
            return depthwise_dense(x, self.kernel(c, size), stride)
        return F.conv2d(x, self.kernel(c, size), stride=stride, padding=size // 2, groups=c)


@functools.cache
def _dense_index(h: int, w: int, k: int, stride: int) -> torch.Tensor:
    """(H_out * W_out, H * W) int64: which kernel tap (k*k = none, a zero) links output pixel o to input pixel i."""
    oy, ox = torch.meshgrid(torch.arange(0, h, stride), torch.arange(0, w, stride), indexing="ij")
    iy, ix = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ky = iy.flatten()[None, :] - oy.flatten()[:, None] + k // 2  # (out, in) tap row for 'same' padding
    kx = ix.flatten()[None, :] - ox.flatten()[:, None] + k // 2
    inside = (ky >= 0) & (ky < k) & (kx >= 0) & (kx < k)
    return torch.where(inside, ky * k + kx, k * k)


def depthwise_dense(x: torch.Tensor, kernel: torch.Tensor, stride: int) -> torch.Tensor:
    """Depthwise convolution ('same' padding) as one dense matrix per channel; equals F.conv2d(..., groups=C).

    Args:
        x: (B, C, H, W) float32.  kernel: (C, 1, k, k) float32, k odd.  stride: 1 or 2.
    Returns:
        (B, C, ceil(H / stride), ceil(W / stride)) float32.
    """
    b, c, h, w = x.shape
    k = kernel.shape[-1]
    index = _dense_index(h, w, k, stride)
    taps = F.pad(kernel.reshape(c, k * k), (0, 1))  # (C, k*k + 1), the last tap 0 for pixels out of reach
    out = torch.bmm(taps[:, index], x.reshape(b, c, h * w).permute(1, 2, 0))  # (C, out, B)
    return out.permute(2, 0, 1).reshape(b, c, -(-h // stride), -(-w // stride))


class ElasticBlock(nn.Module):
    """Inverted residual block with elastic output channels, expand ratio and depthwise kernel size."""

    def __init__(self, max_in: int, max_out: int, space: SupernetSpace):
        super().__init__()
        max_hidden = max_in * max(space.expands)
        self.expand, self.bn1 = DynamicPointwise(max_in, max_hidden), DynamicBatchNorm2d(max_hidden)
        self.depthwise, self.bn2 = DynamicDepthwise(max_hidden, space.kernels), DynamicBatchNorm2d(max_hidden)
        self.project, self.bn3 = DynamicPointwise(max_hidden, max_out), DynamicBatchNorm2d(max_out)

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int, expand: int, stride: int) -> torch.Tensor:
        """x: (B, C_in, H, W) float32 -> (B, out_channels, ceil(H / stride), ceil(W / stride)) float32."""
        h = F.relu6(self.bn1(self.expand(x, expand * x.shape[1])))
        h = F.relu6(self.bn2(self.depthwise(h, kernel, stride)))
        h = self.bn3(self.project(h, out_channels))
        return x + h if stride == 1 and x.shape[1] == out_channels else h


class Supernet(nn.Module):
    """The largest network's weights; `forward(x, config)` runs any subnet of `space` with them.

    Attributes: stem, first (fixed), stages (ModuleList per stage of ModuleList of ElasticBlock), head (1x1 conv,
    elastic input), head_bn, classifier.
    """

    def __init__(self, space: SupernetSpace = SupernetSpace()):
        super().__init__()
        self.space = space
        self.stem = conv_bn_relu(space.in_channels, space.stem_channels, 3, stride=2)
        self.first = InvertedResidual(space.stem_channels, space.stem_channels, stride=1, expand=1)
        widest = space.stage_widths(max(space.widths))
        ins = (space.stem_channels,) + widest[:-1]
        self.stages = nn.ModuleList(
            nn.ModuleList(ElasticBlock(c_in if b == 0 else c_out, c_out, space) for b in range(max(space.depths)))
            for c_in, c_out in zip(ins, widest))
        self.head, self.head_bn = DynamicPointwise(widest[-1], space.head_channels), nn.BatchNorm2d(space.head_channels)
        self.classifier = nn.Linear(space.head_channels, space.num_classes)

    def forward(self, x: torch.Tensor, config: SubnetConfig) -> torch.Tensor:
        """Logits of subnet `config`.

        Args:
            x: (B, in_channels, r, r) float32 images already at r = config.resolution (see `resize`).
            config: a SubnetConfig of self.space (checked; TypeError/ValueError otherwise).
        Returns:
            (B, num_classes) float32 logits.
        """
        self.space.check(config)
        r = config.resolution
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.space.in_channels, r, r):
            raise ValueError(f"x: expected (B, {self.space.in_channels}, {r}, {r}) for resolution {r} "
                             f"(resize(x, {r}) first), got {tuple(x.shape)}")
        x = self.first(self.stem(x))
        widths = self.space.stage_widths(config.width)
        for s, blocks in enumerate(self.stages):
            for b in range(config.depths[s]):
                stride = self.space.stage_strides[s] if b == 0 else 1
                x = blocks[b](x, widths[s], config.kernels[s][b], config.expands[s][b], stride)
        x = F.relu6(self.head_bn(self.head(x, self.space.head_channels)))
        return self.classifier(x.mean((2, 3)))  # global average pool: (B, head) -> (B, classes)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, config: SubnetConfig | None, x: torch.Tensor, batch: int = 500) -> nn.Module:
    """Re-estimate the BatchNorm running statistics a subnet uses from images `x`, as OFA does before evaluating.

    Every BatchNorm the forward pass reaches gets momentum None (a cumulative average) and a zeroed batch count, so
    the first batch overwrites (resets) the channels it uses and batch k enters with weight 1/k; channels a subnet
    does not use are left untouched. Only BatchNorm layers are in train mode; every module's mode and momentum are
    restored afterwards.

    Args:
        model: a Supernet (then `config` picks the subnet) or any nn.Module with BatchNorm layers (e.g. an extracted
            subnet; `config` may be None, or a SubnetConfig whose resolution x is resized to).
        config: SubnetConfig or None.
        x: (N, C, H, W) float32 images, N >= 1; resized to config.resolution when config is given.
        batch: images per forward pass.
    Returns:
        model, its running statistics updated in place.
    Math: running = (1/K) sum_k batch_stat_k over the K batches (variance unbiased per batch).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if isinstance(model, Supernet) and config is None:
        raise ValueError("config: expected the SubnetConfig to recalibrate, got None")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or len(x) == 0:
        raise ValueError(f"x: expected (N, C, H, W) images with N >= 1, got {getattr(x, 'shape', type(x).__name__)}")
    if config is not None:
        x = resize(x, config.resolution)
    modes = {m: m.training for m in model.modules()}
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    try:
        model.eval()
        for m in norms:
            m.train()
            m.momentum = None
            m.num_batches_tracked.zero_()
        for i in range(0, len(x), batch):
            model(x[i:i + batch], config) if isinstance(model, Supernet) else model(x[i:i + batch])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        for m, training in modes.items():
            m.training = training
    return model
