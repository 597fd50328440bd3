"""The Squeeze U-Net family in PyTorch (see models/squeeze_unet.py for the geometry)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_twins.blocks import Fire, FireDeconv, TransposedFire, conv
from torch_twins.head import KeypointHead

DECODER_BLOCKS = {'transposed_fire': TransposedFire, 'fire_deconv': FireDeconv}


class SqueezeUNet(nn.Module):
  def __init__(
    self,
    *,
    num_kp,
    num_channels,
    temperature,
    stem_features,
    encoder,
    fires_per_stage,
    pool_before,
    dropout,
    decoder,
    decoder_block,
    skips,
    depthwise_separable,
    final_features,
    head_features,
    heatmap_stride,
  ):
    super().__init__()
    separable = depthwise_separable
    self.pool_before = tuple(pool_before)
    self.skips = skips
    self.heatmap_stride = heatmap_stride
    self.stem = conv(num_channels, stem_features, 3, stride=2, padding=1, separable=separable)
    stages, stage_inputs, width = [], [], stem_features
    for squeeze, expand in encoder:
      stage_inputs.append(width)
      stage = []
      for _ in range(fires_per_stage):
        stage.append(Fire(width, squeeze, expand, separable))
        width = stage[-1].out_features
      stages.append(nn.ModuleList(stage))
    self.encoder = nn.ModuleList(stages)
    self.dropout = nn.Dropout(dropout)
    blocks = []
    for j, (squeeze, expand, stride) in enumerate(decoder):
      skip = stage_inputs[len(encoder) - 1 - j] if skips else 0
      blocks.append(DECODER_BLOCKS[decoder_block](width, squeeze, expand, stride, skip, separable))
      width = blocks[-1].out_features
    self.decoder = nn.ModuleList(blocks)
    self.final = None
    if final_features:
      in_features = width + (stem_features if skips else 0)
      self.final = conv(in_features, final_features, 3, padding=1, separable=separable)
      width = final_features
    self.out = nn.Conv2d(width, head_features, 1)
    self.head = KeypointHead(head_features, num_kp, temperature)

  def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
    height = x.shape[2]
    x01 = torch.relu(self.stem(x))
    x, stage_inputs = x01, []
    for pool, stage in zip(self.pool_before, self.encoder, strict=True):
      if pool:
        x = F.max_pool2d(x, 3, stride=2, padding=1)
      stage_inputs.append(x)
      for fire in stage:
        x = fire(x)
    encoded = x
    x = self.dropout(x)
    for j, block in enumerate(self.decoder):
      x = block(x, stage_inputs[-1 - j] if self.skips else None)
    if self.final is not None:
      x = F.interpolate(x, scale_factor=x01.shape[2] // x.shape[2], mode='nearest')
      if self.skips:
        x = torch.cat([x, x01], dim=1)
      x = torch.relu(self.final(x))
    factor = height // self.heatmap_stride // x.shape[2]
    if factor > 1:
      x = F.interpolate(x, scale_factor=factor, mode='nearest')
    out = self.head(self.out(x))
    out['encoder_features'] = encoded
    return out
