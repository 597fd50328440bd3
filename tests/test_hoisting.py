"""models.hoisting: the weight-only work of inference moves out of the compiled call, unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from narrow import NAMES, WIDTHS, model_at

from models import compiler, hoisting
from tests.test_parity import randomize


@pytest.mark.parametrize('width', WIDTHS)
@pytest.mark.parametrize('name', NAMES)
def test_hoisted_inference_equals_the_unhoisted_one(name, width):
  """(The unhoisted function equals the model: tests/test_convolution.py.)"""
  model = model_at(name, width, nnx.Rngs(0))
  randomize(model, 0)
  model.eval()
  size = max(64, model.input_divisor())
  x = jnp.asarray(np.random.default_rng(1).uniform(size=(1, size, size, 3)).astype(np.float32))
  weights = nnx.state(model, (nnx.Param, nnx.BatchStat))
  before = jax.tree.map(np.array, weights)
  plain = compiler.InferenceFunction(model, x.shape, hoist=False)
  infer = compiler.InferenceFunction(model, x.shape)
  # Every model has BatchNorm scales or merged kernels to compute once.
  assert infer.hoisted > 0 and plain.hoisted == 0
  expected, got = plain(x), infer(x)
  for key in ('kp', 'jacobian'):
    np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6)
  # The caller's weights are untouched.
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.array, weights), before)


def test_split_keeps_image_work_and_broadcasts_in_apply():
  def fn(weights, images):
    scale = weights['gamma'] * jax.lax.rsqrt(weights['var'] + 1e-5)  # weight-only: hoisted
    kernel = weights['kernel'][::-1]  # weight-only: hoisted
    zeros = jnp.zeros((images.shape[0], 3))  # made from nothing: stays in apply
    return {'y': images @ kernel * scale + zeros, 'scale': scale}

  weights = {
    'gamma': jnp.arange(1.0, 4.0),
    'var': jnp.ones(3),
    'kernel': jnp.arange(12.0).reshape(4, 3),
  }
  images = jnp.ones((2, 4))
  split = hoisting.split(fn, weights, images)
  primitives = {eqn.primitive.name for eqn in split.prepare.jaxpr.eqns}
  assert {'rsqrt', 'rev'} <= primitives and 'dot_general' not in primitives
  assert 'broadcast_in_dim' not in primitives
  residuals = split.prepare_fn()(*jax.tree.leaves(weights))
  got = split.apply_fn()(*residuals, images)
  jax.tree.map(np.testing.assert_allclose, got, fn(weights, images))
