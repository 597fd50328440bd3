"""FOMM's training losses (its modules/model.py), as pure functions of JAX arrays.

- The reconstruction term compares the generated and the real driving frame
  over an image pyramid (FOMM's `ImagePyramide`: anti-alias downsampling to
  each of `scales`). FOMM compares VGG19 features there (`perceptual`, with
  ImageNet weights given by path: models.vgg19); without them, pixel terms
  on the same pyramid: L1, or L1 with SSIM (`pyramid_l1`, `pyramid_ssim`).
- The equivariance terms warp the driving frame by a random affine +
  thin-plate-spline transform (FOMM's `Transform`) and ask the detector's
  keypoints and jacobians to move with it.

Frames are NHWC in [0, 1]; keypoints {'kp': (B, K, 2), 'jacobian': (B, K, 2, 2)}
with x first on FOMM's [-1, 1] grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.struct
import jax
import jax.numpy as jnp

from models import ops


@flax.struct.dataclass
class Transform:
  """FOMM's random TPS transform: theta (B, 2, 3) affine, control_params (B, P*P) TPS weights."""

  theta: jax.Array
  control_params: jax.Array
  points_tps: int = flax.struct.field(pytree_node=False, default=5)

  @classmethod
  def random(
    cls, key: jax.Array, batch: int, *, sigma_affine: float, sigma_tps: float, points_tps: int
  ) -> Transform:
    """theta = [I | 0] + N(0, sigma_affine), control_params ~ N(0, sigma_tps), as FOMM draws."""
    affine_key, tps_key = jax.random.split(key)
    theta = jnp.eye(2, 3) + sigma_affine * jax.random.normal(affine_key, (batch, 2, 3))
    params = sigma_tps * jax.random.normal(tps_key, (batch, points_tps**2))
    return cls(theta, params, points_tps)

  def _warp_point(self, theta: jax.Array, params: jax.Array, point: jax.Array) -> jax.Array:
    """One point (2,) through one example's transform (FOMM's warp_coordinates)."""
    warped = theta[:, :2] @ point + theta[:, 2]
    control = ops.coordinate_grid(self.points_tps, self.points_tps).reshape(-1, 2)
    # FOMM's kernel uses the L1 distance to each control point: r^2 log r on |dx| + |dy|.
    distance = jnp.abs(point - control).sum(-1)
    return warped + jnp.sum(distance**2 * jnp.log(distance + 1e-6) * params)

  def warp_coordinates(self, coordinates: jax.Array) -> jax.Array:
    """(B, N, 2) points -> (B, N, 2): each example's points through its transform."""
    per_point = jax.vmap(self._warp_point, in_axes=(None, None, 0))
    return jax.vmap(per_point)(self.theta, self.control_params, coordinates)

  def jacobian(self, coordinates: jax.Array) -> jax.Array:
    """(B, N, 2, 2): d warped_i / d point_j at each point (FOMM takes it by autograd)."""
    per_point = jax.vmap(jax.jacfwd(self._warp_point, argnums=2), in_axes=(None, None, 0))
    return jax.vmap(per_point)(self.theta, self.control_params, coordinates)

  def transform_frame(self, frame: jax.Array) -> jax.Array:
    """The frame (B, H, W, C) resampled at the warped grid, reflection-padded (FOMM's)."""
    batch, height, width, _ = frame.shape
    grid = ops.coordinate_grid(height, width).reshape(1, -1, 2)
    grid = self.warp_coordinates(jnp.broadcast_to(grid, (batch, height * width, 2)))
    return ops.grid_sample(frame, grid.reshape(batch, height, width, 2), padding_mode='reflection')


def image_pyramid(frames: jax.Array, scales: Sequence[float]) -> list[jax.Array]:
  """FOMM's ImagePyramide: the frames anti-alias downsampled to each scale."""
  return [ops.anti_alias_downsample(frames, scale) for scale in scales]


def ssim(a: jax.Array, b: jax.Array, *, window: int = 3) -> jax.Array:
  """Mean structural similarity of (B, H, W, C) images in [0, 1], over window x window boxes
  (Monodepth's form, reflection-padded so that every pixel has a full window)."""
  c1, c2 = 0.01**2, 0.03**2
  pad = window // 2

  def pool(x):
    # A box filter as shifted slices summed, rows then columns: XLA:CPU runs
    # lax.reduce_window and its gradient as plain loops (316 ms of the 1.98 s
    # training step, the profile in docs/performance.md).
    height, width = x.shape[1:3]
    x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')
    rows = sum(x[:, i : i + height] for i in range(window))
    return sum(rows[:, :, j : j + width] for j in range(window)) / window**2

  mu_a, mu_b = pool(a), pool(b)
  var_a, var_b = pool(a * a) - mu_a**2, pool(b * b) - mu_b**2
  covariance = pool(a * b) - mu_a * mu_b
  numerator = (2 * mu_a * mu_b + c1) * (2 * covariance + c2)
  denominator = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
  return jnp.mean(numerator / denominator)


def pyramid_l1(generated: Sequence[jax.Array], real: Sequence[jax.Array]) -> jax.Array:
  """Sum over the pyramid's levels of the mean absolute pixel difference."""
  return sum(jnp.mean(jnp.abs(g - r)) for g, r in zip(generated, real, strict=True))


def pyramid_ssim(
  generated: Sequence[jax.Array], real: Sequence[jax.Array], *, alpha: float = 0.85
) -> jax.Array:
  """Sum over levels of alpha (1 - SSIM) / 2 + (1 - alpha) L1 (Monodepth's photometric mix)."""
  return sum(
    alpha * (1.0 - ssim(g, r)) / 2.0 + (1.0 - alpha) * jnp.mean(jnp.abs(g - r))
    for g, r in zip(generated, real, strict=True)
  )


def perceptual(
  features: Callable[[jax.Array], list[jax.Array]],
  generated: Sequence[jax.Array],
  real: Sequence[jax.Array],
  layer_weights: Sequence[float],
) -> jax.Array:
  """FOMM's pyramid perceptual loss: per level and layer, weight x mean |phi(g) - phi(r)|,
  the real frame's features held constant."""
  total = 0.0
  for g, r in zip(generated, real, strict=True):
    g_features, r_features = features(g), features(jax.lax.stop_gradient(r))
    for weight, x, y in zip(layer_weights, g_features, r_features, strict=True):
      total += weight * jnp.mean(jnp.abs(x - jax.lax.stop_gradient(y)))
  return total


def equivariance_value(
  kp_driving: dict[str, jax.Array], kp_transformed: dict[str, jax.Array], transform: Transform
) -> jax.Array:
  """FOMM's: mean |kp(driving) - T(kp(T^-1 driving))|, the detector following the warp."""
  return jnp.mean(jnp.abs(kp_driving['kp'] - transform.warp_coordinates(kp_transformed['kp'])))


def equivariance_jacobian(
  kp_driving: dict[str, jax.Array], kp_transformed: dict[str, jax.Array], transform: Transform
) -> jax.Array:
  """FOMM's: mean |I - J_driving^-1 (dT(kp') J_transformed)|, the jacobians following the warp."""
  transformed = transform.jacobian(kp_transformed['kp']) @ kp_transformed['jacobian']
  value = jnp.linalg.inv(kp_driving['jacobian']) @ transformed
  return jnp.mean(jnp.abs(jnp.eye(2) - value))
