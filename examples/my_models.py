"""A model the harness does not ship: a small CNN with one residual block, BatchNorm and dropout.

The factory contract (harness.plugins.build_model): called as ``factory(input_shape, num_classes,
**kwargs)``, it returns an ``nn.Module`` mapping (N, *input_shape) to logits (N, num_classes).
"""

from __future__ import annotations

from torch import nn


class ResidualBlock(nn.Module):
    """x + conv-bn-relu-conv-bn(x), then ReLU."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.body(x))


def residual_cnn(input_shape: tuple[int, int, int], num_classes: int, width: int = 16,
                 dropout: float = 0.1) -> nn.Module:
    """Stem conv, one residual block, global average pooling, dropout, a linear classifier."""
    channels = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        ResidualBlock(width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_classes),
    )
