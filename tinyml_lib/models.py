"""Course models: small CNNs for 1x28x28 Fashion-MNIST images, and AlexNet's shapes for the notes' worked numbers.

Per-model details live in the config tables below, not in if-chains: a VGG-like net is a list of stages, a
MobileNetV2-like net a list of inverted-residual settings (expansion t, channels c, repeats n, stride s), as in
Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018, Table 2.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class VGGConfig:
    """Stages of 3x3 convs; 'M' is a 2x2 max-pool."""
    stages: tuple = (16, 16, "M", 32, 32, "M", 64, 64, "M")
    in_channels: int = 1
    num_classes: int = 10


@dataclass(frozen=True)
class MobileNetV2Config:
    """(t, c, n, s) rows: expansion, output channels, repeats, first stride."""
    blocks: tuple = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 1))
    stem_channels: int = 16
    stem_stride: int = 2  # 28x28 -> 14x14 first, as MobileNetV2's stem does: the CPU cost falls 4x
    head_channels: int = 128
    in_channels: int = 1
    num_classes: int = 10


def vgg_like(config: VGGConfig = VGGConfig()) -> nn.Sequential:
    """VGG-style CNN: conv3x3-BN-ReLU stages and max-pools, global average pool, one linear classifier.

    Input (B, 1, 28, 28) float32 -> logits (B, num_classes) float32.
    """
    layers, c_in = [], config.in_channels
    for item in config.stages:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c_in, item, 3, padding=1, bias=False), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
            c_in = item
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, config.num_classes)]
    return nn.Sequential(*layers)


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 relu: bool = True) -> nn.Sequential:
    """Conv (no bias, 'same' padding) + BatchNorm (+ ReLU6, as in MobileNetV2)."""
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> kxk depthwise (3x3 in MobileNetV2) -> 1x1 linear project, residual when
    shapes allow. `block` is an nn.Sequential of conv_bn_relu stages: [expand (absent when expand == 1), depthwise,
    project]."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, kernel: int = 3):
        super().__init__()
        hidden = c_in * expand
        layers = [conv_bn_relu(c_in, hidden, 1)] if expand != 1 else []
        layers += [conv_bn_relu(hidden, hidden, kernel, stride, groups=hidden),
                   conv_bn_relu(hidden, c_out, 1, relu=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def mobilenetv2_like(config: MobileNetV2Config = MobileNetV2Config()) -> nn.Sequential:
    """MobileNetV2-style CNN sized for 28x28 inputs. Input (B, 1, 28, 28) float32 -> logits (B, num_classes)."""
    layers = [conv_bn_relu(config.in_channels, config.stem_channels, stride=config.stem_stride)]
    c_in = config.stem_channels
    for t, c, n, s in config.blocks:
        for i in range(n):
            layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
            c_in = c
    layers += [conv_bn_relu(c_in, config.head_channels, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(config.head_channels, config.num_classes)]
    return nn.Sequential(*layers)


def alexnet(num_classes: int = 1000, device: str | torch.device = "meta") -> nn.Sequential:
    """AlexNet with the original paper's channel counts (96-256-384-384-256), one tower, for 3x224x224 inputs.

    Built on the "meta" device by default: the course only counts its parameters, MACs and activation shapes, and
    62 M real float32 weights would take 238 MiB of a 2 GB Binder for nothing. Pass device="cpu" to run it.

    Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NeurIPS 2012.
    Output sizes: conv1 96x55x55, pool 96x27x27, conv2 256x27x27, pool 256x13x13, conv3/4 384x13x13,
    conv5 256x13x13, pool 256x6x6, fc 4096, 4096, num_classes. (The paper's two-GPU split is left out: `groups=1`.)
    """
    with torch.device(device):
        return _alexnet_layers(num_classes)


def _alexnet_layers(num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )


# Distillation pair (Lab 05): a wide teacher and a narrow student of the same VGG family.
TEACHER_CONFIG = VGGConfig(stages=(32, 32, "M", 64, 64, "M", 128, 128, "M"))
STUDENT_CONFIG = VGGConfig(stages=(8, "M", 16, "M", 32, "M"))
