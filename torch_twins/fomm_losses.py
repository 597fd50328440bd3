"""FOMM's training losses in PyTorch, as its modules/model.py computes them (NCHW).

The twin of `train.fomm_losses` and `train.fomm_step.loss_terms`: the random
TPS `Transform` (here built from given parameters, so both sides can use the
same draw), the image pyramid, the weight-free pyramid terms (L1, SSIM), and the
equivariance terms with the transform's jacobian taken by autograd, as FOMM
takes it. `GeneratorFullModel` is FOMM's forward pass without the GAN, for
parity and for timing the same training step eagerly
(`python -m tools.fomm_throughput`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from torch_twins.fomm import AntiAliasInterpolation2d
from torch_twins.head import make_coordinate_grid


class Transform:
  """FOMM's random TPS transform from its parameters: theta (B, 2, 3), control_params (B, P*P)."""

  def __init__(self, theta: torch.Tensor, control_params: torch.Tensor, points_tps: int):
    self.theta = theta
    grid = make_coordinate_grid(points_tps, points_tps, theta.dtype)
    self.control_points = grid.view(1, 1, -1, 2)
    self.control_params = control_params.view(len(theta), 1, -1)

  def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) -> (B, N, 2): the affine part, plus the TPS kernel on L1 distances (FOMM's)."""
    theta = self.theta.unsqueeze(1)
    warped = (theta[..., :2] @ coordinates.unsqueeze(-1) + theta[..., 2:]).squeeze(-1)
    distances = (coordinates.unsqueeze(2) - self.control_points).abs().sum(-1)
    kernel = distances**2 * torch.log(distances + 1e-6) * self.control_params
    return warped + kernel.sum(dim=2, keepdim=True)

  def jacobian(self, coordinates: torch.Tensor) -> torch.Tensor:
    """(B, N, 2, 2) by autograd, kept in the graph (FOMM's create_graph=True)."""
    warped = self.warp_coordinates(coordinates)
    rows = [
      torch.autograd.grad(warped[..., i].sum(), coordinates, create_graph=True)[0] for i in (0, 1)
    ]
    return torch.stack(rows, dim=-2)

  def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
    batch, _, height, width = frame.shape
    grid = make_coordinate_grid(height, width, frame.dtype).view(1, -1, 2).expand(batch, -1, -1)
    grid = self.warp_coordinates(grid).view(batch, height, width, 2)
    return F.grid_sample(frame, grid, padding_mode='reflection', align_corners=False)


class ImagePyramid(nn.Module):
  """FOMM's ImagePyramide: the frames anti-alias downsampled to each scale."""

  def __init__(self, scales: Sequence[float], channels: int = 3):
    super().__init__()
    self.scales = tuple(scales)
    self.downs = nn.ModuleList(AntiAliasInterpolation2d(channels, s) for s in self.scales)

  def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
    return [down(x) for down in self.downs]


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 3) -> torch.Tensor:
  """Mean SSIM of NCHW images over window x window boxes, reflection-padded (Monodepth's)."""
  c1, c2 = 0.01**2, 0.03**2

  def pool(x):
    return F.avg_pool2d(F.pad(x, [window // 2] * 4, mode='reflect'), window, stride=1)

  mu_a, mu_b = pool(a), pool(b)
  var_a, var_b = pool(a * a) - mu_a**2, pool(b * b) - mu_b**2
  covariance = pool(a * b) - mu_a * mu_b
  numerator = (2 * mu_a * mu_b + c1) * (2 * covariance + c2)
  return (numerator / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean()


def pixel_term(fake: list[torch.Tensor], real: list[torch.Tensor], kind: str) -> torch.Tensor:
  """The pyramid's weight-free term: 'l1', or 'ssim' (0.85 (1 - SSIM) / 2 + 0.15 L1)."""
  total = 0.0
  for g, r in zip(fake, real, strict=True):
    l1 = (g - r).abs().mean()
    total = total + (0.85 * (1 - ssim(g, r)) / 2 + 0.15 * l1 if kind == 'ssim' else l1)
  return total


def equivariance_value(kp_driving, kp_transformed, transform: Transform) -> torch.Tensor:
  warped = transform.warp_coordinates(kp_transformed['kp'])
  return (kp_driving['kp'] - warped).abs().mean()


def equivariance_jacobian(kp_driving, kp_transformed, transform: Transform) -> torch.Tensor:
  transformed = transform.jacobian(kp_transformed['kp']) @ kp_transformed['jacobian']
  value = torch.inverse(kp_driving['jacobian']) @ transformed
  return (torch.eye(2, dtype=value.dtype) - value).abs().mean()


class GeneratorFullModel(nn.Module):
  """FOMM's GeneratorFullModel.forward with the weight-free pyramid term and the GAN off.

  `forward(source, driving, theta, control_params)` takes the transform's draw
  so that a test gives both frameworks the same one; returns the weighted terms.
  """

  def __init__(self, kp_detector: nn.Module, generator: nn.Module, loss, transform):
    super().__init__()
    self.kp_detector, self.generator = kp_detector, generator
    self.pyramid = ImagePyramid(loss.scales)
    self.loss, self.points_tps = loss, transform.points_tps

  def forward(self, source, driving, theta, control_params) -> dict[str, torch.Tensor]:
    kp_source, kp_driving = self.kp_detector(source), self.kp_detector(driving)
    prediction = self.generator(source, kp_source=kp_source, kp_driving=kp_driving)['prediction']
    real, fake = self.pyramid(driving), self.pyramid(prediction)
    pixel = pixel_term(fake, real, self.loss.pixel)
    terms = {'reconstruction': self.loss.pixel_weight * pixel}
    warp = Transform(theta, control_params, self.points_tps)
    kp_transformed = self.kp_detector(warp.transform_frame(driving))
    terms['equivariance_value'] = self.loss.equivariance_value * equivariance_value(
      kp_driving, kp_transformed, warp
    )
    terms['equivariance_jacobian'] = self.loss.equivariance_jacobian * equivariance_jacobian(
      kp_driving, kp_transformed, warp
    )
    return terms
