"""Checks a training config before any work, one clear line per problem."""

from __future__ import annotations

import difflib

import jax
import ml_collections
from flax import nnx

import models
from configs import base
from data import frames, pipeline
from train import fomm_config_checks, losses

TASKS = ('distill', 'supervised', 'fomm')
OPTIMIZERS = ('adamw', 'adam', 'sgd')


class ConfigError(ValueError):
  """A config value that makes no sense; the message names the key and what it needs."""


def _need(ok: bool, message: str) -> None:
  if not ok:
    raise ConfigError(f'config: {message}')


def _check_fields(config: ml_collections.ConfigDict, schema: ml_collections.ConfigDict, at: str):
  """Every field of `config` exists in `schema` (the base config); `model` is checked apart.

  Command-line overrides may add fields (so that any model option can be set),
  which makes a typo a new field: this is where it is caught.
  """
  for key, value in config.items():
    path = f'{at}{key}'
    if path == 'model':
      continue
    if key not in schema:
      near = difflib.get_close_matches(key, list(schema.keys()), n=3)
      hint = f' (did you mean {" or ".join(near)}?)' if near else ''
      raise ConfigError(
        f'config: unknown field {path}{hint}; valid fields{" of " + at[:-1] if at else ""}: '
        f'{", ".join(sorted(schema.keys()))}.'
      )
    if isinstance(schema[key], ml_collections.ConfigDict):
      _need(isinstance(value, ml_collections.ConfigDict), f'{path} must be a group of fields.')
      _check_fields(value, schema[key], f'{path}.')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for the first unknown field or nonsensical value."""
  _need('model' in config and 'name' in config.model, 'model.name is missing.')
  try:
    models.study_config(config.model.name, config.model)
  except ValueError as error:  # unknown model or option, naming the valid ones
    raise ConfigError(f'config.model: {error}') from error
  _need(config.get('task') in TASKS, f'task={config.get("task")!r}; valid: {", ".join(TASKS)}.')
  if config.task == 'fomm':
    _check_fields(config, fomm_config_checks.schema(), '')
    _check_schedule(config)
    fomm_config_checks.validate(config, need=_need)
    return
  _check_fields(config, base.get_base_config(config.model.name), '')
  _check_schedule(config)
  _check_keypoint_run(config)


def _check_schedule(config: ml_collections.ConfigDict) -> None:
  """The optimiser, the steps and the batch sizes: every task has them."""
  _need(
    config.optim.name in OPTIMIZERS,
    f'optim.name={config.optim.name!r}; valid: {", ".join(OPTIMIZERS)}.',
  )
  _need(config.optim.lr > 0, f'optim.lr must be positive, got {config.optim.lr}.')
  _need(config.num_steps > 0, f'num_steps must be positive, got {config.num_steps}.')
  for key in (
    'batch_size',
    'eval_batch_size',
    'eval_every',
    'checkpoint_every',
    'log_every',
    'keep_checkpoints',
  ):
    _need(config[key] > 0, f'{key} must be positive, got {config[key]}.')
  _need(config.epochs >= 0, f'epochs must be >= 0 (0: a schedule in steps), got {config.epochs}.')
  for milestone in config.milestone_epochs if config.epochs else ():
    _need(
      0 < milestone < config.epochs,
      f'milestone_epochs {tuple(config.milestone_epochs)} must lie inside (0, epochs='
      f'{config.epochs}).',
    )
  _need(
    not config.epochs or config.eval_every_epochs > 0,
    f'eval_every_epochs must be positive, got {config.eval_every_epochs}.',
  )
  for milestone in () if config.epochs else config.optim.milestones:
    _need(
      0 < milestone < config.num_steps,
      f'optim.milestones {tuple(config.optim.milestones)} must lie inside (0, num_steps='
      f'{config.num_steps}).',
    )
  _need(
    config.get('precise_bn_images', 0) >= 0,
    f'precise_bn_images must be >= 0 (0: off), got {config.get("precise_bn_images")}.',
  )
  _need(config.optim.clip_norm >= 0, f'optim.clip_norm must be >= 0, got {config.optim.clip_norm}.')
  devices = jax.device_count()
  _need(
    config.batch_size % devices == 0,
    f'batch_size {config.batch_size} must be divisible by the {devices} devices.',
  )


def _check_keypoint_run(config: ml_collections.ConfigDict) -> None:
  """A distillation or supervised run of a keypoint model."""
  if config.data.name == 'frames':
    data = config.data
    _need(
      data.encoding in frames.ENCODINGS,
      f'data.encoding={data.encoding!r}; valid: {", ".join(frames.ENCODINGS)}.',
    )
    for key in ('frames_per_video', 'num_repeats'):
      _need(data[key] >= 1, f'data.{key} must be at least 1, got {data[key]}.')
    _need(
      0 <= data.validation_fraction < 1,
      f'data.validation_fraction must lie in [0, 1), got {data.validation_fraction}.',
    )
  weights = {name: config.loss[name] for name in losses.TERMS}
  for name, weight in weights.items():
    _need(weight >= 0, f'loss.{name} must be >= 0, got {weight}.')
  _need(any(w > 0 for w in weights.values()), 'at least one loss weight must be positive.')
  if config.task == 'supervised':
    _need(
      config.data.name == 'synthetic_faces',
      'task=supervised needs landmarks, which only data.name=synthetic_faces has.',
    )
    _need(
      weights['heatmap'] == 0 and weights['attention'] == 0,
      'task=supervised learns landmarks: loss.heatmap and loss.attention must be 0.',
    )
  spec = models.spec(config.model.name)
  _need(
    spec.kind == 'keypoints',
    f'config.model.name={spec.name} is not a keypoint model; one of '
    f'{", ".join(models.MODEL_NAMES)}.',
  )
  try:
    model = nnx.eval_shape(
      lambda: models.create_model(
        spec.name, models.study_config(spec.name, config.model), rngs=nnx.Rngs(0)
      )
    )
  except ValueError as error:
    raise ConfigError(f'config.model: {error}') from error
  size = spec.input_size
  try:
    pipeline.check_request(config.data, 'train', config.batch_size, size)
    model.check_input_shape((1, size, size, 3))
  except ValueError as error:
    raise ConfigError(f'config: {error}') from error
