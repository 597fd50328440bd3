"""Precise BN: statistics over all the images of the batches, dead channels floored."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import models
from models import layers
from train import precise_bn
from train.step import Student


class _TwoNorms(nnx.Module):
  """BatchNorm on the image, then conv + ReLU + BatchNorm (a deeper layer)."""

  def __init__(self):
    self.first = layers.BatchNorm(3, rngs=nnx.Rngs(0))
    self.conv = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(1))
    self.second = layers.BatchNorm(4, rngs=nnx.Rngs(0))

  def __call__(self, x):
    return self.second(nnx.relu(self.conv(self.first(x))))


def test_statistics_are_those_of_all_the_images_and_dead_channels_are_floored():
  rng = np.random.default_rng(0)
  batches = [rng.normal(2.0, 3.0, (4, 8, 8, 3)).astype(np.float32) for _ in range(3)]
  for b in batches:
    b[..., 2] = 0.5  # a channel that never varies in training
  student, params, batch_stats = Student.split(_TwoNorms())
  stats = precise_bn.PreciseBN(student, params, batch_stats, student.rest)(
    params, batch_stats, student.rest, [jnp.asarray(b) for b in batches]
  )
  everything = np.concatenate(batches).reshape(-1, 3)
  first = nnx.to_pure_dict(stats)['first']
  np.testing.assert_allclose(first['mean'], everything.mean(0), rtol=1e-5, atol=1e-6)
  var = everything.var(0)
  np.testing.assert_allclose(first['var'][:2], var[:2], rtol=1e-4)
  assert var[2] < 1e-10
  expected_floor = precise_bn.DEAD_FRACTION * np.mean([*var[:2], 0.0])
  np.testing.assert_allclose(first['var'][2], expected_floor, rtol=1e-4)

  # The deeper layer sees its inputs as in training: normalised by each batch's statistics.
  def second_input(b):
    x = (b - b.mean((0, 1, 2))) / np.sqrt(b.var((0, 1, 2)) + 1e-5)
    model = nnx.merge(student.eval_graph, params, batch_stats, student.rest)
    return np.asarray(nnx.relu(model.conv(jnp.asarray(x * 1.0)))).reshape(-1, 4)

  inputs = np.concatenate([second_input(b) for b in batches])
  second = nnx.to_pure_dict(stats)['second']
  np.testing.assert_allclose(second['mean'], inputs.mean(0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(second['var'], inputs.var(0), rtol=1e-3, atol=1e-6)


def test_the_same_batches_give_the_same_statistics_for_a_student():
  student, params, batch_stats = Student.split(models.create_model('edgesegnet', rngs=nnx.Rngs(0)))
  images = [jax.random.uniform(jax.random.key(i), (2, 64, 64, 3)) for i in range(2)]
  estimate = precise_bn.PreciseBN(student, params, batch_stats, student.rest)
  first = estimate(params, batch_stats, student.rest, images)
  again = estimate(params, batch_stats, student.rest, images)  # compiled once, same answer
  for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
    np.testing.assert_array_equal(a, b)
  changed = [
    not np.allclose(a, b)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(batch_stats), strict=True)
  ]
  assert all(changed)  # every BatchNorm's statistics were re-estimated
