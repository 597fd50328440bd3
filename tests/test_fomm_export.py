"""FOMM's generator exported to ONNX and LiteRT: parity with Flax, the sidecar, bad input.

A narrow generator (every block, a handful of channels) on 64x64 frames; the
files are read back with their runtimes on frames and keypoints the export
never saw.
"""

import json

import commands
import jax
import numpy as np
import pytest
import torch
from flax import nnx
from narrow import NARROW_GENERATOR

import models
from models import compiler
from torch_twins.export import formats
from torch_twins.export.generator import export_generator, random_inputs
from torch_twins.fomm_generator import inverse_2x2
from train.checkpoints import save_model

NAME = 'fomm_generator'
NARROW = {**NARROW_GENERATOR, 'num_kp': 5}


def _generator(**options):
  config = models.model_config(NAME, {**NARROW, **options})
  model = models.create_model(NAME, config, rngs=nnx.Rngs(0))
  model.eval()
  return model, config


def _flax(model, inputs):
  def call(generator, source, kp_source, kp_driving):
    return generator(source, kp_source, kp_driving)['prediction']

  kp = {w: {'kp': inputs[f'kp_{w}'], 'jacobian': inputs[f'jacobian_{w}']} for w in
        ('source', 'driving')}  # fmt: skip
  compiled = compiler.CompiledCall(model, call, inputs['source'], kp['source'], kp['driving'])
  return np.asarray(jax.block_until_ready(compiled(inputs['source'], kp['source'], kp['driving'])))


def _check_file(path, model, num_kp=5, size=64):
  runtime = formats.load_runtime(str(path))
  for inputs in random_inputs(num_kp, size, 2, seed=7):  # not the export's seed 0
    got = runtime.run(inputs)['prediction']
    assert got.shape == (1, size, size, 3)
    np.testing.assert_allclose(got, _flax(model, inputs), atol=1e-4)


def test_onnx_from_a_generator_folder_computes_what_flax_computes(tmp_path, capsys):
  # Dense motion at full resolution: 64x64 frames are the generator's default size.
  model, config = _generator(dense_motion_scale_factor=1.0)
  folder = tmp_path / 'generator'
  save_model(folder, model, name=NAME, options=dict(config))
  out = tmp_path / 'generator.onnx'
  # The command in-process (its subprocess wiring: tests/test_export_command.py).
  exit_ = commands.in_process(
    'tools.export', f'--checkpoint={folder}', '--format=onnx', f'--out={out}', '--images=2'
  )
  assert exit_ is None
  assert 'max |difference| prediction' in capsys.readouterr().out
  _check_file(out, model)
  sidecar = json.loads(out.with_name('generator.onnx.json').read_text())
  assert list(sidecar['inputs']) == [
    'source', 'kp_source', 'jacobian_source', 'kp_driving', 'jacobian_driving'
  ]  # fmt: skip
  assert sidecar['inputs']['source']['shape'] == [1, 64, 64, 3]
  assert sidecar['inputs']['jacobian_driving']['shape'] == [1, 5, 2, 2]
  assert sidecar['outputs']['prediction']['shape'] == [1, 64, 64, 3]
  assert sidecar['parity']['max_abs_difference_to_flax']['prediction'] <= 1e-4
  assert sidecar['weights']['source'] == str(folder)


def test_litert_with_grid_sample_and_downsampling_computes_what_flax_computes(tmp_path):
  model, config = _generator()  # vox's 0.25: motion at 16x16, resized deformation
  out = tmp_path / 'generator.tflite'
  sidecar = export_generator(
    model, NAME, config, fmt='tflite', out=str(out), weights={'source': 'random'}, size=64, count=2
  )
  assert sidecar['parity']['max_abs_difference_to_flax']['prediction'] <= 1e-4
  _check_file(out, model)


def test_the_written_out_inverse_equals_torch_inverse():
  matrices = torch.eye(2) + 0.3 * torch.randn(
    4, 5, 2, 2, generator=torch.Generator().manual_seed(0)
  )
  torch.testing.assert_close(inverse_2x2(matrices), torch.inverse(matrices), atol=1e-5, rtol=1e-5)


def test_bad_generator_export_input_fails_with_one_line(tmp_path):
  line = commands.one_line(
    commands.in_process(
      'tools.export', '--model=fomm_generator', '--format=onnx', '--int8',
      f'--out={tmp_path / "g.onnx"}',
    )
  )  # fmt: skip
  assert line == 'error: fomm_generator: int8 export is for the keypoint detectors; drop --int8.'


@pytest.mark.slow
@pytest.mark.parametrize('fmt', ['onnx', 'tflite'])
def test_full_width_generator_exports(tmp_path, fmt):
  model = models.create_model(NAME, rngs=nnx.Rngs(0))
  model.eval()
  out = tmp_path / f'generator.{fmt}'
  sidecar = export_generator(
    model, NAME, models.default_config(NAME), fmt=fmt, out=str(out), weights={}, count=1
  )
  assert sidecar['parity']['max_abs_difference_to_flax']['prediction'] <= 1e-4
