"""Exports a model to a file a phone runs: LiteRT (.tflite) or ONNX, fp32 or int8.

  python -m tools.export --checkpoint=workdirs/edgeseg --format=tflite --out=edgeseg.tflite
  python -m tools.export --checkpoint=workdirs/edgeseg --format=onnx --int8 --out=edgeseg.onnx
  python -m tools.export --model=squeeze_unet --format=tflite --out=squeeze_unet.tflite
  python -m tools.export --checkpoint=workdirs/fomm_generator --format=onnx --out=generator.onnx

--checkpoint takes a training workdir (its best checkpoint, or --step) or a
checkpoint folder (`tools.convert_fomm`'s teacher). --model instead exports
the zoo model with the weights of `models.create_model(NAME,
rngs=nnx.Rngs(0))`: random weights, for benchmarks and checks only.

The file is run by its own runtime before it is written, on validation
images of the workdir's dataset (uniform random images otherwise), and
refused if it differs from the Flax model by more than 1e-4. Beside it,
FILE.json says what goes in and comes out, where the weights came from and
the parity measured. With --int8 (post-training static int8, calibrated on
training images) it also reports the int8 file's val distance beside the
fp32 one's; the int8 file is the first of static int8, int16 activations and
int8 weights alone that moves val distance by at most 0.005, else nothing is
written.

FOMM's generator (a `tools.convert_fomm --generator_out` folder, or
--model=fomm_generator) is exported too, fp32: the file takes the source
frame and both keypoint sets (kp and jacobian of the source and the driving
frame) and gives the prediction; it is checked on --images random frames and
keypoint sets (default 4) within 1e-4 (`torch_twins.export.generator`).
"""

from __future__ import annotations

import os
import sys

from absl import flags, logging

import models
from tools import cli

_CHECKPOINT = flags.DEFINE_string(
  'checkpoint', None, 'training workdir (best step) or checkpoint folder to export'
)
_MODEL = flags.DEFINE_enum(
  'model',
  None,
  [*models.MODEL_NAMES, *models.GENERATOR_NAMES],
  'instead of --checkpoint: this model with create_model(NAME, rngs=nnx.Rngs(0)) weights '
  '(random; for benchmarks and checks)',
)
_FORMAT = flags.DEFINE_enum('format', None, ['tflite', 'onnx'], 'file format', required=True)
_OUT = flags.DEFINE_string('out', None, 'file to write (its sidecar: OUT.json)', required=True)
_INT8 = flags.DEFINE_bool('int8', False, 'post-training static int8 quantisation')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'replace an existing --out')
_STEP = flags.DEFINE_integer('step', None, 'checkpoint step (default: the best by val loss)')
_IMAGES = flags.DEFINE_integer(
  'images', None, 'parity / val distance images (default: the whole validation split; 16 random)'
)
_CALIBRATION = flags.DEFINE_integer('calibration', 100, 'int8 representative images')


def _load():
  """(model, name, options, weights description, export inputs)."""
  from flax import nnx

  from train import checkpoints, export_inputs

  if _MODEL.value:
    name = _MODEL.value
    model = models.create_model(name, rngs=nnx.Rngs(0))
    if name in models.GENERATOR_NAMES:
      weights = {'source': f'random: models.create_model({name!r}, rngs=nnx.Rngs(0))'}
      return model, name, models.default_config(name), weights, None
    size = model.default_input_size
    inputs = export_inputs.random_inputs(size, _IMAGES.value or 16, _CALIBRATION.value)
    weights = {'source': f'random: models.create_model({name!r}, rngs=nnx.Rngs(0))'}
    return model, name, models.default_config(name), weights, inputs
  model, meta = checkpoints.restore_model(_CHECKPOINT.value, _STEP.value)
  name = meta['model']
  weights = {
    'source': os.path.abspath(_CHECKPOINT.value),
    'step': meta.get('step'),
    'provenance': meta.get('provenance', {}),
  }
  if name in models.GENERATOR_NAMES:
    return model, name, models.model_config(name, meta['options']), weights, None
  if 'experiment' in meta:
    inputs = export_inputs.workdir_inputs(meta['experiment'], _IMAGES.value, _CALIBRATION.value)
  else:
    size = model.default_input_size
    inputs = export_inputs.random_inputs(size, _IMAGES.value or 16, _CALIBRATION.value)
  return model, name, models.model_config(name, meta['options']), weights, inputs


