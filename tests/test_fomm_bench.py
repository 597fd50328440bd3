"""`benchmark.py --fomm`'s measurement in-process: a narrow generator and detectors on 64x64."""

import json
import tempfile

from narrow import NARROW, NARROW_GENERATOR

from bench import fomm, fomm_tables

GENERATOR = NARROW_GENERATOR  # the narrow detectors' 10 keypoints


def test_fomm_frame_parts_are_timed_in_every_framework_and_tabled():
  with tempfile.TemporaryDirectory() as folder:
    record = fomm.bench_fomm(
      runs=2,
      threads=1,
      exported_dir=folder,
      size=64,
      generator_options=GENERATOR,
      detectors={'fomm_teacher': NARROW['fomm_teacher'], 'edgesegnet': NARROW['edgesegnet']},
    )
  json.dumps(record)  # JSON-ready
  assert record['teacher'] == 'fomm_teacher'
  parts = {'generator', 'motion', 'frame', 'detector:fomm_teacher', 'detector:edgesegnet'}
  assert set(record['times']['jax']) == parts
  assert set(record['times']['torch']) == parts
  assert set(record['times']['onnxruntime']) == parts - {'motion'}
  assert record['runtimes_failed'] == {}
  # Compared before timing: JAX, PyTorch and ONNX Runtime agree on every part.
  exported = {f'onnxruntime:{part}' for part in parts - {'motion', 'frame'}}
  assert set(record['max_differences']) == (parts - {'frame'}) | exported
  assert max(record['max_differences'].values()) < 1e-3
  assert 0 < record['motion_mult_adds_g'] < record['generator_mult_adds_g']
  assert record['detectors']['edgesegnet']['input_size'] == 64
  assert record['hoisted_ops']['generator'] > 0  # BatchNorm folded once, not per call
  text = fomm_tables.fomm_tables([{**{'threads': 1, 'peak_gflops': 10.0}, 'fomm': record}])
  assert "## Where a frame's time goes" in text
  assert '| 1 | whole frame (detector + generator) |' in text
  assert '| 1 | edgesegnet | 64 |' in text
  assert '| - |' not in text.split('| 1 | edgesegnet |')[1].splitlines()[0]  # ORT columns filled
  assert 'of the matmul peak on 1 thread(s)' in text
