"""Loss terms and metrics against values computed by hand on tiny arrays."""

import jax.numpy as jnp
import numpy as np
import pytest

from train import losses


def test_mse_and_keypoint_distance():
  a = jnp.array([[[0.0, 0.0], [3.0, 4.0]]])
  b = jnp.zeros((1, 2, 2))
  assert float(losses.mse(a, b)) == pytest.approx((9 + 16) / 4)
  assert float(losses.keypoint_distance(a, b)) == pytest.approx((0 + 5) / 2)


def test_heatmap_mse_on_the_same_grid():
  s = jnp.array([[[[0.1, 0.2], [0.3, 0.4]]]])
  t = jnp.array([[[[0.25, 0.25], [0.25, 0.25]]]])
  expected = np.mean(np.square([0.1 - 0.25, 0.2 - 0.25, 0.3 - 0.25, 0.4 - 0.25]))
  assert float(losses.heatmap_mse(s, t)) == pytest.approx(expected)


def test_heatmap_is_resampled_onto_the_teachers_grid_and_renormalised():
  uniform_64 = jnp.full((1, 10, 64, 64), 1 / 64**2)
  uniform_58 = jnp.full((1, 10, 58, 58), 1 / 58**2)
  assert float(losses.heatmap_mse(uniform_64, uniform_58)) == pytest.approx(0.0, abs=1e-12)
  resampled = losses.resample_heatmap(jnp.ones((2, 3, 8, 8)) / 64, 4, 4)
  np.testing.assert_allclose(resampled.sum(axis=(2, 3)), 1.0, rtol=1e-6)


def test_attention_transfer_by_hand():
  # Student (1, 2, 2, 1): attention |F|^2 = [1, 0, 0, 0] -> normalised [1, 0, 0, 0].
  student = jnp.array([1.0, 0.0, 0.0, 0.0]).reshape(1, 2, 2, 1)
  # Teacher (1, 2, 2, 2): attention = [2, 2, 2, 2] -> normalised [.5, .5, .5, .5].
  teacher = jnp.ones((1, 2, 2, 2))
  expected = np.mean(np.square(np.array([1, 0, 0, 0]) - 0.5))
  assert float(losses.attention_transfer(student, teacher)) == pytest.approx(expected)
  # A larger map is average-pooled to the smaller one: 4x4 of ones pools to 2x2 of ones.
  assert float(losses.attention_transfer(jnp.ones((1, 4, 4, 3)), teacher)) == pytest.approx(0.0)


def test_weighted_loss_skips_zero_weights():
  terms = {'kp': jnp.array(2.0), 'jacobian': jnp.array(3.0), 'heatmap': jnp.array(100.0)}
  weights = {'kp': 1.0, 'jacobian': 0.5, 'heatmap': 0.0, 'attention': 0.0}
  assert float(losses.weighted_loss(terms, weights)) == pytest.approx(3.5)


def test_loss_terms_follow_the_target():
  out = {
    'kp': jnp.zeros((1, 10, 2)),
    'jacobian': jnp.zeros((1, 10, 2, 2)),
    'heatmap': jnp.full((1, 10, 4, 4), 1 / 16),
    'encoder_features': jnp.ones((1, 2, 2, 3)),
  }
  target = {'kp': jnp.ones((1, 10, 2)), 'jacobian': jnp.zeros((1, 10, 2, 2))}
  assert set(losses.loss_terms(out, target)) == {'kp', 'jacobian'}
  target['heatmap'] = jnp.full((1, 10, 2, 2), 0.25)
  target['encoder_features'] = jnp.ones((1, 1, 1, 8))
  terms = losses.loss_terms(out, target)
  assert set(terms) == {'kp', 'jacobian', 'heatmap', 'attention'}
  assert float(terms['kp']) == pytest.approx(1.0)
