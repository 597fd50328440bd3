"""Every model of the zoo: outputs, modes, parameter counts, bad input, registry."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from narrow import NAMES, WIDTHS, model_at

import models
from models import layers, ops
from models.keypoint_head import Deferred, KeypointHead

NUM_KP = 10


@functools.cache
def _model(name, width='full'):
  return model_at(name, width, nnx.Rngs(params=0, dropout=1))


def _apply(model, x):
  """Runs the model jitted on its split state (one compile per shape and mode)."""
  graphdef, state = nnx.split(model)
  return _jitted_apply(graphdef, state, x)


@functools.partial(jax.jit, static_argnums=0)
def _jitted_apply(graphdef, state, x):
  model = nnx.merge(graphdef, state)
  return model(x)


def _images(batch, size, seed=0):
  return jax.random.uniform(jax.random.key(seed), (batch, size, size, 3))


@pytest.mark.parametrize('width', WIDTHS)
@pytest.mark.parametrize('name', NAMES)
def test_outputs_at_initialisation(name, width):
  model = _model(name, width)
  model.eval()
  size = model.default_input_size
  # Batch 1 (what export and the benchmark feed) by shapes alone; values on batch 2, the
  # shape the train-mode test compiles too.
  single = jax.eval_shape(model, jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
  assert single['kp'].shape == (1, NUM_KP, 2) and single['jacobian'].shape == (1, NUM_KP, 2, 2)
  assert single['heatmap'].shape[:2] == (1, NUM_KP) and single['encoder_features'].shape[0] == 1
  for batch in (2,):
    out = _apply(model, _images(batch, size))
    assert out['kp'].shape == (batch, NUM_KP, 2)
    assert out['jacobian'].shape == (batch, NUM_KP, 2, 2)
    assert out['heatmap'].shape[:2] == (batch, NUM_KP)
    assert out['encoder_features'].shape[0] == batch
    for key in ('kp', 'jacobian', 'heatmap', 'encoder_features'):
      assert out[key].dtype == jnp.float32, key
    np.testing.assert_allclose(out['heatmap'].sum(axis=(2, 3)), 1.0, rtol=1e-5)
    assert np.all(np.abs(out['kp']) <= 1.0)
    # FOMM initialises the jacobian conv to identity; the heatmap sums to one.
    np.testing.assert_allclose(
      out['jacobian'], np.broadcast_to(np.eye(2), out['jacobian'].shape), atol=1e-5
    )


@functools.partial(jax.jit, static_argnums=0)
def _outputs_and_gradients(graphdef, params, rest, x):
  """Train-mode outputs, and the gradient of every parameter for a loss on all of them."""

  def loss(params):
    # Fresh copies, as train.step does: BatchNorm updates its statistics in this trace.
    out = nnx.merge(graphdef, *jax.tree.map(lambda a: a, (params, rest)))(x)
    return jnp.sum(out['kp'] ** 2) + jnp.sum(out['jacobian'] ** 2), out

  return jax.grad(loss, has_aux=True)(params)


@pytest.mark.parametrize('width', WIDTHS)
@pytest.mark.parametrize('name', NAMES)
def test_train_mode_runs_differs_from_eval_and_every_parameter_learns(name, width):
  model = _model(name, width)
  size = model.default_input_size
  x = _images(2, size, seed=1)
  model.train()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  grads, trained = _outputs_and_gradients(graphdef, params, rest, x)
  model.eval()
  evaluated = _apply(model, x)
  assert np.all(np.isfinite(trained['kp']))
  assert np.all(np.isfinite(trained['heatmap']))
  # Batch statistics (and dropout where present) make train mode differ.
  assert not np.allclose(trained['heatmap'], evaluated['heatmap'])
  # The backward pass reaches every parameter (what a training step needs of a student).
  # (Checked in NumPy: a jnp comparison would compile once per parameter shape.)
  for path, grad in jax.tree_util.tree_leaves_with_path(jax.device_get(nnx.to_pure_dict(grads))):
    assert np.all(np.isfinite(grad)), path
    assert np.any(grad != 0), jax.tree_util.keystr(path)


def _param_count(model):
  return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_parameter_counts_reproduce_the_article():
  assert _param_count(_model('squeeze_unet')) == 2_507_035
  assert _param_count(_model('fomm_teacher')) == 14_215_368
  assert _param_count(_model('fomm_teacher').predictor) == 14_129_568


def test_teacher_heatmaps_are_58x58_from_256x256_frames():
  model = _model('fomm_teacher')
  model.eval()
  out = jax.eval_shape(model, jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32))
  assert out['heatmap'].shape == (1, NUM_KP, 58, 58)
  assert out['encoder_features'].shape == (1, 2, 2, 1024)


def test_teacher_at_scale_one_takes_64x64():
  model = models.create_model('fomm_teacher', {'scale_factor': 1.0}, rngs=nnx.Rngs(0))
  model.eval()
  out = jax.eval_shape(model, jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
  assert out['heatmap'].shape == (1, NUM_KP, 58, 58)


@pytest.mark.parametrize(
  'name,shape,fragment',
  [
    ('squeeze_unet', (1, 60, 64, 3), 'cannot take a 60x64 input'),
    ('squeeze_unet', (1, 64, 64, 1), 'got 1 channels'),
    ('edgesegnet', (64, 64, 3), 'got an input of shape (64, 64, 3)'),
    ('l3unet', (2, 36, 36, 3), 'multiples of 16'),
    ('fomm_teacher', (1, 64, 64, 3), 'multiples of 128'),
    ('squeeze_encdec', (1, 72, 72, 3), 'cannot take a 72x72 input'),
  ],
)
def test_bad_input_shape_raises_clear_error_before_xla(name, shape, fragment):
  model = _model(name)
  with pytest.raises(ValueError, match=name) as error:
    model(jnp.zeros(shape))
  assert fragment in str(error.value)


def test_other_input_sizes_work():
  model = _model('edgesegnet')
  model.eval()
  out = jax.eval_shape(model, jax.ShapeDtypeStruct((1, 96, 128, 3), jnp.float32))
  assert out['heatmap'].shape == (1, NUM_KP, 96, 128)


def test_registry_rejects_unknown_names_and_options():
  with pytest.raises(ValueError, match='valid models: fomm_teacher, squeeze_unet'):
    models.create_model('unet', rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r'unknown option\(s\) widht .*valid options: .*fold'):
    models.create_model('l3unet', {'widht': 3}, rngs=nnx.Rngs(0))


def test_registry_applies_overrides_and_variants_differ():
  model = models.create_model('l3unet', {'fold': 4}, rngs=nnx.Rngs(0))
  assert model.fold == 4
  assert models.default_config('squeeze_unet_dsc').depthwise_separable
  assert not models.default_config('squeeze_unet_noskip').skips
  assert models.default_config('squeeze_encdec').decoder_block == 'fire_deconv'


def test_invalid_options_fail_clearly():
  with pytest.raises(ValueError, match='scale_factor must be 1/n'):
    models.create_model('fomm_teacher', {'scale_factor': 0.3}, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='decoder_block must be one of'):
    models.create_model('squeeze_unet', {'decoder_block': 'deconv'}, rngs=nnx.Rngs(0))


def test_same_seed_same_weights_eager_or_traced():
  eager = models.create_model('edgesegnet', rngs=nnx.Rngs(3))
  traced = nnx.jit(lambda: models.create_model('edgesegnet', rngs=nnx.Rngs(3)))()
  for a, b in zip(
    jax.tree.leaves(nnx.state(eager, nnx.Param)),
    jax.tree.leaves(nnx.state(traced, nnx.Param)),
    strict=True,
  ):
    np.testing.assert_array_equal(a, b)
  other = models.create_model('edgesegnet', rngs=nnx.Rngs(4))
  assert not np.array_equal(eager.stem.kernel[...], other.stem.kernel[...])


def test_keypoint_head_by_hand():
  """A 2x2 map: keypoints are heatmap-weighted grid corners, jacobians weighted maps."""
  head = KeypointHead(1, num_kp=1, temperature=1.0, rngs=nnx.Rngs(0))
  head.kp.kernel[...] = jnp.ones((1, 1, 1, 1))
  head.kp.bias[...] = jnp.zeros((1,))
  logits = np.log(np.array([1.0, 2.0, 3.0, 4.0])).reshape(1, 2, 2, 1).astype(np.float32)
  out = head(jnp.asarray(logits))
  p = np.array([[1, 2], [3, 4]]) / 10
  np.testing.assert_allclose(out['heatmap'][0, 0], p, rtol=1e-6)
  # Grid: x = -1 (left), 1 (right); y = -1 (top), 1 (bottom).
  expected_x = -p[:, 0].sum() + p[:, 1].sum()
  expected_y = -p[0].sum() + p[1].sum()
  np.testing.assert_allclose(out['kp'][0, 0], [expected_x, expected_y], rtol=1e-6)
  np.testing.assert_allclose(out['jacobian'][0, 0], np.eye(2), atol=1e-6)
  # A jacobian map that varies in space is averaged under the heatmap.
  head.jacobian.kernel[...] = jnp.ones((1, 1, 1, 4))
  out = head(jnp.asarray(logits))
  mean_logit = float((p.ravel() * logits.ravel()).sum())
  np.testing.assert_allclose(out['jacobian'][0, 0], np.eye(2) + mean_logit, rtol=1e-5)


def test_single_jacobian_map_is_shared():
  head = KeypointHead(4, num_kp=3, single_jacobian_map=True, rngs=nnx.Rngs(0))
  assert head.jacobian.kernel.shape[-1] == 4
  out = head(jnp.ones((1, 5, 5, 4)))
  assert out['jacobian'].shape == (1, 3, 2, 2)


def _head_as_written(head, maps):
  """FOMM's head written out: softmax heatmaps, then weighted sums of grid and maps."""
  num_kp = head.num_kp
  logits, jacobian_map = maps[..., :num_kp], maps[..., num_kp:]
  batch, height, width, _ = logits.shape
  flat = logits.reshape(batch, height * width, num_kp) / head.temperature
  heatmap = jax.nn.softmax(flat, axis=1).reshape(batch, height, width, num_kp)
  kp = jnp.einsum('bhwk,hwd->bkd', heatmap, ops.coordinate_grid(height, width))
  jacobian_map = jacobian_map.reshape(batch, height, width, head.num_jacobian_maps, 4)
  jacobian_map = jnp.broadcast_to(jacobian_map, (batch, height, width, num_kp, 4))
  jacobian = jnp.einsum('bhwk,bhwkd->bkd', heatmap, jacobian_map)
  return {
    'kp': kp,
    'jacobian': jacobian.reshape(batch, num_kp, 2, 2),
    'heatmap': heatmap.transpose(0, 3, 1, 2),
  }


