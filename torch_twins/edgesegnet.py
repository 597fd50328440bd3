"""EdgeSegNet in PyTorch (see models/edgesegnet.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_twins.head import KeypointHead


def _up(x: torch.Tensor, factor: int) -> torch.Tensor:
  return F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False)


class BottleneckReduction(nn.Module):
  def __init__(self, in_features, features):
    super().__init__()
    self.reduce = nn.Conv2d(in_features, features, 3, stride=8)
    self.pointwise = nn.Conv2d(features, features, 1)
    self.conv = nn.Conv2d(features, features, 3, padding=1)

  def forward(self, x):
    x = torch.relu(self.pointwise(torch.relu(self.reduce(x))))
    return _up(self.conv(x), 2)


class ResidualBottleneck(nn.Module):
  def __init__(self, in_features, features):
    super().__init__()
    self.norm_in = nn.BatchNorm2d(in_features)
    self.conv1 = nn.Conv2d(in_features, features, 1)
    self.norm1 = nn.BatchNorm2d(features)
    self.conv2 = nn.Conv2d(features, features, 3, stride=2, padding=1)
    self.norm2 = nn.BatchNorm2d(features)
    self.conv3 = nn.Conv2d(features, features, 1)
    self.shortcut = nn.Conv2d(in_features, features, 3, stride=2, padding=1)

  def forward(self, x):
    x = torch.relu(self.norm_in(x))
    branch = torch.relu(self.norm1(self.conv1(x)))
    branch = self.conv3(torch.relu(self.norm2(self.conv2(branch))))
    return branch + self.shortcut(x)


class RefineModule(nn.Module):
  def __init__(self, in_features, features):
    super().__init__()
    self.project = nn.Conv2d(in_features, features, 1)
    self.conv1 = nn.Conv2d(features, features, 1)
    self.conv2 = nn.Conv2d(features, features, 3, padding=1)
    self.conv3 = nn.Conv2d(features, features, 3, padding=1)

  def forward(self, x):
    x = self.project(x)
    branch = torch.relu(self.conv2(torch.relu(self.conv1(x))))
    return x + self.conv3(branch)


class EdgeSegNet(nn.Module):
  def __init__(
    self,
    *,
    num_kp,
    num_channels,
    temperature,
    stem_features,
    bottleneck_features,
    refine_features,
    head_features,
  ):
    super().__init__()
    c0, c1, c2 = stem_features, bottleneck_features, refine_features
    self.stem = nn.Conv2d(num_channels, c0, 7, stride=2, padding=3)
    self.reduction = BottleneckReduction(c0, c1)
    self.residual = ResidualBottleneck(c0, c1)
    self.refine_bottom = RefineModule(c1, c1)
    self.refine_merge = RefineModule(c1, c2)
    self.refine_long = RefineModule(c0, c2)
    self.refine_out = RefineModule(c2, c2)
    self.out = nn.Conv2d(c2, head_features, 1)
    self.head = KeypointHead(head_features, num_kp, temperature)

  def forward(self, x):
    stem = self.stem(x)
    pooled = F.max_pool2d(stem, 3, stride=2, padding=1)
    encoded = self.reduction(stem) + self.refine_bottom(self.residual(pooled))
    x = _up(self.refine_merge(encoded), 2)
    x = x + self.refine_long(pooled)
    x = _up(self.refine_out(x), 4)
    out = self.head(self.out(x))
    out['encoder_features'] = encoded
    return out
