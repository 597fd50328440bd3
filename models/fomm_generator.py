"""FOMM's occlusion-aware generator: a source frame re-posed by two sets of keypoints.

Module names follow FOMM's `OcclusionAwareGenerator` (`first`, `down_blocks.{i}`,
`bottleneck.r{i}`, `up_blocks.{i}`, `final`, `dense_motion_network`), so the
`generator` state dict of FOMM's checkpoint maps onto this tree by rule. The
defaults are vox-256's. Frames are NHWC float32 in [0, 1]; keypoints are the
dicts the zoo's detectors return ({'kp': (B, K, 2), 'jacobian': (B, K, 2, 2)}).
"""

from __future__ import annotations

import jax
import ml_collections
from flax import nnx

from models import ops
from models.fomm import DownBlock, UpBlock
from models.fomm_motion import DenseMotionNetwork
from models.layers import BatchNorm, Conv


def default_config() -> ml_collections.ConfigDict:
  """FOMM's vox-256 generator with its dense motion network (flat: `dense_motion_*`)."""
  return ml_collections.ConfigDict(
    {
      'num_kp': 10,
      'num_channels': 3,
      'block_expansion': 64,
      'max_features': 512,
      'num_down_blocks': 2,
      'num_bottleneck_blocks': 6,
      'estimate_occlusion_map': True,
      'dense_motion_block_expansion': 64,
      'dense_motion_max_features': 1024,
      'dense_motion_num_blocks': 5,
      'dense_motion_scale_factor': 0.25,
      'kp_variance': 0.01,
      # grid_sample's corners: False is torch >= 1.3's default, the one FOMM's code
      # gets today; FOMM trained on torch 1.0, whose grid_sample aligned corners.
      'align_corners': False,
    }
  )


