"""The model to time: random weights, or a trained run's best checkpoint (read, never written)."""

from __future__ import annotations

import ml_collections
from flax import nnx

import models


def load_weights(name: str, checkpoint: str | None) -> tuple[nnx.Module, ml_collections.ConfigDict]:
  """(Flax model `name` in eval mode, its options), with random or saved weights.

  Args:
    name: the model to time.
    checkpoint: None for random weights (`nnx.Rngs(0)`), else a training
      workdir (its best step by validation loss) or a checkpoint folder.

  Raises:
    ValueError: `train.checkpoints.CheckpointError` for a missing or damaged
      folder, or a ValueError when it holds another model than `name`.
  """
  if not checkpoint:
    model = models.create_model(name, rngs=nnx.Rngs(0))
    model.eval()
    return model, models.default_config(name)
  from train.checkpoints import restore_model

  model, meta = restore_model(checkpoint)
  if meta['model'] != name:
    raise ValueError(f'--checkpoint {checkpoint} holds a {meta["model"]}, not {name}.')
  return model, models.model_config(name, meta['options'])
