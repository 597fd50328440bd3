"""Every model on disk, in one format: an orbax CheckpointManager folder.

One folder per saved step, each with these items:
  state/    `params` and `batch_stats` (pure dicts); training runs add `opt_state` and `step`
  data/     the train iterator's position (training runs only)
  meta/     JSON: {"model": NAME, "options": {...all model options...}, "step": N,
            "experiment": {...the run's config...} (training runs), provenance keys}
  metrics/  orbax's: {"val_loss": ...} on the steps that were evaluated

A training run writes one at WORKDIR/checkpoints (`Writer`: keeps the last
`keep` steps and the best by validation loss, by orbax's preservation
policies); `python -m tools.convert_fomm` writes FOMM's teacher as one
(step 0, `save_model`). `Reader` only reads, and `restore_model(path)` turns
any of them (a workdir or a checkpoint folder, the best step by default)
back into a model: the teacher, warm starts, `--mode=eval`, the outliers
tool and the benchmark all load models through it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx
from orbax.checkpoint import checkpoint_managers as policies

import models
from train.step import TrainState

_ITEMS = ('state', 'data', 'meta')
_METRIC = 'val_loss'


class CheckpointError(ValueError):
  """A checkpoint that cannot be used; the message says which and what to do."""


def checkpoint_dir(path: str | os.PathLike) -> str:
  """The checkpoint folder of `path`: WORKDIR/checkpoints for a training workdir, else `path`."""
  path = os.path.abspath(path)
  inner = os.path.join(path, 'checkpoints')
  return inner if os.path.isdir(inner) else path


def model_meta(name: str, options: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
  """The meta item of a saved model: its name, every option (JSON-ready) and `extra`."""
  return {'model': name, 'options': dict(models.model_config(name, options)), **extra}


def _best_fn(metrics: Mapping[str, float]) -> float:
  return metrics[_METRIC]


@contextlib.contextmanager
def _quiet():
  """orbax warns at every read-only manager that it is read-only; that is the point here."""
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


def _describe(error: Exception) -> str:
  return f'{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ""}'


class _Folder:
  """What the writer and the reader share: steps, meta, restore with one-line errors."""

  def __init__(self, directory: str, options: ocp.CheckpointManagerOptions):
    self.directory = directory
    self.manager = ocp.CheckpointManager(directory, options=options, item_names=_ITEMS)

  def steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    """The step with the lowest validation loss; the latest where none was evaluated."""
    best = self.manager.best_step()
    return best if best is not None else self.latest_step()

  def _restore(self, step: int, what: str, **items: Any) -> dict[str, Any]:
    try:
      return self.manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as error:  # orbax raises many types for damaged folders
      raise CheckpointError(
        f'checkpoint {self.directory}/{step}{what} cannot be restored ({_describe(error)}); '
        'delete that folder to fall back to an earlier step, or pick another step.'
      ) from error

  def meta(self, step: int) -> dict[str, Any]:
    return dict(self._restore(step, '/meta', meta=ocp.args.JsonRestore())['meta'])

  def close(self) -> None:
    self.manager.close()


class Writer(_Folder):
  """A training run's checkpoints: the last `keep` steps and the best by validation loss.

  orbax writes each step to a temporary folder and renames it when complete,
  so a run killed during a save resumes from the last complete step.
  """

  def __init__(self, directory: str | os.PathLike, *, keep: int):
    options = ocp.CheckpointManagerOptions(
      create=True,
      enable_async_checkpointing=False,
      best_fn=_best_fn,
      best_mode='min',
      preservation_policy=policies.AnyPreservationPolicy(
        [
          policies.LatestN(n=keep),
          policies.BestN(
            get_metric_fn=_best_fn, reverse=True, n=1, keep_checkpoints_without_metrics=False
          ),
        ]
      ),
    )
    super().__init__(os.path.abspath(directory), options)

  def save(
    self,
    step: int,
    state: Mapping[str, Any],
    meta: Mapping[str, Any],
    *,
    data: Mapping[str, Any] | None = None,
    val_loss: float | None = None,
  ) -> None:
    """Writes `step` (state as pure dicts of arrays) and applies the keep policies."""
    items = {'state': ocp.args.StandardSave(state), 'meta': ocp.args.JsonSave(dict(meta))}
    if data is not None:
      items['data'] = ocp.args.JsonSave(dict(data))
    metrics = {_METRIC: float(val_loss)} if val_loss is not None else None
    self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)
    self.manager.wait_until_finished()

  def restore(self, step: int, template: TrainState) -> tuple[TrainState, dict, dict]:
    """(train state, data iterator state, meta) of `step`, shaped like `template`."""
    abstract = jax.tree.map(np.asarray, train_state_to_pure(template))
    restored = self._restore(
      step,
      '',
      state=ocp.args.StandardRestore(abstract),
      data=ocp.args.JsonRestore(),
      meta=ocp.args.JsonRestore(),
    )
    state = train_state_from_pure(template, restored['state'])
    return state, restored['data'], restored['meta']


class Reader(_Folder):
  """Read-only access to a workdir's or a checkpoint folder's steps (writes nothing)."""

  def __init__(self, path: str | os.PathLike):
    directory = checkpoint_dir(path)
    if not os.path.isdir(directory):
      raise CheckpointError(
        f'no checkpoints at {directory}: pass a training workdir or a checkpoint folder '
        '(written by main.py or `python -m tools.convert_fomm`).'
      )
    options = ocp.CheckpointManagerOptions(
      read_only=True, create=False, save_interval_steps=0, best_fn=_best_fn, best_mode='min'
    )
    with _quiet():
      super().__init__(directory, options)
    if not self.steps():
      raise CheckpointError(
        f'no checkpoints in {directory}: train first (main.py) or convert one '
        '(`python -m tools.convert_fomm`).'
      )

  def pick(self, step: int | None) -> int:
    """`step`, checked to exist; None: the best step."""
    if step is None:
      return self.best_step()
    if step not in self.steps():
      held = ', '.join(map(str, self.steps()))
      raise CheckpointError(
        f'no checkpoint of step {step} in {self.directory} (steps held: {held}); '
        'pick one of those steps.'
      )
    return step

  def model_meta(self, step: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(model name, model options, meta) of `step`."""
    meta = self.meta(step)
    if not isinstance(meta.get('options'), dict) or meta.get('model') not in models.MODELS:
      raise CheckpointError(
        f'{self.directory}/{step}/meta does not name a model of the zoo and its options '
        f'(model={meta.get("model")!r}); it was not written by this version of the project: '
        're-create it (main.py, or `python -m tools.convert_fomm`).'
      )
    return meta['model'], meta['options'], meta

  def weights(self, step: int) -> dict[str, Any]:
    """{'params': ..., 'batch_stats': ...} of `step` as saved (NumPy)."""
    # NumPy templates from the saved shapes: restored on the host, whichever process
    # reads (the saved device may belong to another process of a multi-process run).
    try:
      with _quiet(), ocp.StandardCheckpointer() as checkpointer:  # it warns of no step metadata
        saved = checkpointer.metadata(os.path.join(self.directory, str(step), 'state'))
    except Exception as error:  # orbax raises many types for damaged folders
      raise CheckpointError(
        f'checkpoint {self.directory}/{step}/state cannot be read ({_describe(error)}); '
        'delete that folder to fall back to an earlier step, or pick another step.'
      ) from error
    template = jax.tree.map(
      lambda x: np.zeros(x.shape, x.dtype),
      saved.item_metadata,
      is_leaf=lambda x: hasattr(x, 'shape'),
    )
    state = self._restore(step, '/state', state=ocp.args.StandardRestore(template))['state']
    return {key: jax.tree.map(np.asarray, state[key]) for key in ('params', 'batch_stats')}