class SameBlock(nnx.Module):
  """conv -> BatchNorm -> ReLU at the same size (FOMM's SameBlock2d)."""

  def __init__(
    self,
    in_features: int,
    out_features: int,
    kernel_size: int,
    *,
    form: str | None = None,
    rngs: nnx.Rngs,
  ):
    self.conv = Conv(
      in_features, out_features, kernel_size, padding=kernel_size // 2, form=form, rngs=rngs
    )
    self.norm = BatchNorm(out_features, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return nnx.relu(self.norm(self.conv(x)))


class ResBlock(nnx.Module):
  """Pre-activation residual block, BN -> ReLU -> conv twice (FOMM's ResBlock2d)."""

  def __init__(self, features: int, *, rngs: nnx.Rngs):
    self.conv1 = Conv(features, features, 3, padding=1, rngs=rngs)
    self.conv2 = Conv(features, features, 3, padding=1, rngs=rngs)
    self.norm1 = BatchNorm(features, rngs=rngs)
    self.norm2 = BatchNorm(features, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    out = self.conv1(nnx.relu(self.norm1(x)))
    return self.conv2(nnx.relu(self.norm2(out))) + x


class Bottleneck(nnx.Module):
  """ResBlocks named r0, r1, ... as in FOMM's nn.Sequential (keys `bottleneck.r{i}.*`)."""

  def __init__(self, features: int, num_blocks: int, *, rngs: nnx.Rngs):
    self.num_blocks = num_blocks
    for i in range(num_blocks):
      setattr(self, f'r{i}', ResBlock(features, rngs=rngs))

  def __call__(self, x: jax.Array) -> jax.Array:
    for i in range(self.num_blocks):
      x = getattr(self, f'r{i}')(x)
    return x


def deform(x: jax.Array, deformation: jax.Array, *, align_corners: bool = False) -> jax.Array:
  """FOMM's deform_input: the deformation resized (bilinear) to `x`'s size, then grid_sample."""
  deformation = ops.resize_bilinear(deformation, *x.shape[1:3])
  return ops.grid_sample(x, deformation, align_corners=align_corners)


class OcclusionAwareGenerator(nnx.Module):
  """FOMM's generator: encode the source, warp its features, mask occlusions, decode.

  `generator(source, kp_source, kp_driving)` returns `prediction` (B, H, W, C)
  and FOMM's other keys: the dense motion network's `mask` (B, h, w, K + 1),
  `sparse_deformed` (B, K + 1, h, w, C) and `occlusion_map` (B, h, w, 1, with
  `estimate_occlusion_map`), and `deformed` (the source warped at full size),
  all channels last. Like FOMM's, it does not return the dense `deformation`
  (`dense_motion_network(...)['deformation']` has it).
  """

  name: str = 'fomm_generator'

  def __init__(
    self,
    *,
    num_kp: int,
    num_channels: int,
    block_expansion: int,
    max_features: int,
    num_down_blocks: int,
    num_bottleneck_blocks: int,
    estimate_occlusion_map: bool,
    dense_motion_block_expansion: int,
    dense_motion_max_features: int,
    dense_motion_num_blocks: int,
    dense_motion_scale_factor: float,
    kp_variance: float,
    align_corners: bool,
    rngs: nnx.Rngs,
  ):
    self.num_channels = num_channels
    self.align_corners = align_corners
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
      rngs=rngs,
    )
    # The dense motion hourglass halves its (downsampled) input num_blocks times.
    inverse = round(1.0 / dense_motion_scale_factor)
    self.input_divisor = max(inverse * 2**dense_motion_num_blocks, 2**num_down_blocks)
    self.default_input_size = 64 * inverse

    def width(i: int) -> int:
      return min(max_features, block_expansion * 2**i)

    # Conv forms measured at 256x256 (models/convolution.py): XLA's convolution for the RGB
    # stem, the output-shifted product for the 3-channel output conv.
    self.first = SameBlock(num_channels, block_expansion, 7, form='direct', rngs=rngs)
    self.down_blocks = nnx.List(
      [DownBlock(width(i), width(i + 1), rngs=rngs) for i in range(num_down_blocks)]
    )
    self.bottleneck = Bottleneck(width(num_down_blocks), num_bottleneck_blocks, rngs=rngs)
    self.up_blocks = nnx.List(
      [
        UpBlock(width(num_down_blocks - i), width(num_down_blocks - i - 1), rngs=rngs)
        for i in range(num_down_blocks)
      ]
    )
    self.final = Conv(block_expansion, num_channels, 7, padding=3, form='out_shift', rngs=rngs)

  def check_input_shape(self, shape: tuple[int, ...]) -> None:
    """Raises ValueError, naming the shape and the need, if the frames are unusable."""
    divisor = self.input_divisor
    if (
      len(shape) != 4
      or shape[-1] != self.num_channels
      or min(shape[1:3]) <= 0
      or shape[1] % divisor
      or shape[2] % divisor
    ):
      size = self.default_input_size
      raise ValueError(
        f'{self.name}: got source frames of shape {tuple(shape)}; it needs (B, H, W, '
        f'{self.num_channels}) float frames with H and W positive multiples of {divisor} '
        f'(e.g. {size}x{size}).'
      )

  def __call__(
    self,
    source_image: jax.Array,
    kp_source: dict[str, jax.Array],
    kp_driving: dict[str, jax.Array],
  ) -> dict[str, jax.Array]:
    """The source re-posed from `kp_source` to `kp_driving`, with FOMM's intermediate outputs."""
    self.check_input_shape(source_image.shape)
    out = self.first(source_image)
    for block in self.down_blocks:
      out = block(out)
    motion = self.dense_motion_network(source_image, kp_driving, kp_source)
    deformation = motion['deformation']
    # FOMM's generator passes on these two; the deformation stays the motion network's.
    outputs = {key: motion[key] for key in ('mask', 'sparse_deformed')}
    out = deform(out, deformation, align_corners=self.align_corners)
    if 'occlusion_map' in motion:
      occlusion = motion['occlusion_map']
      outputs['occlusion_map'] = occlusion
      out = out * ops.resize_bilinear(occlusion, *out.shape[1:3])
    outputs['deformed'] = deform(source_image, deformation, align_corners=self.align_corners)
    out = self.bottleneck(out)
    for block in self.up_blocks:
      out = block(out)
    outputs['prediction'] = jax.nn.sigmoid(self.final(out))
    return outputs
