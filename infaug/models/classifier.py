"""F, the classifier whose last layer the influence engine differentiates.

Every classifier here ends with ``self.head = nn.Linear(D, K)`` and exposes ``features(x)``, the
(N, D) input of that layer, so ``logits = head(features(x))``. Train it with an L2 penalty on
``head`` equal to the engine's damping (``infaug.train.classifier``) so the influence prediction is for exactly the objective F minimised.

Example:
    >>> import torch
    >>> from infaug.models import AllConvNet
    >>> net = AllConvNet(in_channels=1, num_classes=10)
    >>> net(torch.rand(2, 1, 28, 28)).shape, net.features(torch.rand(2, 1, 28, 28)).shape
    (torch.Size([2, 10]), torch.Size([2, 128]))
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["AllConvNet", "MLP", "ResNet", "resnet56"]


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AllConvNet(nn.Module):
    """The four-layer all-convolutional CNN for 28 x 28 digits (strided convolutions, no pooling
    but the global average before the head).

    Args:
        in_channels: C of the input (N, C, H, W). num_classes: K. width: channels of the first layer
            (the others are 2x, 2x and 4x it).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(in_channels, width, 1),  # (N, w, 28, 28)
            _conv(width, 2 * width, 2),  # (N, 2w, 14, 14)
            _conv(2 * width, 2 * width, 2),  # (N, 2w, 7, 7)
            _conv(2 * width, 4 * width, 2),  # (N, 4w, 4, 4)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (N, D = 4w)
        )
        self.head = nn.Linear(4 * width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet(nn.Module):
    """The CIFAR ResNet of He et al. (6n + 2 layers: three stages of n basic blocks, 16, 32 and 64
    channels) for 32 x 32 colour images; ``resnet56()`` is n = 9."""

    def __init__(self, blocks_per_stage: int = 9, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)]
        cin = 16
        for stage, cout in enumerate((16, 32, 64)):
            for block in range(blocks_per_stage):
                layers.append(_Block(cin, cout, 2 if stage > 0 and block == 0 else 1))
                cin = cout
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (N, 64)
        self.head = nn.Linear(64, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def resnet56(in_channels: int = 3, num_classes: int = 10) -> ResNet:
    return ResNet(9, in_channels, num_classes)


class MLP(nn.Module):
    """The 3-layer network of the paper's toy example: 2-D points to K logits."""

    def __init__(self, in_features: int = 2, num_classes: int = 2, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
