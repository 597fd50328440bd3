"""Flax models and their PyTorch twins compute the same function on the same weights."""

import jax
import numpy as np
import pytest
import torch
import torchinfo
from flax import nnx
from fomm_twin import draw_batchnorm
from narrow import NAMES, WIDTHS, options_at

import models
from models import summary
from torch_twins import create_twin, porting

torch.set_num_threads(2)


def randomize(model: nnx.Module, seed: int) -> None:
  """Non-trivial weights everywhere: BatchNorm statistics, scales, jacobian convs."""
  rng = np.random.default_rng(seed)
  for path, node in nnx.iter_graph(model):
    if isinstance(node, nnx.BatchNorm):
      if node.scale is not None:
        node.scale[...] = rng.uniform(0.5, 1.5, node.scale.shape).astype(np.float32)
        node.bias[...] = rng.normal(0, 0.1, node.bias.shape).astype(np.float32)
      node.mean[...] = rng.normal(0, 0.1, node.mean.shape).astype(np.float32)
      node.var[...] = rng.uniform(0.5, 1.5, node.var.shape).astype(np.float32)
    elif path and path[-1] == 'jacobian':
      node.kernel[...] = rng.normal(0, 0.05, node.kernel.shape).astype(np.float32)
    elif path and path[-1] == 'kp':
      # Peaked heatmaps, so keypoints spread over the image instead of the centre.
      node.kernel[...] = node.kernel[...] * 100


def _flax_and_twin(name: str, width: str, seed: int = 0):
  options = options_at(name, width)
  model = models.create_model(name, options, rngs=nnx.Rngs(seed))
  randomize(model, seed)
  model.eval()
  twin = create_twin(name, options).eval()
  porting.load_into_twin(model, name, twin)
  return model, twin


@pytest.mark.parametrize('width', WIDTHS)
@pytest.mark.parametrize('name', NAMES)
def test_outputs_agree_within_1e4(name, width):
  model, twin = _flax_and_twin(name, width)
  size = model.default_input_size
  images = np.random.default_rng(1).uniform(size=(2, size, size, 3)).astype(np.float32)
  graphdef, state = nnx.split(model)
  ours = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, images)
  with torch.inference_mode():
    theirs = twin(torch.from_numpy(images.transpose(0, 3, 1, 2)))
  for key in ('kp', 'jacobian', 'heatmap'):
    np.testing.assert_allclose(ours[key], theirs[key].numpy(), atol=1e-4, rtol=0, err_msg=key)
  # Heatmap values can be tiny: also hold them to 1e-4 of their peak.
  heatmap_error = np.abs(np.asarray(ours['heatmap']) - theirs['heatmap'].numpy()).max()
  assert heatmap_error <= 1e-4 * float(np.max(ours['heatmap']))
  np.testing.assert_allclose(
    ours['encoder_features'],
    theirs['encoder_features'].numpy().transpose(0, 2, 3, 1),
    atol=1e-4,
    rtol=1e-4,
  )
  # The test means something only if the keypoints are not all at the centre.
  assert np.abs(np.asarray(ours['kp'])).max() > 0.03


@pytest.mark.parametrize('width', WIDTHS)
@pytest.mark.parametrize('name', NAMES)
def test_round_trip_torch_flax_torch_is_identical(name, width):
  options = options_at(name, width)
  torch.manual_seed(0)
  twin = create_twin(name, options)
  draw_batchnorm(twin)
  original = {k: v.clone() for k, v in twin.state_dict().items()}
  assert_round_trip_is_identical(original, name, options)


def assert_round_trip_is_identical(original, name, options):
  """`original` (a twin's state dict) ported to Flax and back comes out identical."""
  model = models.create_model(name, options, rngs=nnx.Rngs(7))
  porting.torch_to_flax(original, model, name)
  back = create_twin(name, options)
  porting.load_into_twin(model, name, back)
  restored = back.state_dict()
  assert set(restored) == set(original)
  for key, value in original.items():
    if not key.endswith('num_batches_tracked'):
      assert torch.equal(restored[key], value), key


@pytest.mark.parametrize('width', WIDTHS)
@pytest.mark.parametrize('name', NAMES)
def test_torchinfo_agrees_with_our_summary(name, width):
  options = options_at(name, width)
  model = models.create_model(name, options, rngs=nnx.Rngs(0))
  size = model.default_input_size
  ours = summary.summarize(model, per_layer_xla=False)
  stats = torchinfo.summary(create_twin(name, options), input_size=(1, 3, size, size), verbose=0)
  assert stats.total_params == ours.params
  assert stats.total_mult_adds == ours.mult_adds
  assert round(stats.total_output_bytes / 1e6, 6) == round(ours.pass_size_mb, 6)


def test_mismatched_weights_list_every_problem():
  model = models.create_model('edgesegnet', rngs=nnx.Rngs(0))
  state = {k: v.numpy() for k, v in create_twin('edgesegnet').state_dict().items()}
  del state['stem.bias']
  state['stem.weight'] = np.zeros((8, 3, 5, 5), np.float32)
  state['extra.weight'] = np.zeros(3, np.float32)
  before = np.asarray(model.out.kernel[...]).copy()
  with pytest.raises(porting.PortingError) as error:
    porting.torch_to_flax(state, model, 'edgesegnet')
  message = str(error.value)
  assert 'missing 1: stem.bias' in message
  assert 'unexpected 1: extra.weight' in message
  assert 'mis-shaped 1: stem.weight (8, 3, 5, 5) (expected (8, 3, 7, 7))' in message
  # Nothing was written.
  np.testing.assert_array_equal(model.out.kernel[...], before)
