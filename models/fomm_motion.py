"""FOMM's dense motion network: keypoints and jacobians -> a dense deformation and occlusion.

Module names follow FOMM's `DenseMotionNetwork` (`hourglass.encoder.down_blocks.{i}`,
`mask`, `occlusion`), so its checkpoint keys under
`generator.dense_motion_network.` map onto this tree by rule. Arrays are NHWC;
the outputs keep FOMM's keys with channels last.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models import ops
from models.fomm import Hourglass
from models.layers import Conv


def check_scale_factor(scale_factor: float, what: str) -> int:
  """1/scale_factor as an integer; raises ValueError unless it is one (FOMM subsamples by it)."""
  inverse = round(1.0 / scale_factor) if scale_factor > 0 else 0
  if not 0 < scale_factor <= 1 or abs(inverse * scale_factor - 1.0) > 1e-6:
    raise ValueError(f'{what}: scale_factor must be 1/n for a whole n; got {scale_factor}.')
  return inverse


def sparse_motions(
  kp_source: dict[str, jax.Array], kp_driving: dict[str, jax.Array], height: int, width: int
) -> jax.Array:
  """FOMM's eq. 4: for each keypoint, where each driving pixel comes from in the source.

  z -> J_s J_d^-1 (z - kp_d) + kp_s, with the identity (the background) first.

  Returns:
    (B, K + 1, H, W, 2) sampling grids, x first.
  """
  identity = ops.coordinate_grid(height, width)
  driving, source = kp_driving['kp'], kp_source['kp']
  grids = identity[None, None] - driving[:, :, None, None, :]
  if kp_driving.get('jacobian') is not None:
    jacobian = kp_source['jacobian'] @ jnp.linalg.inv(kp_driving['jacobian'])
    grids = jnp.einsum('bkij,bkhwj->bkhwi', jacobian, grids)
  grids = grids + source[:, :, None, None, :]
  background = jnp.broadcast_to(identity, (grids.shape[0], 1, height, width, 2))
  return jnp.concatenate([background, grids], axis=1)


def heatmap_representation(
  kp_source: dict[str, jax.Array],
  kp_driving: dict[str, jax.Array],
  height: int,
  width: int,
  variance: float,
) -> jax.Array:
  """FOMM's eq. 6: driving minus source Gaussians, a zero map (the background) first.

  Returns:
    (B, H, W, K + 1).
  """
  heatmap = ops.kp_to_gaussian(kp_driving['kp'], height, width, variance) - ops.kp_to_gaussian(
    kp_source['kp'], height, width, variance
  )
  return jnp.pad(heatmap, ((0, 0), (0, 0), (0, 0), (1, 0)))


class DenseMotionNetwork(nnx.Module):
  """FOMM's DenseMotionNetwork, on NHWC frames.

  Calling it with (source image, kp_driving, kp_source) returns `sparse_deformed`
  (B, K + 1, h, w, C), `mask` (B, h, w, K + 1), `deformation` (B, h, w, 2) and,
  with `estimate_occlusion_map`, `occlusion_map` (B, h, w, 1), where h, w are
  the frame's size times `scale_factor`.
  """

  def __init__(
    self,
    *,
    block_expansion: int,
    num_blocks: int,
    max_features: int,
    num_kp: int,
    num_channels: int,
    estimate_occlusion_map: bool = False,
    scale_factor: float = 1.0,
    kp_variance: float = 0.01,
    align_corners: bool = False,
    rngs: nnx.Rngs,
  ):
    check_scale_factor(scale_factor, 'dense motion network')
    self.num_kp = num_kp
    self.scale_factor = scale_factor
    self.kp_variance = kp_variance
    self.align_corners = align_corners
    in_features = (num_kp + 1) * (num_channels + 1)
    self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features, rngs=rngs)
    out_features = self.hourglass.out_features
    self.mask = Conv(out_features, num_kp + 1, 7, padding=3, rngs=rngs)
    self.occlusion = (
      Conv(out_features, 1, 7, padding=3, rngs=rngs) if estimate_occlusion_map else None
    )

  def deformed_sources(self, image: jax.Array, motions: jax.Array) -> jax.Array:
    """FOMM's eq. 7: the image warped by each sparse motion, (B, K + 1, H, W, C)."""
    batch, height, width, channels = image.shape
    copies = motions.shape[1]
    repeated = jnp.broadcast_to(image[:, None], (batch, copies, height, width, channels))
    warped = ops.grid_sample(
      repeated.reshape(batch * copies, height, width, channels),
      motions.reshape(batch * copies, height, width, 2),
      align_corners=self.align_corners,
    )
    return warped.reshape(batch, copies, height, width, channels)

  def __call__(
    self, source_image: jax.Array, kp_driving: dict[str, jax.Array], kp_source: dict[str, jax.Array]
  ) -> dict[str, jax.Array]:
    image = ops.anti_alias_downsample(source_image, self.scale_factor)
    batch, height, width, channels = image.shape
    heatmap = heatmap_representation(kp_source, kp_driving, height, width, self.kp_variance)
    motions = sparse_motions(kp_source, kp_driving, height, width)
    deformed = self.deformed_sources(image, motions)
    out = {'sparse_deformed': deformed}
    # FOMM's channel order: per keypoint (background first), its heatmap then its image.
    per_kp = jnp.concatenate([heatmap[..., None], deformed.transpose(0, 2, 3, 1, 4)], axis=-1)
    features, _ = self.hourglass(per_kp.reshape(batch, height, width, -1))
    mask = jax.nn.softmax(self.mask(features), axis=-1)
    out['mask'] = mask
    out['deformation'] = jnp.einsum('bhwk,bkhwd->bhwd', mask, motions)
    if self.occlusion is not None:
      out['occlusion_map'] = jax.nn.sigmoid(self.occlusion(features))
    return out
