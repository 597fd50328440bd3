"""Export one model to one file: convert, check against the Flax model, quantise, write.

Nothing is written unless the exported file computes what the Flax model
computes: the fp32 file is run by its own runtime on the given images and
refused if its keypoints or jacobians differ by more than `TOLERANCE`; an
int8 file, if its val distance moves by more than `INT8_TOLERANCE`. The
file and its sidecar (`FILE.json`: what goes in, what comes out, where the
weights came from, the parity measured here) are moved into place last.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flax import nnx

from models import compiler
from torch_twins.export import quantize as quantization
from torch_twins.export.formats import FORMATS, ExportError, convert, load_runtime
from torch_twins.export.graph import INPUT, OUTPUTS, deployable, float_scopes
from train import losses

TOLERANCE = 1e-4
# An int8 file may move val distance (or, without a teacher, the keypoints) by this much.
INT8_TOLERANCE = 0.005
KP_MEANING = (
  '(x, y) per keypoint in normalised image coordinates: x from left to right, y from top to '
  'bottom, -1 and 1 the centres of the first and last pixel (FOMM make_coordinate_grid)'
)
JACOBIAN_MEANING = (
  "2x2 matrix per keypoint, row-major [[dx/du, dx/dv], [dy/du, dy/dv]]: FOMM's local linear "
  'map of the motion around the keypoint, in the same normalised coordinates'
)
_PACKAGES = {
  'tflite': ('torch', 'litert-torch', 'ai-edge-litert', 'ai-edge-quantizer'),
  'onnx': ('torch', 'onnx', 'onnxscript', 'onnxruntime'),
}


def _run(runtime, images: np.ndarray) -> dict[str, np.ndarray]:
  out = [runtime(images[i : i + 1]) for i in range(len(images))]
  return {name: np.concatenate([o[name] for o in out]) for name in OUTPUTS}


def _difference(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> dict[str, float]:
  return {name: float(np.abs(a[name] - b[name]).max()) for name in OUTPUTS}


def _distance(kp: np.ndarray, reference: np.ndarray) -> float:
  return float(losses.keypoint_distance(kp, reference))


def export(
  model: nnx.Module,
  name: str,
  options: Mapping[str, Any],
  *,
  fmt: str,
  out: str,
  images: np.ndarray,
  images_source: str,
  weights: Mapping[str, Any],
  int8: bool = False,
  calibration: Sequence[np.ndarray] | None = None,
  calibration_source: str = '',
  teacher_kp: np.ndarray | None = None,
  overwrite: bool = False,
) -> dict[str, Any]:
  """Exports Flax `model` (zoo name `name`) to `out`; returns the sidecar written beside it.

  Args:
    fmt: 'tflite' or 'onnx'.
    out: the file to write; its sidecar is `out + '.json'`.
    images: (N, H, W, 3) float32 in [0, 1], the parity images (validation or random).
    images_source: what `images` are, for the sidecar.
    weights: where the weights came from (checkpoint, step, provenance), for the sidecar.
    int8: quantise, calibrated on `calibration`: the first of `quantize.LEVELS`
      (static int8; int16 activations; int8 weights only) whose keypoints stay
      within INT8_TOLERANCE of the fp32 file's, or ExportError.
    calibration: representative images for `int8`, each (1, H, W, 3).
    teacher_kp: the teacher's keypoints on `images`; with it the sidecar
      reports val distance (Flax, fp32 file, int8 file).
    overwrite: replace an existing `out`.

  Raises:
    ExportError: an unknown format, an existing `out`, a failed conversion, or
      an fp32 file that differs from the model by more than TOLERANCE, or no int8
      level within INT8_TOLERANCE.
  """
  if fmt not in FORMATS:
    raise ExportError(f'unknown format {fmt!r}; use --format={" or --format=".join(FORMATS)}.')
  if os.path.exists(out) and not overwrite:
    raise ExportError(f'{out} exists; pass --overwrite to replace it, or another --out.')
  if int8 and not calibration:
    raise ExportError('int8 export needs representative images to calibrate on.')
  folder = os.path.dirname(os.path.abspath(out))
  os.makedirs(folder, exist_ok=True)
  images = np.asarray(images, np.float32)
  module = deployable(model, name, options)
  reference = compiler.predict(model, images, outputs=OUTPUTS)
  report: dict[str, Any] = {}
  with tempfile.TemporaryDirectory(dir=folder, prefix='.export-') as tmp:
    float_path = os.path.join(tmp, f'float32.{fmt}')
    convert(module, images[:1], fmt, float_path)
    runtime = load_runtime(float_path)
    float_out = _run(runtime, images)
    parity = _difference(float_out, reference)
    worst = max(parity.values())
    if not worst <= TOLERANCE:  # also catches NaN
      raise ExportError(
        f'the exported {fmt} file differs from the Flax model by {worst:.3g} (tolerance '
        f'{TOLERANCE:g}) on {images_source}; nothing written.'
      )
    report['parity'] = {
      'images': images_source,
      'max_abs_difference_to_flax': parity,
      'tolerance': TOLERANCE,
    }
    written = float_path
    if teacher_kp is not None:
      report['val_distance'] = {
        'flax': _distance(reference['kp'], teacher_kp),
        'float32_file': _distance(float_out['kp'], teacher_kp),
      }
    if int8:
      written, runtime, report['int8'] = _quantize(
        fmt, float_path, tmp, calibration, float_scopes(module), images, float_out, teacher_kp
      )
      report['int8'].update(
        calibration=calibration_source, float32_size_bytes=os.path.getsize(float_path)
      )
      int8_out = _run(runtime, images)
      report['int8']['max_abs_difference_to_flax'] = _difference(int8_out, reference)
      if teacher_kp is not None:
        report['val_distance']['int8_file'] = _distance(int8_out['kp'], teacher_kp)
    sidecar = _sidecar(
      name, options, fmt, out, written, runtime, images.shape, weights, int8, report
    )
    os.replace(written, out)
  with open(out + '.json', 'w') as f:
    json.dump(sidecar, f, indent=2)
  return sidecar


def _quantize(fmt, float_path, tmp, calibration, scopes, images, float_out, teacher_kp):
  """The first quantisation level whose keypoints stay within INT8_TOLERANCE of the fp32 file's.

  The measure is the change in val distance to the teacher where its keypoints
  are known (what the int8 file costs in accuracy), else the mean keypoint
  move from the fp32 file (which bounds that change).

  Returns:
    (path, runtime, report) of the level kept.

  Raises:
    ExportError: when no level keeps the keypoints within the tolerance (nothing written).
  """
  tried = []
  for level in quantization.LEVELS:
    path = os.path.join(tmp, f'{level}.{fmt}')
    try:
      method = quantization.quantize(fmt, float_path, path, calibration, scopes, level=level)
    except Exception as error:  # e.g. an op without a kernel at this level
      tried.append({'level': level, 'failed': str(error).splitlines()[0][:200] or repr(error)})
      continue
    runtime = load_runtime(path)
    kp = _run(runtime, images)['kp']
    moved = _distance(kp, float_out['kp'])
    change = (
      abs(_distance(kp, teacher_kp) - _distance(float_out['kp'], teacher_kp))
      if teacher_kp is not None
      else moved
    )
    tried.append({'level': level, 'method': method, 'val_distance_change': change})
    if change <= INT8_TOLERANCE:
      report = {'method': method, 'mean_kp_distance_to_float32': moved, 'levels_tried': tried}
      return path, runtime, report
  measure = 'val distance' if teacher_kp is not None else 'keypoints'
  summary = '; '.join(
    f'{t["level"]}: ' + (f'{t["val_distance_change"]:.4f}' if 'method' in t else 'failed')
    for t in tried
  )
  raise ExportError(
    f'no int8 {fmt} file keeps its {measure} within {INT8_TOLERANCE} of the fp32 file '
    f'({summary}); ship the fp32 file (drop --int8) or try the other format; nothing written.'
  )


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return 'not installed'


def _sidecar(
  name, options, fmt, out, path, runtime, shape, weights, int8, report
) -> dict[str, Any]:
  """The JSON beside the file; `runtime` runs the file written (its int8 I/O details)."""
  num_kp = int(options['num_kp'])
  sidecar = {
    'model': name,
    'options': json.loads(json.dumps(dict(options))),
    'format': fmt,
    'precision': 'int8' if int8 else 'float32',
    'file': os.path.basename(out),
    'size_bytes': os.path.getsize(path),
    'input': {
      'name': INPUT,
      'shape': [1, *shape[1:]],
      'layout': 'NHWC',
      'dtype': 'float32',
      'range': [0.0, 1.0],
      'channels': 'RGB',
    },
    'outputs': {
      'kp': {'shape': [1, num_kp, 2], 'dtype': 'float32', 'meaning': KP_MEANING},
      'jacobian': {'shape': [1, num_kp, 2, 2], 'dtype': 'float32', 'meaning': JACOBIAN_MEANING},
    },
    'weights': dict(weights),
    **report,
    'exported_with': {p: _version(p) for p in _PACKAGES[fmt]},
    'created': datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'),
  }
  if fmt == 'tflite' and getattr(runtime, 'input', {}).get('dtype', np.float32) != np.float32:
    scale, zero = runtime.input['quantization']
    sidecar['input'].update(
      dtype='int8',
      quantization={'scale': float(scale), 'zero_point': int(zero)},
      note='pixel = round(value / scale + zero_point), value in [0, 1]',
    )
    for output, details in runtime.outputs.items():
      if details['dtype'] != np.float32:
        scale, zero = details['quantization']
        sidecar['outputs'][output].update(
          dtype='int8', quantization={'scale': float(scale), 'zero_point': int(zero)}
        )
  return sidecar
