"""Plain PyTorch models written the way users write theirs, for `bnviz.watch`'s tests, benchmark and notebook.

`resnet18_shaped` follows torchvision's ResNet-18 (BasicBlock: conv-BN-ReLU-conv-BN plus a shortcut, a 1x1
conv + BN downsample where the shape changes, stages of [2, 2, 2, 2] blocks, one ReLU module reused per block,
`out += identity` in place) at small widths and without the stem's max-pool, so 16x16 inputs train quickly on a
CPU. No torchvision needed.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)  # used twice in forward, as in torchvision
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """Stem (3x3 conv, BN, ReLU), four stages of BasicBlocks (the 2nd to 4th halve the size), average pool, fc."""

    def __init__(self, blocks=(2, 2, 2, 2), widths=(8, 16, 32, 64), in_channels: int = 1, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages, channels = [], widths[0]
        for i, (count, width) in enumerate(zip(blocks, widths, strict=True)):
            stage = [BasicBlock(channels, width, stride=1 if i == 0 else 2)]
            stage += [BasicBlock(width, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, C, H, W)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))  # (N, classes)


def resnet18_shaped(widths=(8, 16, 32, 64), in_channels: int = 1, n_classes: int = 10, seed: int = 0) -> ResNet:
    torch.manual_seed(seed)
    return ResNet((2, 2, 2, 2), widths, in_channels, n_classes)


def mlp(sizes=(64, 32, 32, 10), activation=nn.Tanh, seed: int = 0) -> nn.Sequential:
    """Flatten, then Linear -> activation for every hidden size, and a Linear output layer (no normalization)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b), activation()]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))


def layer_norm_mlp(sizes=(64, 32, 32, 10), seed: int = 0) -> nn.Sequential:
    """Flatten, then Linear -> LayerNorm -> GELU per hidden size, and a Linear output layer."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.GELU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))