@pytest.mark.parametrize('single_jacobian_map', [False, True])
def test_keypoint_head_matches_its_written_form_values_and_gradients(single_jacobian_map):
  head = KeypointHead(6, num_kp=3, single_jacobian_map=single_jacobian_map, rngs=nnx.Rngs(0))
  head.jacobian.kernel[...] = jax.random.normal(jax.random.key(1), head.jacobian.kernel.shape)
  features = jax.random.normal(jax.random.key(2), (2, 7, 5, 6)) * 3

  def written(features):
    maps = jnp.concatenate([head.kp(features), head.jacobian(features)], -1)
    return _head_as_written(head, maps)

  # Both forms jitted, as the models run them (eager, each operation compiles apart).
  got, want = jax.jit(head)(features), jax.jit(written)(features)
  for key in ('kp', 'jacobian', 'heatmap'):
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=2e-6)
    grad = jax.jit(jax.grad(lambda f, k=key: (head(f)[k] ** 2).sum()))(features)
    expected = jax.jit(jax.grad(lambda f, k=key: (written(f)[k] ** 2).sum()))(features)
    np.testing.assert_allclose(grad, expected, atol=1e-5, rtol=1e-4)


def _squared(fn, key):
  return lambda projection, x: (fn(projection, x)[key] ** 2).sum()


