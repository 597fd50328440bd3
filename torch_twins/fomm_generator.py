"""FOMM's OcclusionAwareGenerator and DenseMotionNetwork in PyTorch, with FOMM's module names.

Written as FOMM's modules/generator.py and modules/dense_motion.py compute
them (NCHW, `F.grid_sample`, `F.interpolate`), so `state_dict()` has exactly
the keys of the `generator` entry of FOMM's checkpoint (vox-cpk), including
the `dense_motion_network.down.weight` Gaussian buffer. Keypoint dicts may
name the positions `kp` (the zoo's detectors) or `value` (FOMM's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_twins.fomm import AntiAliasInterpolation2d, DownBlock2d, Hourglass, UpBlock2d
from torch_twins.head import make_coordinate_grid


def _value(kp: dict[str, torch.Tensor]) -> torch.Tensor:
  return kp['value'] if 'value' in kp else kp['kp']


def inverse_2x2(matrix: torch.Tensor) -> torch.Tensor:
  """torch.inverse of (..., 2, 2) matrices, written out: ONNX and LiteRT have no inverse op."""
  a, b = matrix[..., 0, 0], matrix[..., 0, 1]
  c, d = matrix[..., 1, 0], matrix[..., 1, 1]
  det = a * d - b * c
  return (
    torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[..., None, None]
  )


def kp2gaussian(kp: torch.Tensor, height: int, width: int, kp_variance: float) -> torch.Tensor:
  """(B, K, H, W) Gaussians around (B, K, 2) keypoints (FOMM's kp2gaussian)."""
  grid = make_coordinate_grid(height, width, kp.dtype).view(1, 1, height, width, 2)
  mean_sub = grid - kp.view(*kp.shape[:2], 1, 1, 2)
  return torch.exp(-0.5 * (mean_sub * mean_sub).sum(-1) / kp_variance)  # no pow: LiteRT


class DenseMotionNetwork(nn.Module):
  """FOMM's dense motion: sparse motions and heatmaps -> mask, deformation, occlusion."""

  def __init__(
    self,
    block_expansion,
    num_blocks,
    max_features,
    num_kp,
    num_channels,
    estimate_occlusion_map=False,
    scale_factor=1,
    kp_variance=0.01,
    align_corners=False,
  ):
    super().__init__()
    self.hourglass = Hourglass(
      block_expansion, (num_kp + 1) * (num_channels + 1), num_blocks, max_features
    )
    self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
    self.occlusion = (
      nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
      if estimate_occlusion_map
      else None
    )
    self.num_kp = num_kp
    self.scale_factor = scale_factor
    self.kp_variance = kp_variance
    self.align_corners = align_corners
    if scale_factor != 1:
      self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

  def create_heatmap_representations(self, source_image, kp_driving, kp_source):
    h, w = source_image.shape[2:]
    heatmap = kp2gaussian(_value(kp_driving), h, w, self.kp_variance) - kp2gaussian(
      _value(kp_source), h, w, self.kp_variance
    )
    zeros = torch.zeros(heatmap.shape[0], 1, h, w, dtype=heatmap.dtype)
    return torch.cat([zeros, heatmap], dim=1).unsqueeze(2)

  def create_sparse_motions(self, source_image, kp_driving, kp_source):
    bs, _, h, w = source_image.shape
    identity_grid = make_coordinate_grid(h, w, source_image.dtype).view(1, 1, h, w, 2)
    coordinate_grid = identity_grid - _value(kp_driving).view(bs, self.num_kp, 1, 1, 2)
    if kp_driving.get('jacobian') is not None:
      jacobian = torch.matmul(kp_source['jacobian'], inverse_2x2(kp_driving['jacobian']))
      # FOMM repeats the jacobian over every pixel and matmuls; a broadcast product is the
      # same sum, and exports (LiteRT's broadcast_to stops at 8 dimensions).
      jacobian = jacobian.view(bs, self.num_kp, 1, 1, 2, 2)
      coordinate_grid = (jacobian * coordinate_grid.unsqueeze(-2)).sum(-1)
    driving_to_source = coordinate_grid + _value(kp_source).view(bs, self.num_kp, 1, 1, 2)
    identity_grid = identity_grid.expand(bs, -1, -1, -1, -1)
    return torch.cat([identity_grid, driving_to_source], dim=1)

  def create_deformed_source_image(self, source_image, sparse_motions):
    bs, _, h, w = source_image.shape
    copies = self.num_kp + 1  # expand, not FOMM's 6-D repeat: the same copies, exportable
    source_repeat = source_image.unsqueeze(1).expand(bs, copies, -1, h, w)
    source_repeat = source_repeat.reshape(bs * copies, -1, h, w)
    sparse_motions = sparse_motions.view((bs * (self.num_kp + 1), h, w, -1))
    sparse_deformed = F.grid_sample(source_repeat, sparse_motions, align_corners=self.align_corners)
    return sparse_deformed.view((bs, self.num_kp + 1, -1, h, w))

  def forward(self, source_image, kp_driving, kp_source):
    if self.scale_factor != 1:
      source_image = self.down(source_image)
    bs, _, h, w = source_image.shape
    out_dict = {}
    heatmap_representation = self.create_heatmap_representations(
      source_image, kp_driving, kp_source
    )
    sparse_motion = self.create_sparse_motions(source_image, kp_driving, kp_source)
    deformed_source = self.create_deformed_source_image(source_image, sparse_motion)
    out_dict['sparse_deformed'] = deformed_source
    net_input = torch.cat([heatmap_representation, deformed_source], dim=2).view(bs, -1, h, w)
    prediction, _ = self.hourglass(net_input)  # the twin's hourglass also returns its bottleneck
    mask = F.softmax(self.mask(prediction), dim=1)
    out_dict['mask'] = mask
    sparse_motion = sparse_motion.permute(0, 1, 4, 2, 3)
    deformation = (sparse_motion * mask.unsqueeze(2)).sum(dim=1)
    out_dict['deformation'] = deformation.permute(0, 2, 3, 1)
    if self.occlusion is not None:
      out_dict['occlusion_map'] = torch.sigmoid(self.occlusion(prediction))
    return out_dict


class SameBlock2d(nn.Module):
  def __init__(self, in_features, out_features, kernel_size=3, padding=1):
    super().__init__()
    self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
    self.norm = nn.BatchNorm2d(out_features, affine=True)

  def forward(self, x):
    return F.relu(self.norm(self.conv(x)))


class ResBlock2d(nn.Module):
  def __init__(self, in_features, kernel_size=3, padding=1):
    super().__init__()
    self.conv1 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
    self.conv2 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
    self.norm1 = nn.BatchNorm2d(in_features, affine=True)
    self.norm2 = nn.BatchNorm2d(in_features, affine=True)

  def forward(self, x):
    out = self.conv1(F.relu(self.norm1(x)))
    return self.conv2(F.relu(self.norm2(out))) + x


class OcclusionAwareGenerator(nn.Module):
  """FOMM's generator; options as `models.default_config('fomm_generator')` (flat)."""

  def __init__(
    self,
    *,
    num_kp,
    num_channels,
    block_expansion,
    max_features,
    num_down_blocks,
    num_bottleneck_blocks,
    estimate_occlusion_map,
    dense_motion_block_expansion,
    dense_motion_max_features,
    dense_motion_num_blocks,
    dense_motion_scale_factor,
    kp_variance,
    align_corners,
  ):
    super().__init__()
    self.dense_motion_network = DenseMotionNetwork(
      block_expansion=dense_motion_block_expansion,
      num_blocks=dense_motion_num_blocks,
      max_features=dense_motion_max_features,
      num_kp=num_kp,
      num_channels=num_channels,
      estimate_occlusion_map=estimate_occlusion_map,
      scale_factor=dense_motion_scale_factor,
      kp_variance=kp_variance,
      align_corners=align_corners,
    )
    self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)

    def width(i):
      return min(max_features, block_expansion * (2**i))

    self.down_blocks = nn.ModuleList(
      [DownBlock2d(width(i), width(i + 1)) for i in range(num_down_blocks)]
    )
    self.up_blocks = nn.ModuleList(
      [
        UpBlock2d(width(num_down_blocks - i), width(num_down_blocks - i - 1))
        for i in range(num_down_blocks)
      ]
    )
    self.bottleneck = nn.Sequential()
    for i in range(num_bottleneck_blocks):
      self.bottleneck.add_module(f'r{i}', ResBlock2d(width(num_down_blocks)))
    self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)
    self.estimate_occlusion_map = estimate_occlusion_map
    self.num_channels = num_channels
    self.align_corners = align_corners

  def deform_input(self, inp, deformation):
    _, h_old, w_old, _ = deformation.shape
    _, _, h, w = inp.shape
    if h_old != h or w_old != w:
      deformation = deformation.permute(0, 3, 1, 2)
      deformation = F.interpolate(deformation, size=(h, w), mode='bilinear', align_corners=False)
      deformation = deformation.permute(0, 2, 3, 1)
    return F.grid_sample(inp, deformation, align_corners=self.align_corners)

  def forward(self, source_image, kp_driving, kp_source):
    out = self.first(source_image)
    for block in self.down_blocks:
      out = block(out)
    output_dict = {}
    dense_motion = self.dense_motion_network(
      source_image=source_image, kp_driving=kp_driving, kp_source=kp_source
    )
    output_dict['mask'] = dense_motion['mask']
    output_dict['sparse_deformed'] = dense_motion['sparse_deformed']
    occlusion_map = dense_motion.get('occlusion_map')
    deformation = dense_motion['deformation']
    out = self.deform_input(out, deformation)
    if occlusion_map is not None:
      output_dict['occlusion_map'] = occlusion_map
      if out.shape[2:] != occlusion_map.shape[2:]:
        occlusion_map = F.interpolate(
          occlusion_map, size=out.shape[2:], mode='bilinear', align_corners=False
        )
      out = out * occlusion_map
    output_dict['deformed'] = self.deform_input(source_image, deformation)
    out = self.bottleneck(out)
    for block in self.up_blocks:
      out = block(out)
    output_dict['prediction'] = torch.sigmoid(self.final(out))
    return output_dict
