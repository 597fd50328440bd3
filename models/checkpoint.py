"""A model on disk: an orbax checkpoint of its weights plus its name and config as JSON.

One format for every model file: the FOMM converter writes the teacher this
way, the teacher trainer does too, and `load_model` reads any of them by
path alone.

Layout of DIRECTORY:
  state/  orbax StandardSave of the Param and BatchStat leaves (pure dict)
  meta/   JSON: {"model": NAME, "config": {...}, ...extra metadata}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from models import registry
from models.base import KeypointModel

SAVED = (nnx.Param, nnx.BatchStat)


def _checkpointer() -> ocp.Checkpointer:
  return ocp.Checkpointer(ocp.CompositeCheckpointHandler())


def tuples_from_json(value: Any) -> Any:
  """JSON turns tuples into lists; configs use tuples."""
  if isinstance(value, list):
    return tuple(tuples_from_json(v) for v in value)
  if isinstance(value, dict):
    return {k: tuples_from_json(v) for k, v in value.items()}
  return value


def save_model(
  directory: str | os.PathLike,
  model: KeypointModel,
  *,
  name: str,
  config: ml_collections.ConfigDict | Mapping[str, Any],
  metadata: Mapping[str, Any] | None = None,
) -> None:
  """Writes `model` to `directory`, which must not exist yet.

  orbax writes to a temporary folder and renames it at the end, so an
  interrupted save leaves no half-written model behind.
  """
  directory = os.path.abspath(directory)
  if os.path.exists(directory):
    raise FileExistsError(
      f'{directory} already exists; choose another output path or delete it first.'
    )
  config = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
  state = nnx.to_pure_dict(nnx.state(model, SAVED))
  meta = {'model': name, 'config': config, **(metadata or {})}
  _checkpointer().save(
    directory,
    args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
  )


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
  """The JSON metadata of a saved model (name, config, ...).

  Raises:
    ValueError: when `directory` holds no saved model.
  """
  directory = os.path.abspath(directory)
  if not os.path.isdir(os.path.join(directory, 'meta')):
    raise ValueError(
      f'no saved model at {directory} (expected a folder with meta/ and state/, as written '
      'by `python -m tools.convert_fomm` or by training a teacher).'
    )
  try:
    meta = _checkpointer().restore(directory, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
  except Exception as error:  # orbax raises many types for a damaged folder
    raise ValueError(f'cannot read the model metadata in {directory}: {error}') from error
  meta = dict(meta['meta'])
  if meta.get('model') not in registry.MODELS or not isinstance(meta.get('config'), dict):
    raise ValueError(f'{directory}/meta does not name a known model and its config: {meta}')
  return meta


def load_model(directory: str | os.PathLike) -> tuple[KeypointModel, dict[str, Any]]:
  """Rebuilds the saved model (in eval mode) and returns it with its metadata.

  Raises:
    ValueError: when the folder is missing, damaged or does not match its config.
  """
  meta = read_metadata(directory)
  config = registry.model_config(meta['model'], tuples_from_json(meta['config']))
  model = registry.create_model(meta['model'], config, rngs=nnx.Rngs(0))
  state = nnx.state(model, SAVED)
  target = nnx.to_pure_dict(state)
  try:
    restored = _checkpointer().restore(
      os.path.abspath(directory),
      args=ocp.args.Composite(state=ocp.args.StandardRestore(target)),
    )['state']
  except Exception as error:  # orbax raises many types for a damaged folder
    raise ValueError(f'cannot restore the weights in {directory}: {error}') from error
  nnx.replace_by_pure_dict(state, _as_float32(restored))
  nnx.update(model, state)
  model.eval()
  return model, meta


def _as_float32(tree: Any) -> Any:
  if isinstance(tree, dict):
    return {k: _as_float32(v) for k, v in tree.items()}
  return np.asarray(tree, np.float32)
