"""L3U-Net in PyTorch (ai8x-style blocks; see models/l3unet.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_twins.blocks import ConvTranspose2d
from torch_twins.head import KeypointHead


def fold(x: torch.Tensor, ratio: int) -> torch.Tensor:
  """Channel block (i * ratio + j) holds x[:, :, i::ratio, j::ratio] (ai8x's Fold)."""
  return torch.cat([x[:, :, i::ratio, j::ratio] for i in range(ratio) for j in range(ratio)], 1)


def unfold(x: torch.Tensor, ratio: int) -> torch.Tensor:
  batch, folded, height, width = x.shape
  channels = folded // (ratio * ratio)
  x = x.view(batch, ratio, ratio, channels, height, width)
  x = x.permute(0, 3, 4, 1, 5, 2)
  return x.reshape(batch, channels, height * ratio, width * ratio)


class ConvBlock(nn.Module):
  def __init__(self, in_features, out_features, kernel_size, relu=True, affine=False):
    super().__init__()
    self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=kernel_size // 2)
    self.norm = nn.BatchNorm2d(out_features, affine=affine)
    self.relu = relu

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = self.norm(self.conv(x))
    return torch.relu(y) if self.relu else y


class L3UNet(nn.Module):
  def __init__(
    self,
    *,
    num_kp,
    num_channels,
    temperature,
    fold,
    prep_features,
    encoder_features,
    bottleneck_features,
    decoder_features,
    dec0_features,
    post_features,
    head_features,
    batchnorm_affine,
  ):
    super().__init__()
    self.fold = fold

    def block(a, b, k, relu=True):
      return ConvBlock(a, b, k, relu, batchnorm_affine)

    width, prep = num_channels * fold * fold, []
    for features in prep_features:
      prep.append(block(width, features, 1))
      width = features
    self.prep = nn.ModuleList(prep)
    encoder = []
    for features in encoder_features:
      encoder.append(block(width, features, 3))
      width = features
    self.encoder = nn.ModuleList(encoder)
    self.bottleneck = block(width, bottleneck_features, 3)
    width = bottleneck_features
    upsample, decoder = [], []
    for skip, features in zip(reversed(encoder_features), decoder_features, strict=True):
      upsample.append(ConvTranspose2d(width, skip, 3, stride=2, padding=1, output_padding=1))
      decoder.append(block(2 * skip, features, 3))
      width = features
    self.upsample = nn.ModuleList(upsample)
    self.decoder = nn.ModuleList(decoder)
    self.dec0 = block(width, dec0_features, 3)
    width, post = dec0_features, []
    for i, features in enumerate(post_features):
      post.append(block(width, features, 1, relu=i < len(post_features) - 1))
      width = features
    self.post = nn.ModuleList(post)
    self.out = block(width, head_features * fold * fold, 1, relu=False)
    self.head = KeypointHead(head_features, num_kp, temperature)

  def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
    x = fold(x, self.fold)
    for block in self.prep:
      x = block(x)
    skips = []
    for i, block in enumerate(self.encoder):
      if i:
        x = F.max_pool2d(x, 2)
      x = block(x)
      skips.append(x)
    encoded = self.bottleneck(F.max_pool2d(x, 2))
    x = encoded
    for upsample, block, skip in zip(self.upsample, self.decoder, reversed(skips), strict=True):
      x = block(torch.cat([upsample(x), skip], dim=1))
    x = self.dec0(x)
    for block in self.post:
      x = block(x)
    out = self.head(unfold(self.out(x), self.fold))
    out['encoder_features'] = encoded
    return out
