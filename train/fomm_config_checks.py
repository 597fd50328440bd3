"""The checks of a FOMM training config (task 'fomm', configs/fomm.py), one line per problem."""

from __future__ import annotations

import os
from collections.abc import Callable

import ml_collections
from flax import nnx

import models
from configs import fomm
from data import pipeline
from models import fomm_motion

PIXEL_TERMS = ('l1', 'ssim')


def schema() -> ml_collections.ConfigDict:
  """The fields a FOMM config may have: configs/fomm.py's."""
  return fomm.get_config()


def validate(config: ml_collections.ConfigDict, *, need: Callable[[bool, str], None]) -> None:
  """Calls `need(ok, message)` for each rule (it raises on the first broken one)."""
  need(
    config.model.name == 'fomm_teacher',
    f'task=fomm trains FOMM: model.name must be fomm_teacher, not {config.model.name}.',
  )
  need(
    config.data.name == 'synthetic_face_clips',
    f'task=fomm learns from pairs of frames of one clip: data.name must be '
    f'synthetic_face_clips, got {config.data.name}.',
  )
  need(not config.init_from, 'task=fomm starts from scratch: init_from must be empty.')
  loss = config.loss
  need(
    not loss.vgg19 or os.path.isfile(loss.vgg19),
    f'loss.vgg19={loss.vgg19!r} is not a file; pass a torchvision VGG19 state dict, or leave it '
    'empty for the weight-free term.',
  )
  need(loss.pixel in PIXEL_TERMS, f'loss.pixel={loss.pixel!r}; valid: {", ".join(PIXEL_TERMS)}.')
  for key in ('pixel_weight', 'equivariance_value', 'equivariance_jacobian'):
    need(loss[key] >= 0, f'loss.{key} must be >= 0, got {loss[key]}.')
  need(
    len(loss.perceptual) == 5 and min(loss.perceptual) >= 0,
    f'loss.perceptual needs 5 weights >= 0 (one per VGG19 slice), got {tuple(loss.perceptual)}.',
  )
  need(len(loss.scales) > 0, 'loss.scales names no pyramid level; FOMM uses (1, 0.5, 0.25, 0.125).')
  for scale in loss.scales:
    try:
      fomm_motion.check_scale_factor(scale, 'loss.scales')
    except ValueError as error:
      need(False, str(error))
  transform = config.transform
  for key in ('sigma_affine', 'sigma_tps'):
    need(transform[key] >= 0, f'transform.{key} must be >= 0, got {transform[key]}.')
  need(transform.points_tps >= 2, f'transform.points_tps must be >= 2, got {transform.points_tps}.')
  frames = config.regression_clips * config.regression_frames_per_clip
  needed = 2 * models.study_config('fomm_teacher', config.model).num_kp + 1
  need(
    config.regression_frames_per_clip >= 1 and frames >= needed,
    f'the landmark regression needs at least {needed} training frames '
    f'(regression_clips x regression_frames_per_clip = {frames}); raise either.',
  )
  need(
    config.regression_clips <= config.data.train_size,
    f'regression_clips ({config.regression_clips}) must not exceed data.train_size '
    f'({config.data.train_size}).',
  )
  try:
    generator = models.model_config('fomm_generator', config.generator)
    pair = nnx.eval_shape(
      lambda: (
        models.create_model('fomm_teacher', models.study_config('fomm_teacher', config.model),
                            rngs=nnx.Rngs(0)),
        models.create_model('fomm_generator', generator, rngs=nnx.Rngs(0)),
      )
    )  # fmt: skip
    size = config.data.image_size
    for part in pair:
      part.check_input_shape((1, size, size, 3))
    pipeline.make_builder(config.data)  # the builder's own checks (split sizes), no build
  except ValueError as error:
    need(False, f'{error}')
  need(
    config.batch_size <= config.data.train_size,
    f'batch_size {config.batch_size} is larger than the train split ({config.data.train_size} '
    'clips); lower it or raise data.train_size.',
  )
  need(
    config.data.frames_per_clip >= 2,
    f'data.frames_per_clip must be at least 2 (pairs), got {config.data.frames_per_clip}.',
  )
