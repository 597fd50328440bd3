"""FOMM's animation arithmetic: driving keypoints made relative to the source (animate.py).

FOMM animates a source frame with the motion of a driving video, not its
absolute keypoints: each frame's keypoints move the source's by as much as the
driving keypoints moved since the video's first frame (optionally scaled by
the ratio of the two faces' sizes), and its jacobians likewise. Pure JAX, so
it runs inside a jitted animation step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def convex_hull_area(points: jax.Array) -> jax.Array:
  """Area of the convex hull of each set of 2-D points (scipy's ConvexHull(...).volume).

  An ordered pair (i, j) is a counter-clockwise hull edge when no point lies to
  its right and no point on its line lies beyond the segment; the shoelace sum
  over those edges is the area. O(K^3) comparisons, nothing for K = 10, and
  jittable, unlike a hull algorithm's data-dependent loops.

  Args:
    points: (..., K, 2).

  Returns:
    (...) areas (0 for fewer than three points not on one line).
  """
  p = points[..., :, None, :]  # i
  q = points[..., None, :, :]  # j
  r = points[..., None, None, :, :]  # k
  edge = (q - p)[..., None, :]  # (..., i, j, 1, 2)
  offset = r - p[..., None, :]  # (..., i, j, k, 2)
  cross = edge[..., 0] * offset[..., 1] - edge[..., 1] * offset[..., 0]
  along = (edge * offset).sum(-1)
  length = (edge**2).sum(-1)
  # Relative tolerances: XLA fuses products into FMAs, so the cross product of a
  # point on the line (an end included) comes out as a rounding error of either sign.
  tolerance = 1e-6 * (length + (offset**2).sum(-1))
  # Points on the line count as inside only between the ends, so a side with a
  # point in its middle is one edge (the outer pair), not two.
  on_line = (jnp.abs(cross) <= tolerance) & (along >= -tolerance) & (along <= length + tolerance)
  inside = (cross > tolerance) | on_line
  distinct = length[..., 0] > 0
  # A repeated point would repeat its edges: only its first copy may start or end one.
  count = points.shape[-2]
  same = (points[..., :, None, :] == points[..., None, :, :]).all(-1)
  earlier = jnp.tril(jnp.ones((count, count), bool), -1)
  first = ~(same & earlier).any(-1)
  is_edge = inside.all(-1) & distinct & first[..., :, None] & first[..., None, :]
  shoelace = p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]
  return 0.5 * jnp.where(is_edge, shoelace, 0.0).sum((-2, -1))


def relative_keypoints(
  kp_source: dict[str, jax.Array],
  kp_driving: dict[str, jax.Array],
  kp_driving_initial: dict[str, jax.Array],
  *,
  adapt_movement_scale: bool = False,
) -> dict[str, jax.Array]:
  """FOMM's normalize_kp with use_relative_movement and use_relative_jacobian.

  kp = kp_source + scale * (kp_driving - kp_driving_initial) and
  jacobian = J_driving J_driving_initial^-1 J_source, where scale is
  sqrt(source hull area / initial driving hull area) with
  `adapt_movement_scale`, else 1.

  Args:
    kp_source, kp_driving, kp_driving_initial: detector outputs, {'kp': (B, K, 2),
      'jacobian': (B, K, 2, 2)}; other keys of `kp_driving` are passed through.
    adapt_movement_scale: scale the motion by the ratio of the faces' sizes. FOMM
      takes the areas of the batch's first pair for every sample (it animates
      one at a time); here each sample uses its own, the same at batch size 1.

  Returns:
    `kp_driving` with `kp` and `jacobian` (where the inputs have jacobians) replaced.
  """
  scale = 1.0
  if adapt_movement_scale:
    source_area = convex_hull_area(kp_source['kp'])
    driving_area = convex_hull_area(kp_driving_initial['kp'])
    scale = (jnp.sqrt(source_area) / jnp.sqrt(driving_area))[:, None, None]
  out = dict(kp_driving)
  out['kp'] = (kp_driving['kp'] - kp_driving_initial['kp']) * scale + kp_source['kp']
  if kp_driving.get('jacobian') is not None:
    change = kp_driving['jacobian'] @ jnp.linalg.inv(kp_driving_initial['jacobian'])
    out['jacobian'] = change @ kp_source['jacobian']
  return out
