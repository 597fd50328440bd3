"""Training checkpoints in WORKDIR/checkpoints with orbax's CheckpointManager.

Each step holds three items: `state` (student params, BatchNorm statistics,
optimizer state, step), `data` (the grain iterator's position) and `meta`
(config, RNG seed, validation loss). orbax writes each step to a temporary
folder and renames it when complete, so a run killed during a save resumes
from the last complete step. The last `keep` steps and the best by
validation loss are kept.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

import models
from models.checkpoint import tuples_from_json


def saved_model(meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
  """(model name, model options) of a checkpoint's meta."""
  model = meta['config']['model']
  return model['name'], {key: value for key, value in model.items() if key != 'name'}


class CheckpointError(ValueError):
  """A checkpoint that cannot be used; the message says which and what to do."""


class Checkpoints:
  def __init__(self, directory: str, *, keep: int):
    self.directory = os.path.abspath(directory)
    self.keep = keep
    self.manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False),
      item_names=('state', 'data', 'meta'),
    )

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def meta(self, step: int) -> dict[str, Any]:
    try:
      return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
        'meta'
      ]
    except Exception as error:  # orbax raises many types for damaged folders
      raise CheckpointError(
        f'checkpoint {self.directory}/{step} is damaged ({type(error).__name__}: '
        f'{str(error)[:200]}); delete that folder to resume from an earlier step.'
      ) from error

  def best_step(self) -> int | None:
    scored = [
      (meta['val_loss'], step)
      for step in self.manager.all_steps()
      if (meta := self.meta(step)).get('val_loss') is not None
    ]
    return min(scored)[1] if scored else self.latest_step()

  def load_model(self, step: int | None = None) -> tuple[nnx.Module, dict[str, Any]]:
    """The student saved at `step` (default: the best), in eval mode, with that step's meta."""
    steps = list(self.manager.all_steps())
    step = self.best_step() if step is None else step
    if step is None or step not in steps:
      held = ', '.join(map(str, sorted(steps))) or 'none'
      raise CheckpointError(
        f'no checkpoint of step {step} in {self.directory} (steps held: {held}); '
        'pick one of those steps or train first.'
      )
    meta = self.meta(step)
    name, options = saved_model(meta)
    model = models.create_model(name, tuples_from_json(options), rngs=nnx.Rngs(0))
    # Restored as saved (numpy), without a template: only params and statistics are used.
    path = os.path.join(self.directory, str(step), 'state')
    try:
      pure = ocp.PyTreeCheckpointer().restore(path)
    except Exception as error:  # orbax raises many types for damaged folders
      raise CheckpointError(
        f'checkpoint {path} cannot be restored ({type(error).__name__}: {str(error)[:200]}); '
        'pick another step or delete that folder.'
      ) from error
    for kind, key in ((nnx.Param, 'params'), (nnx.BatchStat, 'batch_stats')):
      state = nnx.state(model, kind)
      nnx.replace_by_pure_dict(state, jax.tree.map(np.asarray, pure[key]))
      nnx.update(model, state)
    model.eval()
    return model, meta

  def save(self, step: int, state: Any, data_state: dict, meta: dict) -> None:
    self.manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state),
        meta=ocp.args.JsonSave(meta),
      ),
      force=True,
    )
    self.manager.wait_until_finished()
    self._prune()

  def _prune(self) -> None:
    steps = sorted(self.manager.all_steps())
    keep = set(steps[-self.keep :]) | {self.best_step()}
    for step in steps:
      if step not in keep:
        self.manager.delete(step)

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict, dict]:
    """(state, data iterator state, meta) of `step`; raises CheckpointError if damaged."""
    try:
      restored = self.manager.restore(
        step,
        args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          data=ocp.args.JsonRestore(),
          meta=ocp.args.JsonRestore(),
        ),
      )
    except Exception as error:  # orbax raises many types for damaged folders
      raise CheckpointError(
        f'checkpoint {self.directory}/{step} cannot be restored ({type(error).__name__}: '
        f'{str(error)[:300]}); delete that folder to resume from an earlier step, or use '
        'another --workdir.'
      ) from error
    return restored['state'], restored['data'], restored['meta']

  def close(self) -> None:
    self.manager.close()
