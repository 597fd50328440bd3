"""The distillation teacher: where it comes from, and loading it the way the students see frames.

`config.teacher.checkpoint` names a checkpoint folder (FOMM's teacher from
`python -m tools.convert_fomm`) or a teacher's training workdir. Training the
default teacher when there is none is a step of its own, taken by main.py
before the student's run: `teacher_to_train(config)` says whether it is due
and with which config.
"""

from __future__ import annotations

import os

import ml_collections

import models
from configs import teacher as teacher_config
from train import checkpoints


class TeacherError(ValueError):
  """No usable teacher; the message says how to get one."""


def is_finished(path: str) -> bool:
  """Whether `path` holds a teacher ready to use: converted, or trained to its last step."""
  try:
    reader = checkpoints.Reader(path)
  except checkpoints.CheckpointError:
    return False
  latest = reader.latest_step()
  experiment = reader.meta(latest).get('experiment')
  reader.close()
  return experiment is None or latest >= experiment['num_steps']


def teacher_to_train(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict | None:
  """The config of the default teacher to train (or resume) at `config.teacher.checkpoint`.

  None when the run needs no teacher or a finished one is there.

  Raises:
    TeacherError: when there is none and the data is not the embedded synthetic
      set, on which alone the default teacher can be trained.
  """
  path = os.path.abspath(config.teacher.checkpoint)
  if config.task != 'distill' or is_finished(path):
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
  name, _, _ = reader.model_meta(reader.best_step())
  reader.close()
  return checkpoints.restore_model(path, options=models.spec(name).input_options)
