"""SqueezeNet's Fire module and the two transposed fires built from it.

- `Fire` (Squeeze U-Net's): 1x1 squeeze + ReLU -> BatchNorm -> [1x1 expand +
  ReLU, 3x3 expand + ReLU] concatenated.
- `TransposedFire` (Squeeze U-Net's decoder block): transposed conv, optional
  skip concatenation, then a Fire.
- `FireDeconv` (SqueezeSeg's): the transposed conv sits between squeeze and
  expand, so it runs on the few squeezed channels.
Each takes `separable=True` to make its non-pointwise convs depthwise
separable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models import layers


class Squeeze(nnx.Module):
  """1x1 conv + ReLU, then BatchNorm (the order of the Squeeze U-Net code)."""

  def __init__(self, in_features: int, features: int, *, rngs: nnx.Rngs):
    self.conv = layers.Conv(in_features, features, 1, rngs=rngs)
    self.norm = layers.BatchNorm(features, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.norm(nnx.relu(self.conv(x)))


class Expand(nnx.Module):
  """Parallel 1x1 and 3x3 convs + ReLU, concatenated: 2 * features channels."""

  def __init__(self, in_features: int, features: int, *, separable: bool, rngs: nnx.Rngs):
    self.expand1x1 = layers.Conv(in_features, features, 1, rngs=rngs)
    self.expand3x3 = layers.conv(
      in_features, features, 3, padding=1, separable=separable, rngs=rngs
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    return jnp.concatenate([nnx.relu(self.expand1x1(x)), nnx.relu(self.expand3x3(x))], axis=-1)


class Fire(nnx.Module):
  """Fire(squeeze, expand): in_features -> 2 * expand channels, same size."""

  def __init__(
    self,
    in_features: int,
    squeeze: int,
    expand: int,
    *,
    separable: bool = False,
    rngs: nnx.Rngs,
  ):
    self.squeeze = Squeeze(in_features, squeeze, rngs=rngs)
    self.expand = Expand(squeeze, expand, separable=separable, rngs=rngs)
    self.out_features = 2 * expand

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.expand(self.squeeze(x))


def _transpose_geometry(stride: int) -> dict[str, int]:
  """3x3 transposed conv that multiplies the size by `stride` (Keras 'same')."""
  if stride not in (1, 2):
    raise ValueError(f'transposed fire stride must be 1 or 2, got {stride}.')
  return {'kernel_size': 3, 'stride': stride, 'padding': 1, 'output_padding': stride - 1}


class TransposedFire(nnx.Module):
  """Squeeze U-Net's up block: ConvT to `expand` channels, concat skip, Fire."""

  def __init__(
    self,
    in_features: int,
    squeeze: int,
    expand: int,
    *,
    stride: int,
    skip_features: int = 0,
    separable: bool = False,
    rngs: nnx.Rngs,
  ):
    self.upsample = layers.conv_transpose(
      in_features, expand, **_transpose_geometry(stride), separable=separable, rngs=rngs
    )
    self.fire = Fire(expand + skip_features, squeeze, expand, separable=separable, rngs=rngs)
    self.out_features = self.fire.out_features

  def __call__(self, x: jax.Array, skip: jax.Array | None = None) -> jax.Array:
    y = self.upsample(x)
    if skip is not None:
      y = jnp.concatenate([y, skip], axis=-1)
    return self.fire(y)


class FireDeconv(nnx.Module):
  """SqueezeSeg's fireDeconv: squeeze -> ConvT + ReLU on the squeezed map -> expand.

  SqueezeSeg upsamples one axis with a kernel of 4, stride 2, padding 1; on
  images both axes get that geometry (4x4). Stride 1 uses a 3x3, padding 1.
  """

  def __init__(
    self,
    in_features: int,
    squeeze: int,
    expand: int,
    *,
    stride: int,
    skip_features: int = 0,
    separable: bool = False,
    rngs: nnx.Rngs,
  ):
    if stride not in (1, 2):
      raise ValueError(f'fireDeconv stride must be 1 or 2, got {stride}.')
    self.squeeze = Squeeze(in_features, squeeze, rngs=rngs)
    self.deconv = layers.conv_transpose(
      squeeze,
      squeeze,
      4 if stride == 2 else 3,
      stride=stride,
      padding=1,
      separable=separable,
      rngs=rngs,
    )
    self.expand = Expand(squeeze + skip_features, expand, separable=separable, rngs=rngs)
    self.out_features = 2 * expand

  def __call__(self, x: jax.Array, skip: jax.Array | None = None) -> jax.Array:
    y = nnx.relu(self.deconv(self.squeeze(x)))
    if skip is not None:
      y = jnp.concatenate([y, skip], axis=-1)
    return self.expand(y)
