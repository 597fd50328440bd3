"""FOMM's keypoint head, shared by the teacher and every student.

Heatmap logits -> softmax over space at temperature 0.1 -> keypoints as the
expected (x, y) on the [-1, 1] grid; jacobians as the heatmap-weighted sums
of a 4-channel-per-keypoint map, initialised to identity (FOMM's KPDetector).

Two ways of computing the same function faster than written (both exact up
to float rounding; tests/test_models.py checks them against the plain form):

- A backbone may hand the head `Deferred` features: a low-resolution map
  whose last 1x1 projection and upsampling have not run yet. With 1x1 head
  convs, projection, head convs and the upsampling are all linear and
  per-pixel or per-channel, so the head composes the two 1x1 kernels and
  runs them at the low resolution, then upsamples the few logit and jacobian
  channels (EdgeSegNet: 16x16 instead of 64x64).
- Softmax, keypoints and jacobians are one matrix product: the unnormalised
  weights exp((l - max) / T) times [1, grid, jacobian maps], divided by the
  first column (the softmax's sum).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import convolution, layers, ops
from models.layers import Conv

UPSAMPLERS: dict[str, Callable[[jax.Array, int], jax.Array]] = {
  'nearest': ops.upsample_nearest,
  'bilinear': ops.upsample_bilinear,
}


@dataclasses.dataclass(frozen=True)
class Deferred:
  """Features whose final 1x1 `projection` and `upsample`-fold upsampling are left to the head.

  Means: head(projection(UPSAMPLERS[mode](features, upsample))). Both upsamplers
  weight each output pixel by source pixels with weights summing to one, so
  they commute with a 1x1 conv, bias included.
  """

  features: jax.Array
  projection: Conv
  upsample: int
  mode: str = 'bilinear'


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

  def __call__(self, features: jax.Array | Deferred) -> dict[str, jax.Array]:
    """Returns `kp` (B, K, 2), `jacobian` (B, K, 2, 2) and `heatmap` (B, K, H, W)."""
    if isinstance(features, Deferred):
      maps = self._deferred_maps(features)
    else:
      # One conv for both heads: the teacher's 7x7 heads read a 64x64x35 map once.
      maps = layers.shared_input_convs([self.kp, self.jacobian], features)
    return self._keypoints(maps)

  def _deferred_maps(self, deferred: Deferred) -> jax.Array:
    """Logits and jacobian maps of `deferred`, with the 1x1 convs run before the upsampling."""
    projection, factor = deferred.projection, deferred.upsample
    if self.kp.kernel.shape[:2] != (1, 1):
      raise ValueError('Deferred features need 1x1 head convs (a student head).')
    if deferred.mode not in UPSAMPLERS:
      raise ValueError(f'unknown upsampling {deferred.mode!r}; one of {sorted(UPSAMPLERS)}.')
    head_kernel = jnp.concatenate([self.kp.kernel[0, 0], self.jacobian.kernel[0, 0]], -1)
    head_bias = jnp.concatenate([self.kp.bias[...], self.jacobian.bias[...]])
    kernel, bias = layers.composed_pointwise(projection, head_kernel, head_bias)
    maps = convolution.conv2d(deferred.features, kernel[None, None]) + bias
    maps = UPSAMPLERS[deferred.mode](maps, factor)
    # Report the three convs as the plain form runs them, for models.summary.
    batch, height, width, channels = deferred.features.shape
    projected = (batch, height * factor, width * factor, projection.kernel.shape[-1])
    layers.record_shapes(projection, (*projected[:3], channels), projected)
    for conv in (self.kp, self.jacobian):
      layers.record_shapes(conv, projected, (*projected[:3], conv.kernel.shape[-1]))
    return maps

  def _keypoints(self, maps: jax.Array) -> dict[str, jax.Array]:
    """Softmax heatmaps, keypoints and jacobians from logits and jacobian maps (B, H, W, K + 4J)."""
    batch, height, width, _ = maps.shape
    num_kp, num_maps = self.num_kp, self.num_jacobian_maps
    maps = maps.reshape(batch, height * width, num_kp + 4 * num_maps)
    logits, jacobian_maps = maps[..., :num_kp], maps[..., num_kp:]
    # The max only keeps exp in range; it cancels in the ratio, so no gradient through it.
    peak = jax.lax.stop_gradient(logits.max(axis=1, keepdims=True))
    weights = jnp.exp((logits - peak) / self.temperature)
    pixels = height * width
    grid = ops.coordinate_grid(height, width).reshape(1, pixels, 2)
    grid = jnp.broadcast_to(grid, (batch, pixels, 2))
    rhs = jnp.concatenate([jnp.ones((batch, pixels, 1), maps.dtype), grid, jacobian_maps], -1)
    # sums[b, k] = sum over pixels of weights[b, :, k] * [1, x, y, jacobian maps].
    sums = jnp.einsum('bpk,bpc->bkc', weights, rhs)
    means = sums[..., 1:] / sums[..., :1]
    kp = means[..., :2]
    jacobian = means[..., 2:].reshape(batch, num_kp, num_maps, 4)
    if num_maps > 1:
      # Keypoint k takes its own map k: the diagonal of (keypoint, map).
      jacobian = jnp.einsum('bkmd,km->bkd', jacobian, jnp.eye(num_kp, dtype=maps.dtype))
    else:
      jacobian = jnp.broadcast_to(jacobian[:, :, 0], (batch, num_kp, 4))
    heatmap = weights / sums[:, None, :, 0]
    return {
      'kp': kp,
      'jacobian': jacobian.reshape(batch, num_kp, 2, 2),
      'heatmap': heatmap.reshape(batch, height, width, num_kp).transpose(0, 3, 1, 2),
    }
