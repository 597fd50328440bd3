"""FOMM's keypoint head, shared by the teacher and every student.

Heatmap logits -> softmax over space at temperature 0.1 -> keypoints as the
expected (x, y) on the [-1, 1] grid; jacobians as the heatmap-weighted sums
of a 4-channel-per-keypoint map, initialised to identity (FOMM's KPDetector).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import layers, ops
from models.layers import Conv


class KeypointHead(nnx.Module):
  """Maps a (B, H, W, C) feature map to keypoints, jacobians and heatmaps."""

  def __init__(
    self,
    in_features: int,
    *,
    num_kp: int = 10,
    kernel_size: int = 1,
    padding: int = 0,
    temperature: float = 0.1,
    single_jacobian_map: bool = False,
    rngs: nnx.Rngs,
  ):
    """Creates the head.

    Args:
      in_features: channels of the feature map.
      num_kp: number of keypoints.
      kernel_size: of both head convs (7 in FOMM's teacher, 1 in the students).
      padding: of both head convs (FOMM's `pad`, 0 for vox-256).
      temperature: softmax temperature of the heatmaps.
      single_jacobian_map: one jacobian map shared by all keypoints (FOMM option).
      rngs: random streams for initialisation.
    """
    self.num_kp = num_kp
    self.temperature = temperature
    self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
    self.kp = Conv(in_features, num_kp, kernel_size, padding=padding, rngs=rngs)
    self.jacobian = Conv(
      in_features, 4 * self.num_jacobian_maps, kernel_size, padding=padding, rngs=rngs
    )
    # Identity jacobians at initialisation, as FOMM does.
    self.jacobian.kernel[...] = np.zeros(self.jacobian.kernel.shape, np.float32)
    self.jacobian.bias[...] = np.tile(np.float32([1, 0, 0, 1]), self.num_jacobian_maps)

  def __call__(self, features: jax.Array) -> dict[str, jax.Array]:
    """Returns `kp` (B, K, 2), `jacobian` (B, K, 2, 2) and `heatmap` (B, K, H, W)."""
    # One conv for both heads: the teacher's 7x7 heads read a 64x64x35 map once.
    logits, jacobian_map = layers.shared_input_convs([self.kp, self.jacobian], features)
    batch, height, width, num_kp = logits.shape
    flat = logits.reshape(batch, height * width, num_kp) / self.temperature
    heatmap = jax.nn.softmax(flat, axis=1).reshape(batch, height, width, num_kp)
    grid = ops.coordinate_grid(height, width)
    kp = jnp.einsum('bhwk,hwd->bkd', heatmap, grid)

    jacobian_map = jacobian_map.reshape(batch, height, width, self.num_jacobian_maps, 4)
    # A single shared map broadcasts over the keypoints.
    jacobian_map = jnp.broadcast_to(jacobian_map, (batch, height, width, num_kp, 4))
    jacobian = jnp.einsum('bhwk,bhwkd->bkd', heatmap, jacobian_map)
    return {
      'kp': kp,
      'jacobian': jacobian.reshape(batch, num_kp, 2, 2),
      'heatmap': heatmap.transpose(0, 3, 1, 2),
    }
