"""FOMM trained here (configs/fomm.py:smoke): the run, its outputs, resume, its config checks."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from configs import fomm as fomm_config
from train import checkpoints, config_checks, loop


def _config(data_dir, **overrides):
  config = fomm_config.get_config('smoke')
  config.data.data_dir = str(data_dir)
  config.update(overrides)
  return config


@pytest.fixture(scope='module')
def fomm_run(tmp_path_factory):
  """A 12-step smoke run: (workdir, results, data folder)."""
  root = tmp_path_factory.mktemp('fomm')
  results = loop.train_and_evaluate(_config(root / 'data'), str(root / 'run'))
  return root / 'run', results, root / 'data'


def test_a_smoke_run_lowers_its_loss_and_writes_its_scores_pictures_and_networks(fomm_run):
  workdir, results, _ = fomm_run
  assert results['steps'] == 12 and results['task'] == 'fomm'
  for key in ('reconstruction_l1', 'landmark_error', 'landmark_error_interocular'):
    assert np.isfinite(results[key]), key
  assert json.loads((workdir / 'results.json').read_text()) == results
  for name in ('loss_curves.png', 'val_reconstruction.png'):
    assert (workdir / name).stat().st_size > 1000
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  validations = [r for r in records if r['split'] == 'validation']
  assert [r['step'] for r in validations] == [6, 12]
  terms = {'loss_reconstruction', 'loss_equivariance_value', 'loss_equivariance_jacobian'}
  assert terms <= set(records[0])
  losses = [r['loss'] for r in records if r['split'] == 'train']
  assert np.mean(losses[-4:]) < 0.9 * np.mean(losses[:4]), losses
  # The networks as model folders: the detector is a zoo detector, the generator FOMM's.
  detector, meta = checkpoints.restore_model(workdir / 'detector')
  assert meta['model'] == 'fomm_teacher' and meta['trained_as'] == 'fomm'
  generator, _ = checkpoints.restore_model(workdir / 'generator')
  frames = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)

  @jax.jit
  def animate(detector, generator, frames):
    detector, generator = nnx.merge(*detector), nnx.merge(*generator)
    kp = detector(frames)
    return generator(frames, kp, kp)['prediction']

  assert animate(nnx.split(detector), nnx.split(generator), frames).shape == frames.shape


def test_the_training_workdir_points_readers_to_its_networks(fomm_run):
  with pytest.raises(checkpoints.CheckpointError, match='detector/ or generator/ folder'):
    checkpoints.restore_model(fomm_run[0])


def test_an_interrupted_run_resumes_bit_identical(fomm_run, tmp_path):
  workdir, results, data = fomm_run
  # Stopped at step 6, then resumed to step 12: the same weights as the straight run.
  loop.train_and_evaluate(_config(data, num_steps=6), str(tmp_path))
  resumed = loop.train_and_evaluate(_config(data), str(tmp_path))
  assert resumed['reconstruction_l1'] == results['reconstruction_l1']
  straight = checkpoints.Reader(workdir / 'detector').weights(0)
  again = checkpoints.Reader(tmp_path / 'detector').weights(0)
  jax.tree.map(np.testing.assert_array_equal, straight, again)


@pytest.mark.parametrize(
  'overrides, message',
  [
    ({'data': {'name': 'synthetic_faces'}}, 'data.name must be synthetic_face_clips'),
    ({'loss': {'pixel': 'l2'}}, "loss.pixel='l2'; valid: l1, ssim"),
    ({'loss': {'scales': (1.0, 0.3)}}, 'scale_factor must be 1/n'),
    ({'regression_clips': 2}, 'needs at least 21 training frames'),
    ({'transform': {'points_tps': 1}}, 'transform.points_tps must be >= 2'),
    # 16x16 frames, dense motion at 8x8 halved five times: the generator says what it needs.
    ({'generator': {'dense_motion_num_blocks': 5}}, 'multiples of 64'),
    ({'loss': {'pixle': 'l1'}}, 'unknown field loss.pixle'),
    ({'data': {'train_size': 3000, 'frames_per_clip': 32, 'image_size': 64}}, 'over the 1,000 MiB'),
  ],
)
def test_bad_fomm_configs_fail_in_one_line(overrides, message, tmp_path):
  config = _config(tmp_path)
  for group, value in overrides.items():
    if isinstance(value, dict):
      config[group].update(value)
    else:
      config[group] = value
  with pytest.raises(config_checks.ConfigError, match=message.replace('(', r'\(')) as error:
    config_checks.validate(config)
  assert '\n' not in str(error.value)


def test_the_vgg19_option_reads_a_torchvision_state_dict(tmp_path):
  """FOMM's perceptual loss, given weights by path (here random ones, in torchvision's keys)."""
  import torch

  from models.vgg19 import Vgg19Features
  from train import vgg19_weights

  reference = Vgg19Features(rngs=nnx.Rngs(1))
  state = {}
  for index, conv in reference.convs.items():
    state[f'features.{index}.weight'] = torch.from_numpy(
      np.asarray(conv.kernel[...]).transpose(3, 2, 0, 1).copy()
    )
    state[f'features.{index}.bias'] = torch.from_numpy(np.asarray(conv.bias[...]).copy())
  state['classifier.0.weight'] = torch.zeros(4, 4)  # ignored
  torch.save(state, tmp_path / 'vgg19.pth')
  loaded = vgg19_weights.load(tmp_path / 'vgg19.pth')
  frames = np.random.default_rng(0).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  for a, b in zip(loaded(frames), reference(frames), strict=True):
    np.testing.assert_array_equal(a, b)
  del state['features.28.bias']
  torch.save(state, tmp_path / 'partial.pth')
  with pytest.raises(vgg19_weights.Vgg19WeightsError, match='has no features.28.bias'):
    vgg19_weights.load(tmp_path / 'partial.pth')
  with pytest.raises(vgg19_weights.Vgg19WeightsError, match='no VGG19 weights file'):
    vgg19_weights.load(tmp_path / 'missing.pth')
