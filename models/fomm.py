"""The teacher: FOMM's KPDetector (anti-alias downsampling, hourglass, 7x7 heads).

Module names follow FOMM's (`predictor.encoder.down_blocks.{i}.conv`,
`.norm`, `predictor.decoder.up_blocks.{i}`), so its checkpoint maps onto this
tree by rule. The defaults are FOMM's vox-256 configuration: 14,215,368
parameters, taking 256x256 frames that it first downsamples to 64x64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from models import layers, ops
from models.base import KeypointModel
from models.keypoint_head import KeypointHead
from models.layers import BatchNorm, Conv


def default_config() -> ml_collections.ConfigDict:
  """FOMM's vox-256 keypoint detector."""
  return ml_collections.ConfigDict(
    {
      'num_kp': 10,
      'num_channels': 3,
      'block_expansion': 32,
      'max_features': 1024,
      'num_blocks': 5,
      'temperature': 0.1,
      'single_jacobian_map': False,
      # 0.25 takes 256x256 frames; 1.0 takes frames already at 64x64.
      'scale_factor': 0.25,
      'head_kernel_size': 7,
      'pad': 0,
    }
  )


class DownBlock(nnx.Module):
  """conv 3x3 -> BatchNorm -> ReLU -> 2x2 average pool (FOMM's DownBlock2d)."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    self.conv = Conv(in_features, out_features, 3, padding=1, rngs=rngs)
    self.norm = BatchNorm(out_features, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return ops.avg_pool_2x2(nnx.relu(self.norm(self.conv(x))))


class UpBlock(nnx.Module):
  """nearest x2 -> conv 3x3 -> BatchNorm -> ReLU (FOMM's UpBlock2d)."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    self.conv = Conv(in_features, out_features, 3, padding=1, rngs=rngs)
    self.norm = BatchNorm(out_features, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    # conv(upsample(x)) without building the upsampled map (models/convolution.py).
    return nnx.relu(self.norm(layers.conv_after_upsample(self.conv, x, 2)))


def _width(i: int, block_expansion: int, max_features: int) -> int:
  return min(max_features, block_expansion * 2**i)


class Encoder(nnx.Module):
  """FOMM's hourglass encoder: returns the input and every block's output."""

  def __init__(self, block_expansion, in_features, num_blocks, max_features, *, rngs):
    self.down_blocks = nnx.List(
      [
        DownBlock(
          in_features if i == 0 else _width(i, block_expansion, max_features),
          _width(i + 1, block_expansion, max_features),
          rngs=rngs,
        )
        for i in range(num_blocks)
      ]
    )

  def __call__(self, x: jax.Array) -> list[jax.Array]:
    outs = [x]
    for block in self.down_blocks:
      outs.append(block(outs[-1]))
    return outs


class Decoder(nnx.Module):
  """FOMM's hourglass decoder; up_blocks[0] is the deepest (1024 -> 512)."""

  def __init__(self, block_expansion, in_features, num_blocks, max_features, *, rngs):
    # The deepest block sees the bottleneck alone, every later one also the skip.
    self.up_blocks = nnx.List(
      [
        UpBlock(
          (1 if i == num_blocks - 1 else 2) * _width(i + 1, block_expansion, max_features),
          _width(i, block_expansion, max_features),
          rngs=rngs,
        )
        for i in reversed(range(num_blocks))
      ]
    )
    self.out_features = block_expansion + in_features

  def __call__(self, skips: list[jax.Array]) -> jax.Array:
    out = skips[-1]
    for block, skip in zip(self.up_blocks, reversed(skips[:-1]), strict=True):
      out = jnp.concatenate([block(out), skip], axis=-1)
    return out


class Hourglass(nnx.Module):
  """FOMM's hourglass: returns (decoder output, encoder bottleneck)."""

  def __init__(self, block_expansion, in_features, num_blocks, max_features, *, rngs):
    args = (block_expansion, in_features, num_blocks, max_features)
    self.encoder = Encoder(*args, rngs=rngs)
    self.decoder = Decoder(*args, rngs=rngs)
    self.out_features = self.decoder.out_features

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    skips = self.encoder(x)
    return self.decoder(skips), skips[-1]


class FommKeypointDetector(KeypointModel):
  """FOMM's keypoint detector, the teacher."""

  name = 'fomm_teacher'

  def __init__(
    self,
    *,
    num_kp: int,
    num_channels: int,
    block_expansion: int,
    max_features: int,
    num_blocks: int,
    temperature: float,
    single_jacobian_map: bool,
    scale_factor: float,
    head_kernel_size: int,
    pad: int,
    rngs: nnx.Rngs,
  ):
    inverse = round(1.0 / scale_factor) if scale_factor > 0 else 0
    if not 0 < scale_factor <= 1 or abs(inverse * scale_factor - 1.0) > 1e-6:
      raise ValueError(
        f'{self.name}: scale_factor must be 1/n for a whole n (FOMM subsamples by '
        f'int(1/scale)); got {scale_factor}.'
      )
    self.num_channels = num_channels
    self.scale_factor = scale_factor
    self.num_blocks = num_blocks
    self.inverse_scale = inverse
    self.default_input_size = 64 * inverse
    self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features, rngs=rngs)
    self.head = KeypointHead(
      self.predictor.out_features,
      num_kp=num_kp,
      kernel_size=head_kernel_size,
      padding=pad,
      temperature=temperature,
      single_jacobian_map=single_jacobian_map,
      rngs=rngs,
    )

  def input_divisor(self) -> int:
    return self.inverse_scale * 2**self.num_blocks

  def backbone(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.predictor(ops.anti_alias_downsample(x, self.scale_factor))
