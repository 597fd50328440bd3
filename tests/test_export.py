"""Export to LiteRT and ONNX: every model in both formats, the sidecar, the refusal of a file
that computes something else (test_export_command.py: the command, int8, bad input).

Models are exported once per format (module fixtures, library calls, random
weights as `--model` gives them): one per op family at narrow widths, in one
format each in the fast tier (`FAST`) and in the other in the slow one, and
every model at full width in both in the slow tier; the tests read those
files back with their runtimes on images the export never saw.
"""

import json
import os

import commands
import numpy as np
import pytest
import torch
from flax import nnx
from narrow import NARROW, model_at, options_at

import models
from models import compiler
from torch_twins.export import ExportError, export, formats, graph, load_runtime
from torch_twins.export import exporter as exporter_module
from train import export_inputs

FORMATS = ('tflite', 'onnx')


# The fast tier exports one model of each op family at narrow widths, each in one format
# (a LiteRT conversion costs about 10 s of CPU, an ONNX one about 4 s), both formats
# among them: EdgeSegNet (row-shifted stem, bilinear upsampling, deferred head) and the
# depthwise separable Squeeze U-Net (fires, max pools, depthwise transposed fires,
# skips) to LiteRT; FOMM's detector (anti-alias downsampling, average pools, sub-pixel
# upsampling convs; its LiteRT lowering is also the generator's, tests/test_fomm_export.py)
# and L3U-Net (folding) to ONNX. The other format of each: the slow tier, narrow, and
# every model in both formats at its full widths.
FAST = (
  ('edgesegnet', 'tflite'),
  ('fomm_teacher', 'onnx'),
  ('squeeze_unet_dsc', 'tflite'),
  ('l3unet', 'onnx'),
)
NARROW_PAIRS = (
  *FAST,
  *(
    pytest.param(name, fmt, marks=pytest.mark.slow)
    for name, _ in FAST
    for fmt in FORMATS
    if (name, fmt) not in FAST
  ),
)


class _Exports:
  """Models exported when first asked for, once per module: `exports[name, fmt]` is
  (path, sidecar); `held_out[name]` a held-out image and the Flax outputs on it."""

  def __init__(self, folder, width):
    self.folder, self.width = folder, width
    self._models, self._files, self.held_out = {}, {}, {}

  def _model(self, name):
    if name not in self._models:
      model = model_at(name, self.width, nnx.Rngs(0))
      size = model.default_input_size
      image = np.random.default_rng(7).uniform(size=(1, size, size, 3)).astype(np.float32)
      out = compiler.InferenceFunction(model, image.shape)(image)
      self.held_out[name] = image, {k: np.asarray(v) for k, v in out.items()}
      self._models[name] = model
    return self._models[name]

  def __getitem__(self, key):
    if key not in self._files:
      name, fmt = key
      model = self._model(name)
      inputs = export_inputs.random_inputs(model.default_input_size, count=2, calibration=0)
      path = str(self.folder / f'{name}.{fmt}')
      sidecar = export(
        model,
        name,
        models.model_config(name, options_at(name, self.width)),
        fmt=fmt,
        out=path,
        images=inputs.images,
        images_source=inputs.images_source,
        weights={'source': 'random'},
      )
      self._files[key] = path, sidecar
    return self._files[key]


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """The op families' models, narrow, each format exported when a test first asks."""
  return _Exports(tmp_path_factory.mktemp('exported'), 'narrow')


@pytest.fixture(scope='module')
def exported_full(tmp_path_factory):
  """Every model at its full widths (the slow tier)."""
  return _Exports(tmp_path_factory.mktemp('exported_full'), 'full')


def _assert_runtime_computes_what_flax_computes(exported, name, fmt):
  path, sidecar = exported[name, fmt]
  assert max(sidecar['parity']['max_abs_difference_to_flax'].values()) <= 1e-4
  image, expected = exported.held_out[name]
  got = load_runtime(path, threads=1)(image)
  for key in ('kp', 'jacobian'):
    assert got[key].dtype == np.float32
    np.testing.assert_allclose(got[key], expected[key], atol=1e-4, rtol=0)


@pytest.mark.parametrize('name,fmt', NARROW_PAIRS)
def test_one_model_per_op_family_exports_and_computes_what_flax_computes(exported, name, fmt):
  _assert_runtime_computes_what_flax_computes(exported, name, fmt)


@pytest.mark.slow
@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('name', models.MODEL_NAMES)
def test_every_model_exports_and_computes_what_flax_computes(exported_full, name, fmt):
  _assert_runtime_computes_what_flax_computes(exported_full, name, fmt)


