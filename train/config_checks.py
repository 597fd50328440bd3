"""Checks a training config before any work, one clear line per problem."""

from __future__ import annotations

import jax
import ml_collections
from flax import nnx

import models
from data import pipeline
from train import losses

TASKS = ('distill', 'supervised')
OPTIMIZERS = ('adamw', 'adam', 'sgd')


class ConfigError(ValueError):
  """A config value that makes no sense; the message names the key and what it needs."""


def model_options(config: ml_collections.ConfigDict) -> dict:
  return {k: v for k, v in config.model.items() if k != 'name'}


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for the first nonsensical value."""

  def need(ok: bool, message: str) -> None:
    if not ok:
      raise ConfigError(f'config: {message}')

  need(config.task in TASKS, f'task={config.task!r}; valid: {", ".join(TASKS)}.')
  need(
    config.optim.name in OPTIMIZERS,
    f'optim.name={config.optim.name!r}; valid: {", ".join(OPTIMIZERS)}.',
  )
  need(config.optim.lr > 0, f'optim.lr must be positive, got {config.optim.lr}.')
  need(config.num_steps > 0, f'num_steps must be positive, got {config.num_steps}.')
  for key in (
    'batch_size',
    'eval_batch_size',
    'eval_every',
    'checkpoint_every',
    'log_every',
    'keep_checkpoints',
  ):
    need(config[key] > 0, f'{key} must be positive, got {config[key]}.')
  for milestone in config.optim.milestones:
    need(
      0 < milestone < config.num_steps,
      f'optim.milestones {tuple(config.optim.milestones)} must lie inside (0, num_steps='
      f'{config.num_steps}).',
    )
  need(config.optim.clip_norm >= 0, f'optim.clip_norm must be >= 0, got {config.optim.clip_norm}.')
  weights = {name: config.loss[name] for name in losses.TERMS}
  for name, weight in weights.items():
    need(weight >= 0, f'loss.{name} must be >= 0, got {weight}.')
  need(any(w > 0 for w in weights.values()), 'at least one loss weight must be positive.')
  if config.task == 'supervised':
    need(
      config.data.name == 'synthetic_faces',
      'task=supervised needs landmarks, which only data.name=synthetic_faces has.',
    )
    need(
      weights['heatmap'] == 0 and weights['attention'] == 0,
      'task=supervised learns landmarks: loss.heatmap and loss.attention must be 0.',
    )
  devices = jax.device_count()
  need(
    config.batch_size % devices == 0,
    f'batch_size {config.batch_size} must be divisible by the {devices} devices.',
  )
  try:
    model = nnx.eval_shape(
      lambda: models.create_model(config.model.name, model_options(config), rngs=nnx.Rngs(0))
    )
  except ValueError as error:
    raise ConfigError(f'config.model: {error}') from error
  size = model.default_input_size if config.model.name != 'fomm_teacher' else 64
  try:
    pipeline.check_request(config.data, 'train', config.batch_size, size)
    model.check_input_shape((1, size, size, 3))
  except ValueError as error:
    raise ConfigError(f'config: {error}') from error
