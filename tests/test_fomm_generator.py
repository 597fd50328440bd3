"""FOMM's generator and dense motion network: parity with the twin, porting, the zoo entry."""

import jax
import numpy as np
import pytest
import torch
from flax import nnx
from fomm_twin import draw_batchnorm
from narrow import NARROW_GENERATOR

import models
from tests.test_parity import assert_round_trip_is_identical
from torch_twins import create_twin, porting

torch.set_num_threads(1)

NAME = 'fomm_generator'
# The narrow generator with 5 keypoints; 64x64 frames.
NARROW = {**NARROW_GENERATOR, 'num_kp': 5}
KEYS = ('prediction', 'deformed', 'sparse_deformed', 'mask', 'occlusion_map')
# FOMM's outputs, channels first, -> ours (channels last).
_TO_NHWC = {4: (0, 2, 3, 1), 5: (0, 1, 3, 4, 2)}


def _randomize(model: nnx.Module, seed: int) -> None:
  """BatchNorm statistics and scales drawn, so that no normalisation is the identity."""
  rng = np.random.default_rng(seed)
  for _, node in nnx.iter_graph(model):
    if isinstance(node, nnx.BatchNorm):
      node.scale[...] = rng.uniform(0.5, 1.5, node.scale.shape).astype(np.float32)
      node.bias[...] = rng.normal(0, 0.1, node.bias.shape).astype(np.float32)
      node.mean[...] = rng.normal(0, 0.1, node.mean.shape).astype(np.float32)
      node.var[...] = rng.uniform(0.5, 1.5, node.var.shape).astype(np.float32)


def _keypoints(rng, batch, num_kp):
  """Keypoints spread over the frame, jacobians away from the identity (some samples leave it)."""
  return {
    'kp': rng.uniform(-0.9, 0.9, (batch, num_kp, 2)).astype(np.float32),
    'jacobian': (np.eye(2) + rng.normal(0, 0.3, (batch, num_kp, 2, 2))).astype(np.float32),
  }


@pytest.mark.parametrize(
  'options',
  [
    {'dense_motion_scale_factor': 0.25},  # vox-256's: motion at the features' size
    # Motion at 32x32, features at 16x16: the deformation and occlusion are resized.
    {'dense_motion_scale_factor': 0.5, 'dense_motion_num_blocks': 2},
    {'estimate_occlusion_map': False, 'align_corners': True},
  ],
)
def test_outputs_agree_with_the_twin_within_1e4(options):
  options = {**NARROW, **options}
  model = models.create_model(NAME, options, rngs=nnx.Rngs(0))
  _randomize(model, 0)
  model.eval()
  twin = create_twin(NAME, options).eval()
  porting.load_into_twin(model, NAME, twin)
  rng = np.random.default_rng(1)
  source = rng.uniform(size=(2, 64, 64, 3)).astype(np.float32)
  kp_source, kp_driving = _keypoints(rng, 2, 5), _keypoints(rng, 2, 5)
  graphdef, state = nnx.split(model)
  ours = jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a))(state, source, kp_source, kp_driving)
  with torch.inference_mode():
    theirs = twin(
      torch.from_numpy(source.transpose(0, 3, 1, 2)),
      kp_driving={k: torch.from_numpy(v) for k, v in kp_driving.items()},
      kp_source={k: torch.from_numpy(v) for k, v in kp_source.items()},
    )
  keys = [k for k in KEYS if options.get('estimate_occlusion_map', True) or k != 'occlusion_map']
  assert set(ours) == set(theirs) == set(keys)
  for key in keys:
    expected = theirs[key].numpy().transpose(_TO_NHWC[theirs[key].ndim])
    assert ours[key].shape == expected.shape, key
    np.testing.assert_allclose(ours[key], expected, atol=1e-4, rtol=0, err_msg=key)
    print(f'{key}: max |difference| {np.abs(ours[key] - expected).max():.2e}')
  # Telling outputs: the prediction varies and the masks are not uniform.
  assert np.std(np.asarray(ours['prediction'])) > 1e-3
  assert np.ptp(np.asarray(ours['mask'])) > 0.05


def test_round_trip_torch_flax_torch_is_identical():
  torch.manual_seed(0)
  twin = create_twin(NAME, NARROW)
  draw_batchnorm(twin)
  original = {k: v.clone() for k, v in twin.state_dict().items()}
  # FOMM's checkpoint keys, the anti-alias buffer included.
  for key in (
    'dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight',
    'dense_motion_network.mask.weight',
    'dense_motion_network.occlusion.weight',
    'dense_motion_network.down.weight',
    'first.conv.weight',
    'down_blocks.0.norm.weight',
    'bottleneck.r0.conv1.weight',
    'bottleneck.r1.norm2.running_var',
    'up_blocks.1.conv.weight',
    'final.weight',
  ):
    assert key in original, key
  assert_round_trip_is_identical(original, NAME, NARROW)


def test_the_zoo_keeps_the_generator_apart_with_vox_defaults():
  assert NAME in models.GENERATOR_NAMES and NAME not in models.MODEL_NAMES
  assert models.spec(NAME).kind == 'generator'
  assert all(models.spec(name).kind == 'keypoints' for name in models.MODEL_NAMES)
  config = models.default_config(NAME)
  assert (config.block_expansion, config.max_features, config.num_down_blocks) == (64, 512, 2)
  assert (config.num_bottleneck_blocks, config.estimate_occlusion_map) == (6, True)
  assert (config.dense_motion_block_expansion, config.dense_motion_max_features) == (64, 1024)
  assert (config.dense_motion_num_blocks, config.dense_motion_scale_factor) == (5, 0.25)
  model = nnx.eval_shape(lambda: models.create_model(NAME, rngs=nnx.Rngs(0)))
  assert model.default_input_size == 256
  count = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert count == 45_575_391  # FOMM's vox-256 generator, counted from the twin
  with pytest.raises(ValueError, match='multiples of 128'):
    model.check_input_shape((1, 64, 64, 3))


def test_a_run_refuses_the_generator_as_its_student():
  import ml_collections

  from configs import vox
  from train import config_checks

  config = vox.get_config('smoke')
  config.model = ml_collections.ConfigDict({'name': NAME})
  with pytest.raises(config_checks.ConfigError, match='fomm_generator is not a keypoint model'):
    config_checks.validate(config)