@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
def test_deferred_projection_and_upsampling_equal_running_them_first(mode):
  """head(Deferred(x, proj, f)) == head(proj(upsample(x, f))), values, gradients, records."""
  head = KeypointHead(5, num_kp=3, rngs=nnx.Rngs(0))
  head.jacobian.kernel[...] = jax.random.normal(jax.random.key(1), head.jacobian.kernel.shape)
  projection = layers.Conv(4, 5, 1, rngs=nnx.Rngs(2))
  upsample = {'nearest': ops.upsample_nearest, 'bilinear': ops.upsample_bilinear}[mode]
  x = jax.random.normal(jax.random.key(3), (2, 4, 6, 4))

  def deferred(projection, x):
    return head(Deferred(x, projection, upsample=4, mode=mode))

  def plain(projection, x):
    return head(projection(upsample(x, 4)))

  # Both forms jitted, as the models run them (eager, each operation compiles apart).
  values = nnx.jit(deferred)(projection, x), nnx.jit(plain)(projection, x)
  for key in ('kp', 'jacobian', 'heatmap'):
    np.testing.assert_allclose(values[0][key], values[1][key], rtol=1e-5, atol=2e-6)
    got = nnx.jit(nnx.grad(_squared(deferred, key), argnums=(0, 1)))(projection, x)
    want = nnx.jit(nnx.grad(_squared(plain, key), argnums=(0, 1)))(projection, x)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
  # models.summary sees the convs at the shapes the plain form runs them.
  with layers.record_layer_calls() as calls:
    deferred(projection, x)
  with layers.record_layer_calls() as expected_calls:
    plain(projection, x)
  shapes = lambda cs: [(c.layer, c.input_shape, c.output_shape) for c in cs]  # noqa: E731
  assert shapes(calls) == shapes(expected_calls)


def test_deferred_needs_pointwise_convs():
  head = KeypointHead(5, num_kp=3, kernel_size=3, padding=1, rngs=nnx.Rngs(0))
  projection = layers.Conv(4, 5, 1, rngs=nnx.Rngs(2))
  with pytest.raises(ValueError, match='1x1'):
    head(Deferred(jnp.ones((1, 4, 4, 4)), projection, upsample=2))


def test_library_does_not_import_torch():
  import subprocess
  import sys

  code = (
    'import sys, models, models.summary, data.pipeline, train.loop, train.checkpoints; '
    'sys.exit(1 if "torch" in sys.modules else 0)'
  )
  assert subprocess.run([sys.executable, '-c', code], check=False).returncode == 0
  # Configs hold values: reading one loads neither JAX nor TFDS.
  code = (
    'import sys; from configs import edgeseg, teacher; edgeseg.get_config(); '
    'sys.exit(1 if {"jax", "tensorflow_datasets"} & set(sys.modules) else 0)'
  )
  assert subprocess.run([sys.executable, '-c', code], check=False).returncode == 0
