"""Export FOMM's generator: its twin behind NHWC frames and keypoint tensors, checked against Flax.

The file takes the source frame and both keypoint sets (kp and jacobian for
the source frame and for the driving frame, as the detector returns them)
and gives the prediction: the source re-posed. Nothing is written unless the
file, run by its own runtime, matches the Flax generator within `TOLERANCE`
on random frames and keypoints. The sidecar (`FILE.json`) says what goes in
and comes out.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from flax import nnx

from models import compiler
from torch_twins.export.exporter import JACOBIAN_MEANING, KP_MEANING, TOLERANCE, _version
from torch_twins.export.formats import FORMATS, ExportError, convert, load_runtime
from torch_twins.export.graph import GeneratorDeployable, deployable

_PACKAGES = {
  'tflite': ('torch', 'litert-torch', 'ai-edge-litert'),
  'onnx': ('torch', 'onnx', 'onnxscript', 'onnxruntime'),
}


def random_inputs(num_kp: int, size: int, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
  """`count` sets of the file's inputs (batch 1): uniform frames, keypoints spread over the
  frame and jacobians away from the identity, so that every sampling path is exercised."""
  rng = np.random.default_rng(seed)
  sets = []
  for _ in range(count):
    inputs = {'source': rng.uniform(size=(1, size, size, 3)).astype(np.float32)}
    for which in ('source', 'driving'):
      inputs[f'kp_{which}'] = rng.uniform(-0.9, 0.9, (1, num_kp, 2)).astype(np.float32)
      jacobian = np.eye(2) + rng.normal(0, 0.2, (1, num_kp, 2, 2))
      inputs[f'jacobian_{which}'] = jacobian.astype(np.float32)
    sets.append(inputs)
  return sets


def _flax_predictions(model: nnx.Module, sets: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
  def call(generator, source, kp_source, kp_driving):
    return generator(source, kp_source, kp_driving)['prediction']

  def args(inputs):
    kp = {w: {'kp': inputs[f'kp_{w}'], 'jacobian': inputs[f'jacobian_{w}']} for w in
          ('source', 'driving')}  # fmt: skip
    return inputs['source'], kp['source'], kp['driving']

  compiled = compiler.CompiledCall(model, call, *args(sets[0]))
  return [np.asarray(jax.block_until_ready(compiled(*args(inputs)))) for inputs in sets]


def export_generator(
  model: nnx.Module,
  name: str,
  options: Mapping[str, Any],
  *,
  fmt: str,
  out: str,
  weights: Mapping[str, Any],
  count: int = 4,
  size: int | None = None,
  overwrite: bool = False,
) -> dict[str, Any]:
  """Exports Flax generator `model` to `out` (format `fmt`); returns the sidecar written beside it.

  Args:
    count: random input sets the file is checked on.
    size: the frames' side (default the generator's `default_input_size`).

  Raises:
    ExportError: an unknown format, an existing `out`, a failed conversion, or
      a file that differs from the Flax generator by more than TOLERANCE.
  """
  if fmt not in FORMATS:
    raise ExportError(f'unknown format {fmt!r}; use --format={" or --format=".join(FORMATS)}.')
  if os.path.exists(out) and not overwrite:
    raise ExportError(f'{out} exists; pass --overwrite to replace it, or another --out.')
  size = size or model.default_input_size
  model.check_input_shape((1, size, size, model.num_channels))
  num_kp = model.dense_motion_network.num_kp
  sets = random_inputs(num_kp, size, count)
  reference = _flax_predictions(model, sets)
  module = deployable(model, name, options)
  folder = os.path.dirname(os.path.abspath(out))
  os.makedirs(folder, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=folder, prefix='.export-') as tmp:
    path = os.path.join(tmp, f'float32.{fmt}')
    convert(module, sets[0], fmt, path)
    runtime = load_runtime(path)
    worst = max(
      float(np.abs(runtime.run(inputs)['prediction'] - expected).max())
      for inputs, expected in zip(sets, reference, strict=True)
    )
    if not worst <= TOLERANCE:  # also catches NaN
      raise ExportError(
        f'the exported {fmt} generator differs from the Flax model by {worst:.3g} (tolerance '
        f'{TOLERANCE:g}) on {count} random frames and keypoint sets; nothing written.'
      )
    sidecar = _sidecar(name, options, fmt, out, path, size, num_kp, weights, worst, count)
    os.replace(path, out)
  with open(out + '.json', 'w') as f:
    json.dump(sidecar, f, indent=2)
  return sidecar


def _sidecar(name, options, fmt, out, path, size, num_kp, weights, worst, count) -> dict[str, Any]:
  frame = {'shape': [1, size, size, 3], 'layout': 'NHWC', 'dtype': 'float32', 'range': [0.0, 1.0]}
  kp = {'shape': [1, num_kp, 2], 'dtype': 'float32', 'meaning': KP_MEANING}
  jacobian = {'shape': [1, num_kp, 2, 2], 'dtype': 'float32', 'meaning': JACOBIAN_MEANING}
  what = {
    'source': 'the source frame (RGB), the image that is re-posed',
    'kp_source': "the detector's keypoints on the source frame",
    'jacobian_source': "the detector's jacobians on the source frame",
    'kp_driving': "the detector's keypoints on the driving frame (absolute, or FOMM's relative "
    'ones from models.relative_keypoints)',
    'jacobian_driving': "the detector's jacobians on the driving frame",
  }
  inputs = {
    key: {**(frame if key == 'source' else kp if key.startswith('kp') else jacobian), 'is': text}
    for key, text in what.items()
  }
  assert tuple(inputs) == GeneratorDeployable.INPUTS
  return {
    'model': name,
    'options': json.loads(json.dumps(dict(options))),
    'format': fmt,
    'precision': 'float32',
    'file': os.path.basename(out),
    'size_bytes': os.path.getsize(path),
    'inputs': inputs,
    'outputs': {
      'prediction': {**frame, 'is': 'the source frame re-posed by the driving keypoints'}
    },
    'weights': dict(weights),
    'parity': {
      'inputs': f'{count} random frames and keypoint sets (seed 0)',
      'max_abs_difference_to_flax': {'prediction': worst},
      'tolerance': TOLERANCE,
    },
    'exported_with': {p: _version(p) for p in _PACKAGES[fmt]},
    'created': datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'),
  }
