"""FOMM's keypoint head in PyTorch, as FOMM's KPDetector computes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
  """(H, W, 2) grid of (x, y) in [-1, 1] (FOMM's make_coordinate_grid)."""
  x = 2 * (torch.arange(width, dtype=dtype) / (width - 1)) - 1
  y = 2 * (torch.arange(height, dtype=dtype) / (height - 1)) - 1
  yy = y.view(-1, 1).repeat(1, width)
  xx = x.view(1, -1).repeat(height, 1)
  return torch.cat([xx.unsqueeze(2), yy.unsqueeze(2)], 2)


def heads(
  in_features: int, num_kp: int, kernel_size: int, padding: int, num_jacobian_maps: int
) -> tuple[nn.Conv2d, nn.Conv2d]:
  """The kp and jacobian convs, the jacobian one initialised to identity."""
  kp = nn.Conv2d(in_features, num_kp, kernel_size, padding=padding)
  jacobian = nn.Conv2d(in_features, 4 * num_jacobian_maps, kernel_size, padding=padding)
  jacobian.weight.data.zero_()
  jacobian.bias.data.copy_(torch.tensor([1, 0, 0, 1], dtype=torch.float).repeat(num_jacobian_maps))
  return kp, jacobian


class SoftArgmax(nn.Module):
  """Heatmap softmax, soft-argmax keypoints and heatmap-weighted jacobians.

  A module without parameters, so that exporters see the head's arithmetic
  under one name (int8 export keeps it in float: a per-pixel softmax over
  64x64 positions does not survive 8 bits).
  """

  def __init__(self, temperature: float, num_jacobian_maps: int):
    super().__init__()
    self.temperature = temperature
    self.num_jacobian_maps = num_jacobian_maps

  def forward(
    self, prediction: torch.Tensor, jacobian_map: torch.Tensor
  ) -> dict[str, torch.Tensor]:
    final_shape = prediction.shape
    heatmap = prediction.view(final_shape[0], final_shape[1], -1)
    heatmap = F.softmax(heatmap / self.temperature, dim=2).view(*final_shape)
    grid = make_coordinate_grid(final_shape[2], final_shape[3], heatmap.dtype).to(heatmap.device)
    value = (heatmap.unsqueeze(-1) * grid.unsqueeze(0).unsqueeze(0)).sum(dim=(2, 3))

    jacobian_map = jacobian_map.reshape(
      final_shape[0], self.num_jacobian_maps, 4, final_shape[2], final_shape[3]
    )
    weighted = heatmap.unsqueeze(2) * jacobian_map
    weighted = weighted.view(final_shape[0], final_shape[1], 4, -1).sum(dim=-1)
    return {
      'kp': value,
      'jacobian': weighted.view(final_shape[0], final_shape[1], 2, 2),
      'heatmap': heatmap,
    }


class KeypointHead(nn.Module):
  """The students' head module (`head.kp`, `head.jacobian`)."""

  def __init__(self, in_features: int, num_kp: int, temperature: float):
    super().__init__()
    self.kp, self.jacobian = heads(in_features, num_kp, 1, 0, num_kp)
    self.soft_argmax = SoftArgmax(temperature, num_kp)

  def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return self.soft_argmax(self.kp(x), self.jacobian(x))
