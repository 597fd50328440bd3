"""Squeeze U-Net and its lightweight variations, one family with switches.

- `squeeze_unet`: the baseline student (SqueezeNet 1.1 encoder, transposed
  fires with skips), 2,507,035 parameters as in the article.
- `squeeze_unet_dsc`: every non-pointwise conv depthwise separable.
- `squeeze_unet_noskip`: no encoder-decoder concatenations.
- `squeeze_encdec`: no skips and SqueezeSeg's fireDeconv in the decoder.

Geometry, for an H x W input: stem conv 3x3 stride 2 (x01, H/2) -> encoder
stages of `fires_per_stage` Fires, each stage optionally preceded by a 3x3
stride-2 max pool -> dropout -> one decoder stage per entry of `decoder`
(each concatenates the input of the mirrored encoder stage when `skips`) ->
optional tail (upsample to H/2, concatenate x01, 3x3 conv + ReLU) ->
nearest upsampling to H / heatmap_stride -> 1x1 conv to `head_features` ->
FOMM's keypoint head with 1x1 convs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from models import layers, ops
from models.base import KeypointModel
from models.fire import Fire, FireDeconv, TransposedFire
from models.keypoint_head import Deferred, KeypointHead

DECODER_BLOCKS = {'transposed_fire': TransposedFire, 'fire_deconv': FireDeconv}


def default_config() -> ml_collections.ConfigDict:
  """The Squeeze U-Net in circulation (SqueezeNet 1.1 encoder)."""
  return ml_collections.ConfigDict(
    {
      'num_kp': 10,
      'num_channels': 3,
      'temperature': 0.1,
      'stem_features': 64,
      # (squeeze, expand) of each encoder stage; every stage has fires_per_stage Fires.
      'encoder': ((16, 64), (32, 128), (48, 192), (64, 256)),
      'fires_per_stage': 2,
      # A 3x3 stride-2 max pool before each stage (the first follows the stem).
      'pool_before': (True, True, True, False),
      'dropout': 0.5,
      # (squeeze, expand, stride) of each decoder stage, deepest first.
      'decoder': ((48, 192, 1), (32, 128, 1), (16, 64, 2), (16, 32, 2)),
      'decoder_block': 'transposed_fire',
      'skips': True,
      'depthwise_separable': False,
      # Tail: a 3x3 conv at H/2 on [decoder, x01]; 0 leaves it out.
      'final_features': 64,
      'head_features': 35,
      # Heatmaps at H / heatmap_stride.
      'heatmap_stride': 1,
    }
  )


def dsc_config() -> ml_collections.ConfigDict:
  """Every non-pointwise conv replaced by depthwise + pointwise."""
  config = default_config()
  config.depthwise_separable = True
  return config


def noskip_config() -> ml_collections.ConfigDict:
  """The encoder-decoder concatenations removed."""
  config = default_config()
  config.skips = False
  return config


def encdec_config() -> ml_collections.ConfigDict:
  """No skips, SqueezeSeg's fireDeconv decoder, heatmaps at H/2.

  The article's 781,375 parameters and 26.01 M mult-adds leave about 58 K
  parameters and 2.4 M mult-adds beyond the encoder, too little to reach
  64x64 (the 1x1 heads alone cost 7.4 M there), so this decoder stops at
  32x32, which the keypoint head handles at any size.
  """
  config = noskip_config()
  config.decoder_block = 'fire_deconv'
  config.decoder = ((16, 64, 2), (8, 32, 2), (8, 16, 2))
  config.final_features = 0
  config.heatmap_stride = 2
  return config


class SqueezeUNet(KeypointModel):
  """The Squeeze U-Net family (see the module docstring for the geometry)."""

  name = 'squeeze_unet'

  def __init__(
    self,
    *,
    num_kp: int,
    num_channels: int,
    temperature: float,
    stem_features: int,
    encoder: tuple[tuple[int, int], ...],
    fires_per_stage: int,
    pool_before: tuple[bool, ...],
    dropout: float,
    decoder: tuple[tuple[int, int, int], ...],
    decoder_block: str,
    skips: bool,
    depthwise_separable: bool,
    final_features: int,
    head_features: int,
    heatmap_stride: int,
    rngs: nnx.Rngs,
  ):
    if decoder_block not in DECODER_BLOCKS:
      raise ValueError(
        f'decoder_block must be one of {sorted(DECODER_BLOCKS)}, got {decoder_block!r}.'
      )
    if len(pool_before) != len(encoder):
      raise ValueError(
        f'pool_before has {len(pool_before)} entries for {len(encoder)} encoder stages.'
      )
    if skips and len(decoder) != len(encoder):
      raise ValueError(
        f'with skips, each of the {len(encoder)} encoder stages needs a decoder stage; '
        f'got {len(decoder)}.'
      )
    self.num_channels = num_channels
    self.default_input_size = 64
    self.pool_before = tuple(pool_before)
    self.skips = skips
    self.heatmap_stride = heatmap_stride
    separable = depthwise_separable

    self.stem = layers.conv(
      num_channels, stem_features, 3, stride=2, padding=1, separable=separable, rngs=rngs
    )
    stages, stage_inputs, width = [], [], stem_features
    for squeeze, expand in encoder:
      stage_inputs.append(width)
      stage = []
      for _ in range(fires_per_stage):
        stage.append(Fire(width, squeeze, expand, separable=separable, rngs=rngs))
        width = stage[-1].out_features
      stages.append(nnx.List(stage))
    self.encoder = nnx.List(stages)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

    # Decoder stage j mirrors encoder stage (n - 1 - j): with skips it ends at
    # that stage's input resolution and concatenates its input.
    block = DECODER_BLOCKS[decoder_block]
    blocks = []
    for j, (squeeze, expand, stride) in enumerate(decoder):
      skip_features = stage_inputs[len(encoder) - 1 - j] if skips else 0
      blocks.append(
        block(
          width,
          squeeze,
          expand,
          stride=stride,
          skip_features=skip_features,
          separable=separable,
          rngs=rngs,
        )
      )
      width = blocks[-1].out_features
    self.decoder = nnx.List(blocks)
    self.decoder_upsampling = 1
    for _, _, stride in decoder:
      self.decoder_upsampling *= stride

    final = None
    if final_features:
      in_features = width + (stem_features if skips else 0)
      final = layers.conv(in_features, final_features, 3, padding=1, separable=separable, rngs=rngs)
      width = final_features
    self.final = nnx.data(final)
    self.out = layers.Conv(width, head_features, 1, rngs=rngs)
    self.head = KeypointHead(head_features, num_kp=num_kp, temperature=temperature, rngs=rngs)

  def input_divisor(self) -> int:
    return 2 ** (1 + sum(self.pool_before))

  def check_input_shape(self, shape: tuple[int, ...]) -> None:
    super().check_input_shape(shape)
    # The decoder must not overshoot the size the tail and skips expect.
    height = shape[1]
    encoded = height // self.input_divisor()
    decoded = encoded * self.decoder_upsampling
    target = height // 2 if self.final is not None else height // self.heatmap_stride
    if decoded > target or target % decoded:
      raise ValueError(
        f'{self.name}: the decoder ends at {decoded}x{decoded} for a {height}x{height} '
        f'input, which does not divide the {target}x{target} the tail needs; '
        'change the decoder strides.'
      )

  def backbone(self, x: jax.Array) -> tuple[Deferred, jax.Array]:
    height = x.shape[1]
    x01 = nnx.relu(self.stem(x))
    x, stage_inputs = x01, []
    for pool, stage in zip(self.pool_before, self.encoder, strict=True):
      if pool:
        x = ops.max_pool(x, window=3, stride=2, padding=1)
      stage_inputs.append(x)
      for fire in stage:
        x = fire(x)
    encoded = x
    x = self.dropout(x)
    for j, block in enumerate(self.decoder):
      x = block(x, stage_inputs[-1 - j] if self.skips else None)
    if self.final is not None:
      factor = x01.shape[1] // x.shape[1]
      if self.skips:
        x = self.final(jnp.concatenate([ops.upsample_nearest(x, factor), x01], axis=-1))
      elif isinstance(self.final, layers.Conv):
        # Without skips the conv follows the upsampling directly: sub-pixel form.
        x = layers.conv_after_upsample(self.final, x, factor)
      else:
        x = self.final(ops.upsample_nearest(x, factor))
      x = nnx.relu(x)
    # out(upsample_nearest(x)), with `out` and the head's 1x1 convs run before
    # the upsampling (models/keypoint_head.py).
    factor = height // self.heatmap_stride // x.shape[1]
    return Deferred(x, self.out, upsample=factor, mode='nearest'), encoded