def restore_model(
  path: str | os.PathLike, step: int | None = None, *, options: Mapping[str, Any] | None = None
) -> tuple[nnx.Module, dict[str, Any]]:
  """The model saved in `path` (a training workdir or a checkpoint folder), in eval mode.

  Args:
    path: a workdir (its `checkpoints/` is read) or a checkpoint folder.
    step: the step to restore (default: the best by validation loss, else the latest).
    options: model options to change on the way in, as long as the weights still fit
      (e.g. `ModelSpec.input_options`).

  Returns:
    (model, meta of that step).

  Raises:
    CheckpointError: missing, damaged or mismatched folders, in one line.
  """
  reader = Reader(path)
  step = reader.pick(step)
  name, saved, meta = reader.model_meta(step)
  try:
    config = models.model_config(name, {**saved, **(options or {})})
    model = models.create_model(name, config, rngs=nnx.Rngs(0))
  except ValueError as error:
    raise CheckpointError(f'{reader.directory}/{step}: {error}') from error
  weights = reader.weights(step)
  for kind, key in ((nnx.Param, 'params'), (nnx.BatchStat, 'batch_stats')):
    state = nnx.state(model, kind)
    _check_fit(nnx.to_pure_dict(state), weights[key], f'{reader.directory}/{step}', name)
    nnx.replace_by_pure_dict(
      state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), weights[key])
    )
    nnx.update(model, state)
  model.eval()
  reader.close()
  return model, meta


