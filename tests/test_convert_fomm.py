"""FOMM's checkpoint converts into the Flax teacher, and bad files fail clearly."""

import os

import commands
import jax
import numpy as np
import pytest
import torch
from flax import nnx
from fomm_twin import narrow_fomm_twin

from torch_twins import create_twin
from torch_twins import fomm_checkpoint as convert_fomm
from train import checkpoints


def _save_like_fomm(twin, path):
  """FOMM saves every network and optimiser of its run in one dict."""
  torch.save(
    {
      'kp_detector': twin.state_dict(),
      'generator': {'dense_motion.weight': torch.zeros(3)},
      'optimizer_kp_detector': {'state': {}, 'param_groups': [{'lr': 2e-4}]},
      'epoch': 99,
    },
    path,
  )


def test_converted_teacher_matches_pytorch_on_256_frames(tmp_path, capsys):
  twin = narrow_fomm_twin()
  source = tmp_path / 'vox-cpk.pth.tar'
  _save_like_fomm(twin, source)
  out = tmp_path / 'teacher'
  # In-process (the subprocess: test_command_errors_are_one_line); both flag forms.
  assert (
    commands.in_process('tools.convert_fomm', '--checkpoint', str(source), f'--out={out}') is None
  )
  printed = capsys.readouterr().out
  assert 'wrote' in printed and 'fomm_teacher with' in printed

  teacher, meta = checkpoints.restore_model(out)
  assert meta['model'] == 'fomm_teacher' and meta['step'] == 0
  assert meta['options']['scale_factor'] == 0.25
  assert meta['options']['max_features'] == 32
  assert meta['source'] == str(source) and meta['converted_by'] == 'tools.convert_fomm'
  frames = np.random.default_rng(0).uniform(size=(2, 256, 256, 3)).astype(np.float32)
  graphdef, state = nnx.split(teacher)
  ours = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, frames)
  with torch.inference_mode():
    theirs = twin(torch.from_numpy(frames.transpose(0, 3, 1, 2)))
  for key in ('kp', 'jacobian', 'heatmap'):
    np.testing.assert_allclose(ours[key], theirs[key].numpy(), atol=1e-4, rtol=0, err_msg=key)
  assert np.abs(np.asarray(ours['kp'])).max() > 0.03


def test_bare_prefixed_state_dict_without_batch_counters(tmp_path):
  twin = narrow_fomm_twin(seed=1, scale_factor=0.5, num_kp=5, single_jacobian_map=True)
  state = {f'module.{k}': v for k, v in twin.state_dict().items() if 'num_batches_tracked' not in k}
  source = tmp_path / 'kp.pth'
  torch.save(state, source)
  config, params = convert_fomm.convert(str(source), str(tmp_path / 'out'))
  assert config.scale_factor == 0.5 and config.num_kp == 5 and config.single_jacobian_map
  assert params == sum(p.numel() for p in twin.parameters())


def test_vox_configuration_is_inferred_from_shapes():
  state = {k: v.numpy() for k, v in create_twin('fomm_teacher').state_dict().items()}
  config = convert_fomm.infer_config(state)
  assert config == convert_fomm.infer_config(state, num_kp=10, scale_factor=0.25)
  import models

  assert config.to_dict() == models.default_config('fomm_teacher').to_dict()
  with pytest.raises(convert_fomm.ConversionError, match='has num_kp=10, but num_kp=15'):
    convert_fomm.infer_config(state, num_kp=15)


def _command(*args):
  return commands.run('-m', 'tools.convert_fomm', *args)


def _fails(capsys, tmp_path, source, fragment):
  out = tmp_path / 'out'
  with pytest.raises(ValueError) as error:
    convert_fomm.convert(str(source), str(out))
  assert fragment in str(error.value), error.value
  assert '\n' not in str(error.value).strip()
  assert not out.exists()


def test_random_tensor_dict_is_rejected(tmp_path, capsys):
  source = tmp_path / 'random.pth'
  torch.save({'encoder.weight': torch.zeros(4, 3), 'decoder.bias': torch.zeros(4)}, source)
  _fails(capsys, tmp_path, source, 'not a FOMM keypoint detector: missing kp.weight')


