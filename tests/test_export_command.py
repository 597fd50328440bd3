"""tools.export as a command and int8 export: the levels of quantisation, the refusal, the
head kept in float, and every bad-input line (test_export.py: the files themselves).

The command runs in-process (`commands.in_process`: its main under absl's flag parsing),
but for one bad flag and --help, run as subprocesses for its wiring. A file of its own so
that pytest-xdist runs it beside test_export.py's conversions.
"""

import json
import os

import commands
import pytest

import models
from torch_twins.export import ExportError, export
from torch_twins.export import exporter as exporter_module
from train import export_inputs


def _export_cli(*args):
  return commands.run('-m', 'tools.export', *args, timeout=600)


def _export(*args):
  return commands.in_process('tools.export', *args)


def test_int8_from_a_trained_run_reports_val_distance_beside_fp32(edgeseg_run, tmp_path, capsys):
  workdir, _ = edgeseg_run
  out = tmp_path / 'edgeseg_int8.tflite'
  assert _export(f'--checkpoint={workdir}', '--format=tflite', '--int8', f'--out={out}') is None
  stdout = capsys.readouterr().out
  assert f'wrote {out}' in stdout and 'val distance to the teacher' in stdout
  sidecar = json.loads((tmp_path / 'edgeseg_int8.tflite.json').read_text())
  assert sidecar['precision'] == 'int8' and sidecar['weights']['source'] == str(workdir)
  assert sidecar['int8']['method'].startswith('static int8')
  assert sidecar['int8']['calibration'].startswith('the first 48 training images')
  assert sidecar['size_bytes'] < 0.4 * sidecar['int8']['float32_size_bytes']
  assert sidecar['input']['dtype'] == 'int8' and sidecar['outputs']['kp']['dtype'] == 'float32'
  distance = sidecar['val_distance']
  assert set(distance) == {'flax', 'float32_file', 'int8_file'}
  assert abs(distance['float32_file'] - distance['flax']) < 1e-5
  # int8 moves the keypoints by well under a pixel (2/63 in these coordinates).
  assert sidecar['int8']['mean_kp_distance_to_float32'] < 0.5 * 2 / 63
  assert abs(distance['int8_file'] - distance['flax']) < 0.5 * 2 / 63


def _int8_onnx(edgeseg_run, out):
  from train.checkpoints import restore_model

  workdir, _ = edgeseg_run
  model, meta = restore_model(str(workdir))
  inputs = export_inputs.workdir_inputs(meta['experiment'], count=8, calibration=16)
  return export(
    model,
    'edgesegnet',
    models.model_config('edgesegnet', meta['options']),
    fmt='onnx',
    out=str(out),
    images=inputs.images,
    images_source=inputs.images_source,
    weights={},
    int8=True,
    calibration=inputs.calibration,
    calibration_source=inputs.calibration_source,
    teacher_kp=inputs.reference_kp,
  )


def test_int8_takes_the_first_level_within_tolerance_or_writes_nothing(
  edgeseg_run, tmp_path, monkeypatch
):
  levels, quantize = [], exporter_module.quantization.quantize

  def int8_fails(fmt, *args, level, **kwargs):
    levels.append(level)
    if level == 'int8':  # as an op without an int8 kernel would
      raise RuntimeError('no int8 kernel for SOME_OP')
    return quantize(fmt, *args, level=level, **kwargs)

  monkeypatch.setattr(exporter_module.quantization, 'quantize', int8_fails)
  sidecar = _int8_onnx(edgeseg_run, tmp_path / 'm.onnx')
  assert levels == ['int8', 'int16_activations']
  tried = sidecar['int8']['levels_tried']
  assert tried[0] == {'level': 'int8', 'failed': 'no int8 kernel for SOME_OP'}
  assert tried[1]['level'] == 'int16_activations'
  assert sidecar['int8']['method'].startswith('static int8 weights, int16 activations')
  distance = sidecar['val_distance']
  assert tried[1]['val_distance_change'] == pytest.approx(
    abs(distance['int8_file'] - distance['float32_file'])
  )
  assert tried[1]['val_distance_change'] <= exporter_module.INT8_TOLERANCE

  monkeypatch.setattr(exporter_module, 'INT8_TOLERANCE', -1.0)  # nothing can pass
  with pytest.raises(ExportError) as error:
    _int8_onnx(edgeseg_run, tmp_path / 'refused' / 'm.onnx')
  message = str(error.value)
  assert message.startswith('no int8 onnx file keeps its val distance within -1.0 of the fp32')
  assert 'int8: failed; int16_activations: 0.' in message and 'weights_only: 0.' in message
  assert message.endswith('nothing written.') and '\n' not in message
  assert os.listdir(tmp_path / 'refused') == []


def test_int8_onnx_keeps_the_head_in_float(edgeseg_run, tmp_path):
  sidecar = _int8_onnx(edgeseg_run, tmp_path / 'm.onnx')
  assert sidecar['int8']['method'].startswith('static int8 (onnxruntime quantize_static')
  assert sidecar['int8']['mean_kp_distance_to_float32'] < 0.5 * 2 / 63
  import onnx

  graph_nodes = onnx.load(str(tmp_path / 'm.onnx')).graph.node
  assert any(node.op_type == 'QuantizeLinear' for node in graph_nodes)
  softmax_inputs = {i for node in graph_nodes if node.op_type == 'Softmax' for i in node.input}
  producers = {o: node.op_type for node in graph_nodes for o in node.output}
  assert all(producers.get(i) != 'DequantizeLinear' for i in softmax_inputs)


def test_bad_input_fails_with_one_line(tmp_path):
  empty = tmp_path / 'empty'
  empty.mkdir()
  line = commands.one_line(
    _export(f'--checkpoint={empty}', '--format=onnx', f'--out={tmp_path / "m.onnx"}')
  )
  assert line.startswith('error: no checkpoints in ') and str(empty) in line
  existing = tmp_path / 'exists.tflite'
  existing.write_text('keep me')
  line = commands.one_line(_export('--model=edgesegnet', '--format=tflite', f'--out={existing}'))
  assert line == f'error: {existing} exists; pass --overwrite to replace it, or another --out.'
  assert existing.read_text() == 'keep me'
  line = commands.one_line(_export('--format=tflite', f'--out={tmp_path / "m"}'))
  assert line.startswith('error: pass either --checkpoint')
  line = commands.one_line(
    _export('--model=edgesegnet', '--format=tflite', '--out=/proc/nope/m.tflite')
  )
  assert line.startswith('error: cannot create the output folder /proc/nope (')  # before converting
  # The command's wiring: absl's flag error as its last line and exit status, and --help.
  line = commands.last_error_line(
    _export_cli('--model=edgesegnet', '--format=coreml', f'--out={tmp_path / "m"}')
  )
  assert line.startswith('error: ') and 'tflite' in line and 'onnx' in line
  assert 'create_model(NAME, rngs=nnx.Rngs(0))' in _export_cli('--help').stdout
