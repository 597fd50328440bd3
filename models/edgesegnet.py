"""EdgeSegNet: one main path with long and short additive connections.

Not a U-Net: a stem, a bottleneck-reduction branch on the stem output, a
residual bottleneck on the pooled stem, and RefineNet-style refine modules
that merge them by addition, ending in bilinear upsampling to full size.
The graph follows the public PyTorch ports (written for 256x256 with widths
13 / 193 / 217); the article's counts imply narrower widths, which are the
defaults here (see docs/architectures.md).
"""

from __future__ import annotations

import jax
import ml_collections
from flax import nnx

from models import layers, ops
from models.base import KeypointModel
from models.keypoint_head import Deferred, KeypointHead


def default_config() -> ml_collections.ConfigDict:
  """Widths scaled from the public ports' 13 / 193 / 217 to the article's counts."""
  return ml_collections.ConfigDict(
    {
      'num_kp': 10,
      'num_channels': 3,
      'temperature': 0.1,
      # The ports' 13 / 193 / 217 give ~4.3 M parameters at 64x64; these give
      # 682,747 and 120.26 M mult-adds against the article's 651,617 and 125.37 M.
      'stem_features': 8,
      'bottleneck_features': 72,
      'refine_features': 88,
      'head_features': 35,
    }
  )


class BottleneckReduction(nnx.Module):
  """conv 3x3 stride 8 (no pad) + ReLU -> 1x1 + ReLU -> 3x3, then bilinear x2."""

  def __init__(self, in_features: int, features: int, *, rngs: nnx.Rngs):
    self.reduce = layers.Conv(in_features, features, 3, stride=8, rngs=rngs)
    self.pointwise = layers.Conv(features, features, 1, rngs=rngs)
    self.conv = layers.Conv(features, features, 3, padding=1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.pointwise(nnx.relu(self.reduce(x))))
    return ops.upsample_bilinear(self.conv(x), 2)


class ResidualBottleneck(nnx.Module):
  """Pre-activated bottleneck with stride 2 and a 3x3 stride-2 shortcut."""

  def __init__(self, in_features: int, features: int, *, rngs: nnx.Rngs):
    self.norm_in = layers.BatchNorm(in_features, rngs=rngs)
    self.conv1 = layers.Conv(in_features, features, 1, rngs=rngs)
    self.norm1 = layers.BatchNorm(features, rngs=rngs)
    self.conv2 = layers.Conv(features, features, 3, stride=2, padding=1, rngs=rngs)
    self.norm2 = layers.BatchNorm(features, rngs=rngs)
    self.conv3 = layers.Conv(features, features, 1, rngs=rngs)
    self.shortcut = layers.Conv(in_features, features, 3, stride=2, padding=1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.norm_in(x))
    branch = nnx.relu(self.norm1(self.conv1(x)))
    branch = self.conv3(nnx.relu(self.norm2(self.conv2(branch))))
    return branch + self.shortcut(x)


class RefineModule(nnx.Module):
  """RefineNet-style: 1x1 projection plus a 1x1 -> 3x3 -> 3x3 residual branch."""

  def __init__(self, in_features: int, features: int, *, rngs: nnx.Rngs):
    self.project = layers.Conv(in_features, features, 1, rngs=rngs)
    self.conv1 = layers.Conv(features, features, 1, rngs=rngs)
    self.conv2 = layers.Conv(features, features, 3, padding=1, rngs=rngs)
    self.conv3 = layers.Conv(features, features, 3, padding=1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    # project and conv1 are consecutive 1x1 convs: one matmul gives both outputs.
    x, branch = layers.pointwise_pair(self.project, self.conv1, x)
    branch = nnx.relu(self.conv2(nnx.relu(branch)))
    return x + self.conv3(branch)


class EdgeSegNet(KeypointModel):
  """EdgeSegNet with a 1x1 projection to head_features and FOMM's head."""

  name = 'edgesegnet'

  def __init__(
    self,
    *,
    num_kp: int,
    num_channels: int,
    temperature: float,
    stem_features: int,
    bottleneck_features: int,
    refine_features: int,
    head_features: int,
    rngs: nnx.Rngs,
  ):
    c0, c1, c2 = stem_features, bottleneck_features, refine_features
    self.num_channels = num_channels
    self.default_input_size = 64
    self.stem = layers.Conv(num_channels, c0, 7, stride=2, padding=3, rngs=rngs)
    self.reduction = BottleneckReduction(c0, c1, rngs=rngs)
    self.residual = ResidualBottleneck(c0, c1, rngs=rngs)
    self.refine_bottom = RefineModule(c1, c1, rngs=rngs)
    self.refine_merge = RefineModule(c1, c2, rngs=rngs)
    self.refine_long = RefineModule(c0, c2, rngs=rngs)
    self.refine_out = RefineModule(c2, c2, rngs=rngs)
    self.out = layers.Conv(c2, head_features, 1, rngs=rngs)
    self.head = KeypointHead(head_features, num_kp=num_kp, temperature=temperature, rngs=rngs)

  def input_divisor(self) -> int:
    # Stem /2, pool /2, residual /2; the stride-8 reduction on the stem output
    # then lands on the same grid after its x2 upsampling for multiples of 16.
    return 16

  def backbone(self, x: jax.Array) -> tuple[Deferred, jax.Array]:
    stem = self.stem(x)
    pooled = ops.max_pool(stem, window=3, stride=2, padding=1)
    top = self.reduction(stem)
    bottom = self.refine_bottom(self.residual(pooled))
    encoded = top + bottom
    x = ops.upsample_bilinear(self.refine_merge(encoded), 2)
    x = x + self.refine_long(pooled)
    # out(upsample(refine_out(x), 4)), with `out` and the head's 1x1 convs run
    # before the upsampling, at 16x16 (models/keypoint_head.py).
    return Deferred(self.refine_out(x), self.out, upsample=4, mode='bilinear'), encoded
