"""FOMM's KPDetector in PyTorch, with FOMM's module names.

Its `state_dict()` has exactly the keys of FOMM's `kp_detector` (vox-cpk),
including the `down.weight` Gaussian buffer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_twins.head import SoftArgmax, heads


class DownBlock2d(nn.Module):
  def __init__(self, in_features: int, out_features: int):
    super().__init__()
    self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
    self.norm = nn.BatchNorm2d(out_features, affine=True)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(F.relu(self.norm(self.conv(x))), (2, 2))


class UpBlock2d(nn.Module):
  def __init__(self, in_features: int, out_features: int):
    super().__init__()
    self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
    self.norm = nn.BatchNorm2d(out_features, affine=True)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2))))


class Encoder(nn.Module):
  def __init__(self, block_expansion, in_features, num_blocks, max_features):
    super().__init__()
    self.down_blocks = nn.ModuleList(
      [
        DownBlock2d(
          in_features if i == 0 else min(max_features, block_expansion * (2**i)),
          min(max_features, block_expansion * (2 ** (i + 1))),
        )
        for i in range(num_blocks)
      ]
    )

  def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
    outs = [x]
    for down_block in self.down_blocks:
      outs.append(down_block(outs[-1]))
    return outs


class Decoder(nn.Module):
  def __init__(self, block_expansion, in_features, num_blocks, max_features):
    super().__init__()
    up_blocks = []
    for i in reversed(range(num_blocks)):
      in_filters = (1 if i == num_blocks - 1 else 2) * min(
        max_features, block_expansion * (2 ** (i + 1))
      )
      out_filters = min(max_features, block_expansion * (2**i))
      up_blocks.append(UpBlock2d(in_filters, out_filters))
    self.up_blocks = nn.ModuleList(up_blocks)
    self.out_filters = block_expansion + in_features

  def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
    out = x.pop()
    for up_block in self.up_blocks:
      out = up_block(out)
      out = torch.cat([out, x.pop()], dim=1)
    return out


class Hourglass(nn.Module):
  def __init__(self, block_expansion, in_features, num_blocks, max_features):
    super().__init__()
    self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
    self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
    self.out_filters = self.decoder.out_filters

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    skips = self.encoder(x)
    bottleneck = skips[-1]
    return self.decoder(skips), bottleneck


class AntiAliasInterpolation2d(nn.Module):
  """FOMM's band-limited downsampling: Gaussian blur, then keep every 1/scale-th pixel."""

  def __init__(self, channels: int, scale: float):
    super().__init__()
    sigma = (1 / scale - 1) / 2
    kernel_size = 2 * round(sigma * 4) + 1
    self.ka = kernel_size // 2
    self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
    kernel_size = [kernel_size, kernel_size]
    sigma = [sigma, sigma]
    kernel = 1
    meshgrids = torch.meshgrid(
      [torch.arange(size, dtype=torch.float32) for size in kernel_size], indexing='ij'
    )
    for size, std, mgrid in zip(kernel_size, sigma, meshgrids, strict=True):
      mean = (size - 1) / 2
      kernel = kernel * torch.exp(-((mgrid - mean) ** 2) / (2 * std**2))
    kernel = kernel / torch.sum(kernel)
    kernel = kernel.view(1, 1, *kernel.size())
    kernel = kernel.repeat(channels, *[1] * (kernel.dim() - 1))
    self.register_buffer('weight', kernel)
    self.groups = channels
    self.int_inv_scale = int(1 / scale)
    self.scale = scale

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.scale == 1.0:  # FOMM's: its kernel (sigma 0) is NaN there and unused
      return x
    out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
    out = F.conv2d(out, weight=self.weight, groups=self.groups)
    return out[:, :, :: self.int_inv_scale, :: self.int_inv_scale]


class KPDetector(nn.Module):
  """FOMM's keypoint detector (the teacher)."""

  def __init__(
    self,
    *,
    num_kp,
    num_channels,
    block_expansion,
    max_features,
    num_blocks,
    temperature,
    single_jacobian_map,
    scale_factor,
    head_kernel_size,
    pad,
  ):
    super().__init__()
    self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
    self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
    self.kp, self.jacobian = heads(
      self.predictor.out_filters, num_kp, head_kernel_size, pad, self.num_jacobian_maps
    )
    self.soft_argmax = SoftArgmax(temperature, self.num_jacobian_maps)
    self.scale_factor = scale_factor
    if scale_factor != 1:
      self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

  def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
    if self.scale_factor != 1:
      x = self.down(x)
    feature_map, bottleneck = self.predictor(x)
    out = self.soft_argmax(self.kp(feature_map), self.jacobian(feature_map))
    out['encoder_features'] = bottleneck
    return out
