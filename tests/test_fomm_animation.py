"""FOMM's animation arithmetic: relative keypoints and the convex-hull movement scale."""

import jax
import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

import models


def _fomm_normalize_kp(kp_source, kp_driving, kp_driving_initial, adapt_movement_scale):
  """FOMM's animate.normalize_kp (relative movement and jacobian), on its 'value' dicts."""
  if adapt_movement_scale:
    source_area = ConvexHull(kp_source['value'][0].numpy()).volume
    driving_area = ConvexHull(kp_driving_initial['value'][0].numpy()).volume
    adapt_movement_scale = np.sqrt(source_area) / np.sqrt(driving_area)
  else:
    adapt_movement_scale = 1
  kp_new = dict(kp_driving)
  kp_value_diff = kp_driving['value'] - kp_driving_initial['value']
  kp_value_diff *= adapt_movement_scale
  kp_new['value'] = kp_value_diff + kp_source['value']
  jacobian_diff = torch.matmul(
    kp_driving['jacobian'], torch.inverse(kp_driving_initial['jacobian'])
  )
  kp_new['jacobian'] = torch.matmul(jacobian_diff, kp_source['jacobian'])
  return kp_new


def _keypoints(rng, batch=1, num_kp=10):
  return {
    'kp': rng.uniform(-0.8, 0.8, (batch, num_kp, 2)).astype(np.float32),
    'jacobian': (np.eye(2) + rng.normal(0, 0.3, (batch, num_kp, 2, 2))).astype(np.float32),
  }


@pytest.mark.parametrize('adapt_movement_scale', [False, True])
def test_relative_keypoints_is_fomms_normalize_kp(adapt_movement_scale):
  rng = np.random.default_rng(int(adapt_movement_scale))
  source, driving, initial = (_keypoints(rng) for _ in range(3))
  # A smaller driving face, so that the scale is far from 1.
  initial['kp'] *= 0.5
  ours = jax.jit(models.relative_keypoints, static_argnames='adapt_movement_scale')(
    source, driving, initial, adapt_movement_scale=adapt_movement_scale
  )

  def fomm(kp):
    return {'value': torch.from_numpy(kp['kp']), 'jacobian': torch.from_numpy(kp['jacobian'])}

  theirs = _fomm_normalize_kp(fomm(source), fomm(driving), fomm(initial), adapt_movement_scale)
  np.testing.assert_allclose(ours['kp'], theirs['value'].numpy(), atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(ours['jacobian'], theirs['jacobian'].numpy(), atol=1e-5, rtol=1e-5)


def test_each_sample_scales_by_its_own_faces():
  rng = np.random.default_rng(3)
  source, driving, initial = (_keypoints(rng, batch=3) for _ in range(3))
  relative = jax.jit(models.relative_keypoints, static_argnames='adapt_movement_scale')
  together = relative(source, driving, initial, adapt_movement_scale=True)
  for b in range(3):
    alone = relative(
      *({k: v[b : b + 1] for k, v in kp.items()} for kp in (source, driving, initial)),
      adapt_movement_scale=True,
    )
    np.testing.assert_allclose(together['kp'][b : b + 1], alone['kp'], atol=1e-6)


def test_convex_hull_area_is_scipys():
  rng = np.random.default_rng(4)
  sets = [rng.uniform(-1, 1, (10, 2)) for _ in range(20)]
  sets.append(rng.normal(0, 0.1, (10, 2)) + [0.5, -0.2])
  # Points on the hull's sides, repeated corners, every point inside but three.
  square = [
    [0, 0],
    [1, 0],
    [1, 1],
    [0, 1],
    [0.5, 0],
    [0.25, 0],
    [1, 0.5],
    [0, 0],
    [1, 1],
    [0.3, 0.6],
  ]
  sets.append(np.array(square, float))
  sets.append(np.array([[-1, -1], [1, -1], [0, 1]] + [[0, 0]] * 7, float))
  points = np.stack(sets).astype(np.float32)
  ours = np.asarray(jax.jit(models.convex_hull_area)(points))
  np.testing.assert_allclose(ours, [ConvexHull(p).volume for p in points], rtol=1e-5)
  # Degenerate sets (scipy refuses them) have no area.
  line = np.array([[0, 0], [1, 1], [0.5, 0.5], [2, 2]], np.float32)
  assert float(models.convex_hull_area(line)) == 0.0