def _shapes(tree: Any, prefix: str = '') -> dict[str, tuple[int, ...]]:
  """path -> shape of a pure dict (orbax gives string keys where NNX has integers)."""
  if isinstance(tree, Mapping):
    return {k: v for key, sub in tree.items() for k, v in _shapes(sub, f'{prefix}/{key}').items()}
  return {prefix: np.shape(tree)}


def _check_fit(expected: Any, saved: Any, where: str, name: str) -> None:
  want, have = _shapes(expected), _shapes(saved)
  if want != have:
    wrong = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    raise CheckpointError(
      f'the weights in {where} do not fit {name} with its saved options '
      f'({len(wrong)} tensors differ, e.g. {", ".join(wrong[:3])}).'
    )


def save_model(
  directory: str | os.PathLike,
  model: nnx.Module,
  *,
  name: str,
  options: Mapping[str, Any],
  **provenance: Any,
) -> None:
  """Writes `model` as a one-step (step 0) checkpoint folder at `directory`, which must be new."""
  directory = os.path.abspath(directory)
  if os.path.exists(directory):
    raise CheckpointError(
      f'{directory} already exists; choose another output path or delete it first.'
    )
  state = {
    'params': nnx.to_pure_dict(nnx.state(model, nnx.Param)),
    'batch_stats': nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)),
  }
  writer = Writer(directory, keep=1)
  writer.save(0, state, model_meta(name, options, step=0, **provenance))
  writer.close()


def train_state_to_pure(state: TrainState) -> dict[str, Any]:
  """The train state as nested dicts of arrays, for orbax."""
  return {
    'step': state.step,
    'params': nnx.to_pure_dict(state.params),
    'batch_stats': nnx.to_pure_dict(state.batch_stats),
    # orbax stores plain containers; the optimizer's own tree comes back from the template.
    'opt_state': jax.tree.leaves(state.opt_state),
  }


def train_state_from_pure(template: TrainState, pure: Mapping[str, Any]) -> TrainState:
  params, batch_stats = template.params, template.batch_stats
  nnx.replace_by_pure_dict(params, pure['params'])
  nnx.replace_by_pure_dict(batch_stats, pure['batch_stats'])
  opt_state = jax.tree.unflatten(jax.tree.structure(template.opt_state), pure['opt_state'])
  return TrainState(jnp.asarray(pure['step']), params, batch_stats, opt_state)