def test_exporting_leaves_jax_in_32_bit_mode(exported):
  import jax

  for key in FAST:  # the fast tier's models converted, litert_torch imported
    exported[key]
  assert not jax.config.jax_enable_x64
  assert jax.numpy.asarray(np.zeros(2)).dtype == np.float32


def test_sidecar_says_what_goes_in_and_comes_out(exported):
  path, sidecar = exported['edgesegnet', 'tflite']
  with open(path + '.json') as f:
    assert json.load(f) == sidecar
  assert sidecar['model'] == 'edgesegnet' and sidecar['format'] == 'tflite'
  assert sidecar['precision'] == 'float32' and sidecar['size_bytes'] == os.path.getsize(path)
  options = models.model_config('edgesegnet', NARROW['edgesegnet'])
  assert sidecar['options'] == json.loads(options.to_json())
  assert sidecar['input'] == {
    'name': 'image',
    'shape': [1, 64, 64, 3],
    'layout': 'NHWC',
    'dtype': 'float32',
    'range': [0.0, 1.0],
    'channels': 'RGB',
  }
  assert sidecar['outputs']['kp']['shape'] == [1, 10, 2]
  assert sidecar['outputs']['jacobian']['shape'] == [1, 10, 2, 2]
  assert 'make_coordinate_grid' in sidecar['outputs']['kp']['meaning']
  assert sidecar['weights'] == {'source': 'random'}
  assert sidecar['parity']['tolerance'] == 1e-4
  assert sidecar['parity']['images'] == '2 uniform random 64x64 images'
  assert sidecar['exported_with']['litert-torch'] != 'not installed'
  teacher = exported['fomm_teacher', 'onnx'][1]
  assert teacher['input']['shape'] == [1, 256, 256, 3]  # FOMM's own frame size at --model
  assert teacher['exported_with']['onnxruntime'] != 'not installed'


def test_the_documented_example_draws_keypoints_from_a_tflite_file(exported, tmp_path):
  import matplotlib.pyplot as plt

  path = exported['edgesegnet', 'tflite'][0]
  image, _ = exported.held_out['edgesegnet']
  plt.imsave(tmp_path / 'face.png', image[0])
  out = tmp_path / 'keypoints.png'
  result = commands.run('examples/tflite_keypoints.py', path, str(tmp_path / 'face.png'), str(out))
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip().endswith(f'10 keypoints drawn on {tmp_path / "face.png"} -> {out}')
  assert out.stat().st_size > 1000


def test_twins_transposed_conv_pads_outside_the_op_with_the_same_result():
  from torch_twins.blocks import ConvTranspose2d

  x = torch.randn(2, 8, 5, 7)
  for kernel, padding, output_padding, groups in ((3, 1, 1, 1), (4, 1, 0, 1), (3, 1, 1, 8)):
    layer = ConvTranspose2d(8, 8, kernel, 2, padding, output_padding, groups=groups)
    expected = torch.nn.functional.conv_transpose2d(
      x, layer.weight, layer.bias, 2, padding, output_padding, groups
    )
    torch.testing.assert_close(layer(x), expected)


def test_a_conversion_failure_names_the_op(tmp_path):
  class Twin(torch.nn.Module):  # the transposed conv the twins used before they were made clean
    def __init__(self):
      super().__init__()
      self.up = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
      y = self.up(x)
      return {'kp': y.mean(dim=(2, 3)), 'jacobian': y}

  image = np.zeros((1, 8, 8, 3), np.float32)
  with pytest.raises(ExportError, match='tflite conversion failed at mhlo.convolution: '):
    formats.convert(graph.Deployable(Twin()).eval(), image, 'tflite', str(tmp_path / 'm.tflite'))


def test_a_file_that_computes_something_else_is_refused_and_nothing_written(tmp_path, monkeypatch):
  def off_by_a_little(model, name, options):
    module = graph.deployable(model, name, options)
    with torch.no_grad():
      module.twin.head.jacobian.bias += 1e-3  # every jacobian entry off by 1e-3
    return module

  monkeypatch.setattr(exporter_module, 'deployable', off_by_a_little)
  model = model_at('squeeze_encdec', 'narrow', nnx.Rngs(0))
  inputs = export_inputs.random_inputs(64, count=2, calibration=0)
  out = tmp_path / 'model.onnx'
  with pytest.raises(ExportError, match=r'differs from the Flax model by .* nothing written'):
    export(
      model,
      'squeeze_encdec',
      models.model_config('squeeze_encdec', options_at('squeeze_encdec', 'narrow')),
      fmt='onnx',
      out=str(out),
      images=inputs.images,
      images_source=inputs.images_source,
      weights={},
    )
  assert list(tmp_path.iterdir()) == []  # no file, no sidecar, no temporary folder
