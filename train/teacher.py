"""The distillation teacher: where it comes from, and loading it the way the students see frames.

`config.teacher.checkpoint` names a checkpoint folder (FOMM's teacher from
`python -m tools.convert_fomm`) or a teacher's training workdir. Training the
default teacher when there is none is a step of its own, taken by main.py
before the student's run: `teacher_to_train(config)` says whether it is due
and with which config.

Provenance: every saved model records what it came from (meta `provenance`:
FOMM's converted checkpoint and its SHA-256, or trained here on which
dataset build, `trained_on`). A teacher whose data is not the run's (one
trained on synthetic faces for real frames, or the reverse, or on an older
build of the synthetic set) stops the run with one line (`check_provenance`)
unless `config.teacher.allow_other_data` says it is meant.
"""

from __future__ import annotations

import os

import ml_collections

import models
from configs import teacher as teacher_config
from train import checkpoint_checks, checkpoints


class TeacherError(ValueError):
  """No usable teacher; the message says how to get one."""


def trained_on(data: ml_collections.ConfigDict, builder) -> dict[str, str]:
  """The provenance of a model trained here on `data` (its prepared TFDS `builder`)."""
  return {'kind': 'trained', 'data': data.name, 'build': builder.info.full_name}


def _describe(provenance: dict) -> str:
  if provenance['kind'] == 'converted_fomm':
    return f"FOMM's converted detector ({provenance.get('source', 'unknown file')})"
  return f'trained here on {provenance["build"]}'


def check_provenance(config: ml_collections.ConfigDict, meta: dict, path: str) -> None:
  """Raises TeacherError when the teacher at `path` was not made for the run's data."""
  if config.teacher.get('allow_other_data'):
    return
  provenance = meta.get('provenance')
  if provenance is None and 'converted_by' in meta:  # converted before provenance was kept
    provenance = {'kind': 'converted_fomm', 'source': meta.get('source')}
  override = 'or pass --config.teacher.allow_other_data=True if you mean it.'
  if provenance is None:
    raise TeacherError(
      f'the teacher at {path} does not record what it was trained on (saved before '
      f'teachers recorded it, perhaps on an older synthetic_faces); delete it to retrain it, '
      + override
    )
  real = config.data.name != 'synthetic_faces'
  if provenance['kind'] == 'converted_fomm' and not real:
    raise TeacherError(
      f'the teacher at {path} is {_describe(provenance)}, trained on real video, but the data '
      f'is synthetic_faces; use a teacher trained on it (main.py trains one at '
      f'--config.teacher.checkpoint=workdirs/teacher), ' + override
    )
  if provenance['kind'] == 'trained' and provenance['data'] != config.data.name:
    raise TeacherError(
      f'the teacher at {path} was {_describe(provenance)}, but the data is {config.data.name}; '
      f"convert FOMM's checkpoint with `python -m tools.convert_fomm --checkpoint="
      f'vox-cpk.pth.tar --out=checkpoints/fomm_vox` and pass it as --config.teacher.checkpoint, '
      + override
    )
  if provenance['kind'] == 'trained':  # the same dataset: then the same build of it
    from data import pipeline

    build = pipeline.make_builder(config.data).info.full_name
    if provenance['build'] != build:
      raise TeacherError(
        f'the teacher at {path} was {_describe(provenance)}, but the data is {build}; delete '
        f'it to retrain it on this data, ' + override
      )


def is_finished(path: str) -> bool:
  """Whether `path` holds a teacher ready to use: converted, or trained to its last step."""
  try:
    with checkpoints.Reader(path) as reader:
      latest, meta = _newest_meta(reader)
  except checkpoints.CheckpointError:  # none there, or none whose meta reads
    return False
  experiment = meta.get('experiment')
  return experiment is None or latest >= experiment['num_steps']


def _newest_meta(reader: checkpoints.Reader) -> tuple[int, dict]:
  """(step, meta) of the newest step whose meta reads (damaged ones skipped, one line each)."""
  for step in reversed(reader.steps()):
    try:
      return step, reader.meta(step)
    except checkpoints.DamagedCheckpoint as error:
      checkpoint_checks.warn(f'{error.cause}; skipping it (left in place)')
  raise checkpoints.CheckpointError(f'no step of {reader.directory} has a meta that reads.')


def teacher_to_train(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict | None:
  """The config of the default teacher to train (or resume) at `config.teacher.checkpoint`.

  None when the run needs no teacher or a finished one is there.

  Raises:
    TeacherError: when there is none and the data is not the embedded synthetic
      set, on which alone the default teacher can be trained.
  """
  path = os.path.abspath(config.teacher.checkpoint)
  if config.task != 'distill':
    return None
  if is_finished(path):
    check_provenance(config, _latest_meta(path), path)
    return None
  if config.data.name != 'synthetic_faces':
    raise TeacherError(
      f"no teacher at {path}. Convert FOMM's checkpoint there with `python -m "
      f'tools.convert_fomm --checkpoint=vox-cpk.pth.tar --out={path}`, or train one on '
      'synthetic data with `python main.py --config=configs/teacher.py`.'
    )
  teacher = teacher_config.get_config(config.teacher.train_variant or None)
  teacher.data = config.data  # the same dataset the student will see
  return teacher


def load_teacher(config: ml_collections.ConfigDict):
  """(teacher model in eval mode, its meta) from `config.teacher.checkpoint`.

  Frames reach the teacher at the student's input size (the pipeline applies
  FOMM's anti-alias downsampling once), so the teacher is rebuilt with its
  spec's `input_options` (FOMM: scale_factor 1) around the same weights.

  Raises:
    TeacherError: when there is no teacher there, with how to get one.
  """
  path = os.path.abspath(config.teacher.checkpoint)
  try:
    reader = checkpoints.Reader(path)
  except checkpoints.CheckpointError as error:
    raise TeacherError(
      f'no teacher at {path}: train one there with `python main.py --config=configs/teacher.py '
      f"--workdir={path}`, or convert FOMM's with `python -m tools.convert_fomm --out={path}`."
    ) from error
  with reader:
    name = _newest_meta(reader)[1].get('model')
  if name in models.MODELS and models.spec(name).kind != 'keypoints':
    raise TeacherError(
      f'{path} holds {name}, not a keypoint detector: pass the --out folder of '
      '`python -m tools.convert_fomm`, not its --generator_out.'
    )
  check_provenance(config, _latest_meta(path), path)
  options = models.spec(name).input_options if name in models.MODELS else None
  return checkpoints.restore_model(path, options=options)


def _latest_meta(path: str) -> dict:
  """The newest readable meta: its provenance is the run's, even where earlier steps lack it."""
  with checkpoints.Reader(path) as reader:
    return _newest_meta(reader)[1]
