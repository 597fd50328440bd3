"""The model zoo in Flax NNX: FOMM's teacher, the article's students and FOMM's generator."""

from models.fomm_animation import convex_hull_area, relative_keypoints
from models.registry import (
  GENERATOR_NAMES,
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
  'GENERATOR_NAMES',
  'MODELS',
  'MODEL_NAMES',
  'ModelSpec',
  'convex_hull_area',
  'create_model',
  'default_config',
  'model_config',
  'relative_keypoints',
  'spec',
  'study_config',
]
