"""FOMM's whole checkpoint becomes the teacher and the generator; bad ones fail clearly."""

import commands
import jax
import numpy as np
import pytest
import torch
from flax import nnx
from fomm_twin import draw_batchnorm, narrow_fomm_twin
from narrow import NARROW_GENERATOR

from torch_twins import create_twin
from torch_twins import fomm_generator_checkpoint as convert_generator
from train import checkpoints

torch.set_num_threads(1)

SMALL = NARROW_GENERATOR  # for the narrow detector's 10 keypoints


def _generator_twin(seed=0, **options):
  torch.manual_seed(seed)
  twin = create_twin('fomm_generator', {**SMALL, **options})
  draw_batchnorm(twin, scales=True)
  return twin.eval()


def _save_like_fomm(path, detector, generator):
  """FOMM's logger: every network and optimiser of the run in one dict."""
  entries = {
    'kp_detector': detector.state_dict(),
    'discriminator': {'discs.1.conv.weight': torch.zeros(2, 3, 4, 4)},
    'optimizer_kp_detector': {'state': {}, 'param_groups': [{'lr': 2e-4}]},
    'optimizer_generator': {'state': {}, 'param_groups': [{'lr': 2e-4}]},
    'optimizer_discriminator': {'state': {}, 'param_groups': [{'lr': 2e-4}]},
    'epoch': 99,
  }
  if generator is not None:
    entries['generator'] = generator if isinstance(generator, dict) else generator.state_dict()
  torch.save(entries, path)


def test_generator_converts_and_matches_pytorch(tmp_path):
  twin = _generator_twin()
  source = tmp_path / 'vox-cpk.pth.tar'
  _save_like_fomm(source, narrow_fomm_twin(), twin)
  written = convert_generator.convert_with_generator(
    str(source), str(tmp_path / 'teacher'), str(tmp_path / 'generator')
  )
  assert written['fomm_generator'][1] == sum(p.numel() for p in twin.parameters())
  teacher, meta = checkpoints.restore_model(tmp_path / 'teacher')
  assert meta['model'] == 'fomm_teacher' and teacher.scale_factor == 0.25
  generator, meta = checkpoints.restore_model(tmp_path / 'generator')
  assert meta['model'] == 'fomm_generator' and meta['converted_by'] == 'tools.convert_fomm'
  options = meta['options']
  assert (options['num_kp'], options['dense_motion_scale_factor']) == (10, 0.25)
  assert (options['num_bottleneck_blocks'], options['dense_motion_max_features']) == (2, 16)
  # Never reached by 2 down blocks from 8: the default is recorded, the same network.
  assert options['max_features'] == 512
  from configs import vox
  from train.teacher import TeacherError, load_teacher

  config = vox.get_config('smoke')
  config.teacher.checkpoint = str(tmp_path / 'generator')
  with pytest.raises(TeacherError, match='not a keypoint detector'):
    load_teacher(config)

  rng = np.random.default_rng(0)
  frames = rng.uniform(size=(1, 64, 64, 3)).astype(np.float32)
  kp = [
    {
      'kp': rng.uniform(-0.8, 0.8, (1, 10, 2)).astype(np.float32),
      'jacobian': (np.eye(2) + rng.normal(0, 0.2, (1, 10, 2, 2))).astype(np.float32),
    }
    for _ in range(2)
  ]
  graphdef, state = nnx.split(generator)
  ours = jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a))(state, frames, *kp)
  with torch.inference_mode():
    theirs = twin(
      torch.from_numpy(frames.transpose(0, 3, 1, 2)),
      kp_source={k: torch.from_numpy(v) for k, v in kp[0].items()},
      kp_driving={k: torch.from_numpy(v) for k, v in kp[1].items()},
    )
  np.testing.assert_allclose(
    ours['prediction'], theirs['prediction'].numpy().transpose(0, 2, 3, 1), atol=1e-4, rtol=0
  )


def test_a_generator_that_does_not_fit_writes_nothing(tmp_path):
  source = tmp_path / 'bad.pth.tar'
  state = _generator_twin().state_dict()
  del state['bottleneck.r1.conv2.bias']
  _save_like_fomm(source, narrow_fomm_twin(), state)
  with pytest.raises(convert_generator.ConversionError, match='missing 1: bottleneck.r1.conv2'):
    convert_generator.convert_with_generator(
      str(source), str(tmp_path / 'teacher'), str(tmp_path / 'generator')
    )
  other = _generator_twin(num_kp=5).state_dict()
  _save_like_fomm(source, narrow_fomm_twin(), other)
  with pytest.raises(convert_generator.ConversionError, match='drives 5 keypoints'):
    convert_generator.convert_with_generator(
      str(source), str(tmp_path / 'teacher'), str(tmp_path / 'generator')
    )
  assert sorted(p.name for p in tmp_path.iterdir()) == ['bad.pth.tar']


def test_without_a_generator_the_command_writes_the_detector_and_says_so(tmp_path):
  source = tmp_path / 'kp-only.pth.tar'
  _save_like_fomm(source, narrow_fomm_twin(), None)
  exit_ = commands.in_process(
    'tools.convert_fomm',
    f'--checkpoint={source}',
    f'--out={tmp_path / "teacher"}',
    f'--generator_out={tmp_path / "generator"}',
  )
  line = commands.one_line(exit_)
  assert line.startswith('error: ') and 'no `generator`' in line and 'detector alone' in line
  assert not (tmp_path / 'generator').exists()
  _, meta = checkpoints.restore_model(tmp_path / 'teacher')
  assert meta['model'] == 'fomm_teacher'