def test_wrong_shapes_are_listed(tmp_path, capsys):
  state = narrow_fomm_twin().state_dict()
  state['jacobian.bias'] = torch.zeros(7)
  del state['predictor.decoder.up_blocks.1.norm.running_var']
  state['extra.weight'] = torch.zeros(1)
  source = tmp_path / 'bad.pth'
  torch.save({'kp_detector': state}, source)
  _fails(
    capsys,
    tmp_path,
    source,
    'missing 1: predictor.decoder.up_blocks.1.norm.running_var; unexpected 1: extra.weight; '
    'mis-shaped 1: jacobian.bias (7,) (expected (40,))',
  )


def test_truncated_file_is_rejected(tmp_path, capsys):
  source = tmp_path / 'truncated.pth.tar'
  _save_like_fomm(narrow_fomm_twin(), source)
  data = source.read_bytes()
  source.write_bytes(data[: len(data) // 2])
  _fails(capsys, tmp_path, source, 'not a readable PyTorch checkpoint')


class _RunsCode:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, 'w'))


def test_pickle_that_would_run_code_is_refused(tmp_path, capsys):
  marker = tmp_path / 'pwned'
  source = tmp_path / 'evil.pth'
  torch.save(
    {'kp_detector': {'kp.weight': torch.zeros(1)}, 'payload': _RunsCode(str(marker))}, source
  )
  _fails(capsys, tmp_path, source, 'refused to load')
  assert not marker.exists()


def test_existing_output_and_missing_file(tmp_path, capsys):
  _fails(capsys, tmp_path, tmp_path / 'nope.pth', 'no such file')
  source = tmp_path / 'ok.pth'
  _save_like_fomm(narrow_fomm_twin(), source)
  (tmp_path / 'out').mkdir()
  exit_ = commands.in_process(
    'tools.convert_fomm', f'--checkpoint={source}', f'--out={tmp_path / "out"}'
  )
  assert 'already exists' in commands.one_line(exit_)
  assert os.listdir(tmp_path / 'out') == []


def test_restore_errors_are_clear(tmp_path):
  with pytest.raises(checkpoints.CheckpointError, match='no checkpoints in'):
    checkpoints.restore_model(tmp_path)
  with pytest.raises(checkpoints.CheckpointError, match='no checkpoints at'):
    checkpoints.restore_model(tmp_path / 'missing')


def test_command_errors_are_one_line(tmp_path):
  exit_ = commands.in_process(
    'tools.convert_fomm', f'--checkpoint={tmp_path / "nope.pth"}', f'--out={tmp_path / "out"}'
  )
  assert 'no such file' in commands.one_line(exit_)
  # The command's wiring, as a subprocess: absl's error for a missing flag, its last line.
  missing_flag = _command(f'--out={tmp_path / "out"}')
  assert missing_flag.returncode != 0 and 'Traceback' not in missing_flag.stderr
  assert missing_flag.stderr.strip().splitlines()[-1].startswith('error: flag --checkpoint=None')


def test_converted_256_teacher_is_used_at_64_without_a_second_downsampling(tmp_path):
  """Frames reach the teacher already downsampled: it is rebuilt at scale 1, same weights."""
  from configs import vox
  from train.teacher import load_teacher

  twin = narrow_fomm_twin()
  source = tmp_path / 'vox-cpk.pth.tar'
  _save_like_fomm(twin, source)
  convert_fomm.convert(str(source), str(tmp_path / 'teacher'))
  config = vox.get_config('smoke')  # real frames: what FOMM's converted teacher is for
  config.teacher.checkpoint = str(tmp_path / 'teacher')
  teacher, meta = load_teacher(config)
  assert meta['options']['scale_factor'] == 0.25 and teacher.scale_factor == 1.0
  frames = np.random.default_rng(0).uniform(size=(1, 256, 256, 3)).astype(np.float32)
  from models import ops

  small = np.asarray(ops.anti_alias_downsample(frames, 0.25))
  with torch.inference_mode():
    theirs = twin(torch.from_numpy(frames.transpose(0, 3, 1, 2)))
  np.testing.assert_allclose(teacher(small)['kp'], theirs['kp'].numpy(), atol=1e-4)
