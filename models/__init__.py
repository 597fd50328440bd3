"""The model zoo: FOMM's teacher and the students of the article, in Flax NNX."""

from models.registry import (
  MODEL_NAMES,
  MODELS,
  ModelSpec,
  create_model,
  default_config,
  model_config,
  spec,
  study_config,
)

__all__ = [
  'MODELS',
  'MODEL_NAMES',
  'ModelSpec',
  'create_model',
  'default_config',
  'model_config',
  'spec',
  'study_config',
]
