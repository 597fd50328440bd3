"""Obtains the distillation teacher: a saved model, or the default one trained first."""

from __future__ import annotations

import os

import ml_collections
from absl import logging
from flax import nnx

import models
from models import checkpoint


class TeacherError(ValueError):
  """No usable teacher; the message says how to get one."""


def _has_model(path: str) -> bool:
  return os.path.isdir(os.path.join(path, 'meta'))


def obtain_teacher(config: ml_collections.ConfigDict) -> tuple[models.base.KeypointModel, dict]:
  """The teacher named by `config.teacher.checkpoint`, in eval mode at 64x64 input.

  When that folder holds no model and the data is the embedded synthetic set,
  the default teacher (configs/teacher.py) is trained there first.
  Frames reach the teacher already at 64x64 (the pipeline applies FOMM's
  anti-alias downsampling once), so a teacher saved with scale_factor 0.25
  is rebuilt at scale 1 with the same weights: the filter has no parameters.
  """
  path = os.path.abspath(config.teacher.checkpoint)
  if not _has_model(path):
    if config.data.name != 'synthetic_faces':
      raise TeacherError(
        f"no teacher at {path}. Convert FOMM's checkpoint there with `python -m "
        f'tools.convert_fomm --checkpoint=vox-cpk.pth.tar --out={path}`, or train one on '
        'synthetic data with `python main.py --config=configs/teacher.py`.'
      )
    _train_default_teacher(config, path)
  teacher, meta = checkpoint.load_model(path)
  if meta['config'].get('scale_factor', 1.0) != 1.0:
    logging.info('teacher: input arrives at 64x64; dropping its internal downsampling')
    options = dict(meta['config'], scale_factor=1.0)
    rebuilt = models.create_model(
      'fomm_teacher', checkpoint.tuples_from_json(options), rngs=nnx.Rngs(0)
    )
    nnx.update(rebuilt, nnx.state(teacher, checkpoint.SAVED))
    rebuilt.eval()
    teacher = rebuilt
  return teacher, meta


def _train_default_teacher(config: ml_collections.ConfigDict, path: str) -> None:
  from configs import teacher as teacher_config
  from train import loop

  variant = f':{config.teacher.train_variant}' if config.teacher.train_variant else ''
  message = (
    f'no teacher at {path}: training the default teacher there first (configs/teacher.py{variant})'
  )
  logging.info(message)
  print(message, flush=True)
  teacher_cfg = teacher_config.get_config(config.teacher.train_variant or None)
  teacher_cfg.data = config.data  # the same dataset the student will see
  teacher_cfg.export_model = path
  loop.train_and_evaluate(teacher_cfg, os.path.dirname(path))