def _export_generator(model, name: str, options, weights: dict) -> None:
  """Exports FOMM's generator (fp32); raises ExportError for what cannot work."""
  from torch_twins.export import ExportError
  from torch_twins.export.generator import export_generator

  if _INT8.value:
    raise ExportError(f'{name}: int8 export is for the keypoint detectors; drop --int8.')
  print(f'exporting {name} to {_FORMAT.value}', flush=True)
  sidecar = export_generator(
    model,
    name,
    options,
    fmt=_FORMAT.value,
    out=_OUT.value,
    weights=weights,
    count=_IMAGES.value or 4,
    overwrite=_OVERWRITE.value,
  )
  parity = sidecar['parity']
  print(
    f'fp32 file vs Flax on {parity["inputs"]}: max |difference| prediction '
    f'{parity["max_abs_difference_to_flax"]["prediction"]:.2g}'
  )
  print(f'wrote {_OUT.value} ({sidecar["size_bytes"]:,} bytes) and {_OUT.value}.json')


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)  # the converters log every lowering at INFO
  if bool(_CHECKPOINT.value) == bool(_MODEL.value):
    sys.exit('error: pass either --checkpoint=WORKDIR_OR_FOLDER or --model=NAME (not both).')
  if _INT8.value and _MODEL.value in models.GENERATOR_NAMES:  # before building it
    sys.exit(f'error: {_MODEL.value}: int8 export is for the keypoint detectors; drop --int8.')
  if os.path.exists(_OUT.value) and not _OVERWRITE.value:
    sys.exit(f'error: {_OUT.value} exists; pass --overwrite to replace it, or another --out.')
  from train import workdir

  try:  # before minutes of conversion, not after
    workdir.check_folder(
      os.path.dirname(os.path.abspath(_OUT.value)), 'the output folder', 'pass another --out'
    )
  except workdir.WorkdirError as error:
    sys.exit(f'error: {error}')
  from torch_twins.export import ExportError, export
  from train.checkpoints import CheckpointError

  try:
    model, name, options, weights, inputs = _load()
    if inputs is None:  # FOMM's generator
      _export_generator(model, name, options, weights)
      return
    print(f'exporting {name} to {_FORMAT.value}{" (int8)" if _INT8.value else ""}', flush=True)
    sidecar = export(
      model,
      name,
      options,
      fmt=_FORMAT.value,
      out=_OUT.value,
      images=inputs.images,
      images_source=inputs.images_source,
      weights=weights,
      int8=_INT8.value,
      calibration=inputs.calibration,
      calibration_source=inputs.calibration_source,
      teacher_kp=inputs.reference_kp,
      overwrite=_OVERWRITE.value,
    )
  except (ExportError, CheckpointError) as error:
    sys.exit(f'error: {error}')
  parity = sidecar['parity']['max_abs_difference_to_flax']
  print(
    f'fp32 file vs Flax on {inputs.images_source}: max |difference| kp {parity["kp"]:.2g}, '
    f'jacobian {parity["jacobian"]:.2g}'
  )
  if 'int8' in sidecar:
    q = sidecar['int8']
    print(f'int8: {q["method"]}; {q["float32_size_bytes"]:,} -> {sidecar["size_bytes"]:,} bytes')
    for tried in q['levels_tried'][:-1]:  # the levels that moved the keypoints too far
      change = tried.get('val_distance_change')
      why = f'moved by {change:.4f}' if change is not None else f'failed: {tried["failed"]}'
      print(f'int8: {tried["level"]} not kept ({why})')
  if 'val_distance' in sidecar:
    distances = ', '.join(f'{k} {v:.4f}' for k, v in sidecar['val_distance'].items())
    print(f'val distance to {inputs.reference}: {distances}')
  print(f'wrote {_OUT.value} ({sidecar["size_bytes"]:,} bytes) and {_OUT.value}.json')


if __name__ == '__main__':
  cli.run(main)
