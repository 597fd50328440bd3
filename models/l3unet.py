"""L3U-Net: data folding, a small U-Net on the folded image, unfolding.

Folding with ratio r moves each r x r pixel block into channels, so a conv on
the folded tensor is a stride-r conv on the image with r*r times the
channels: the early, wide, shallow layers that dominate latency disappear.
The layout follows Analog Devices' AI85UNetLarge (ai8x-training): every block
is conv -> BatchNorm (no affine there) -> ReLU; prep 1x1 blocks, three
encoder levels with 2x2 max pools, a bottleneck, transposed-conv decoder
with skip concatenations, 1x1 post blocks, an output conv to
head_features * r * r channels that unfolds to head_features at full size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from models import layers, ops
from models.base import KeypointModel
from models.keypoint_head import KeypointHead


def default_config() -> ml_collections.ConfigDict:
  """Widths and fold ratio chosen to land near the article's Table 3 row.

  The ai8x reference widths with fold 4 give about 313 K parameters and 36.5 M
  mult-adds against the article's 171,065 and 62.92 M: fewer parameters and
  more compute point to a smaller fold ratio and narrower layers.
  """
  return ml_collections.ConfigDict(
    {
      'num_kp': 10,
      'num_channels': 3,
      'temperature': 0.1,
      # Fold 2 and 0.75x the reference widths: 162,311 parameters, 57.83 M
      # mult-adds (fold 4 at the reference widths: 313,124 and 36.47 M).
      'fold': 2,
      'prep_features': (48, 48, 24),
      'encoder_features': (6, 21, 42),
      'bottleneck_features': 84,
      # Conv width after each decoder concatenation, deepest first.
      'decoder_features': (42, 21, 36),
      # dec0: a 3x3 block after the decoder; then 1x1 post blocks, the last linear.
      'dec0_features': 48,
      'post_features': (48, 48, 48),
      'head_features': 35,
      'batchnorm_affine': False,
    }
  )


class ConvBlock(nnx.Module):
  """conv (bias) -> BatchNorm -> optional ReLU (ai8x's FusedConv2dBN[ReLU])."""

  def __init__(
    self,
    in_features: int,
    out_features: int,
    kernel_size: int,
    *,
    relu: bool = True,
    affine: bool,
    rngs: nnx.Rngs,
  ):
    self.conv = layers.Conv(
      in_features, out_features, kernel_size, padding=kernel_size // 2, rngs=rngs
    )
    self.norm = layers.BatchNorm(out_features, affine=affine, rngs=rngs)
    self.relu = relu

  def __call__(self, x: jax.Array) -> jax.Array:
    y = self.norm(self.conv(x))
    return nnx.relu(y) if self.relu else y


class L3UNet(KeypointModel):
  """L3U-Net with FOMM's keypoint head on the unfolded output."""

  name = 'l3unet'

  def __init__(
    self,
    *,
    num_kp: int,
    num_channels: int,
    temperature: float,
    fold: int,
    prep_features: tuple[int, ...],
    encoder_features: tuple[int, ...],
    bottleneck_features: int,
    decoder_features: tuple[int, ...],
    dec0_features: int,
    post_features: tuple[int, ...],
    head_features: int,
    batchnorm_affine: bool,
    rngs: nnx.Rngs,
  ):
    if fold < 1:
      raise ValueError(f'{self.name}: fold must be a positive integer, got {fold}.')
    if len(decoder_features) != len(encoder_features):
      raise ValueError(
        f'{self.name}: decoder_features needs one width per encoder level '
        f'({len(encoder_features)}), got {len(decoder_features)}.'
      )
    self.num_channels = num_channels
    self.default_input_size = 64
    self.fold = fold
    block = lambda a, b, k, relu=True: ConvBlock(  # noqa: E731
      a, b, k, relu=relu, affine=batchnorm_affine, rngs=rngs
    )

    width, prep = num_channels * fold * fold, []
    for features in prep_features:
      prep.append(block(width, features, 1))
      width = features
    self.prep = nnx.List(prep)

    encoder = []
    for features in encoder_features:
      encoder.append(block(width, features, 3))
      width = features
    self.encoder = nnx.List(encoder)
    self.bottleneck = block(width, bottleneck_features, 3)
    width = bottleneck_features

    upsample, decoder = [], []
    for skip_features, features in zip(reversed(encoder_features), decoder_features, strict=True):
      upsample.append(
        layers.ConvTranspose(
          width, skip_features, 3, stride=2, padding=1, output_padding=1, rngs=rngs
        )
      )
      decoder.append(block(2 * skip_features, features, 3))
      width = features
    self.upsample = nnx.List(upsample)
    self.decoder = nnx.List(decoder)

    self.dec0 = block(width, dec0_features, 3)
    width, post = dec0_features, []
    for i, features in enumerate(post_features):
      # The last post block is linear (conv + BN, no ReLU), as in the reference.
      post.append(block(width, features, 1, relu=i < len(post_features) - 1))
      width = features
    self.post = nnx.List(post)
    self.out = block(width, head_features * fold * fold, 1, relu=False)
    self.head = KeypointHead(head_features, num_kp=num_kp, temperature=temperature, rngs=rngs)

  def input_divisor(self) -> int:
    return self.fold * 2 ** len(self.encoder)

  def backbone(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = ops.fold(x, self.fold)
    for block in self.prep:
      x = block(x)
    skips = []
    for i, block in enumerate(self.encoder):
      if i:
        x = ops.max_pool(x, window=2, stride=2)
      x = block(x)
      skips.append(x)
    encoded = self.bottleneck(ops.max_pool(x, window=2, stride=2))
    x = encoded
    for upsample, block, skip in zip(self.upsample, self.decoder, reversed(skips), strict=True):
      x = block(jnp.concatenate([upsample(x), skip], axis=-1))
    x = self.dec0(x)
    for block in self.post:
      x = block(x)
    return ops.unfold(self.out(x), self.fold), encoded
