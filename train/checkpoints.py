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

Damage: every save records the SHA-256 of its state in meta (`state_sha256`),
and a restore checks it, the shapes and that every value is finite. A step
that fails is skipped with one warning line for an earlier one: a resume
(`Writer.resume`) moves it aside to STEP.damaged (orbax ignores the name),
readers leave it in place. A step asked for by number is an error instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx
from orbax.checkpoint import checkpoint_managers as policies

import models
from train import checkpoint_checks as checks
from train.step import TrainState, train_state_from_pure, train_state_to_pure

_ITEMS = ('state', 'data', 'meta')
_METRIC = 'val_loss'
_NOT_OURS = 'it was not written by this version of the project: re-create it (main.py)'
_FOMM_RUN = "it is FOMM's training state: pass the run's detector/ or generator/ folder"


class CheckpointError(ValueError):
  """A checkpoint that cannot be used; the message says which and what to do."""


class DamagedCheckpoint(CheckpointError):  # noqa: N818 (a kind of CheckpointError)
  """A step whose files do not restore or do not check; earlier steps may.

  `cause` is the message without its advice ('checkpoint DIR/STEP/state cannot be restored (why)').
  """

  def __init__(self, cause: str):
    self.cause = cause
    super().__init__(f'{cause}; pick another step, or none to use the newest one that restores.')


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

  def _damaged(self, step: int, what: str, reason: str) -> DamagedCheckpoint:
    return DamagedCheckpoint(
      f'checkpoint {self.directory}/{step}{what} cannot be restored ({reason})'
    )

  def _restore(self, step: int, what: str, **items: Any) -> dict[str, Any]:
    try:
      return self.manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as error:  # orbax raises many types for damaged folders
      checks.quiet_failed_restore()
      raise self._damaged(step, what, checks.describe(error)) from error

  def _verify(self, step: int, state: Any, meta: Mapping[str, Any], template: Any = None) -> None:
    found = checks.problem(state, meta, template)
    if found is not None:
      raise self._damaged(step, '/state', found)

  def meta(self, step: int) -> dict[str, Any]:
    return dict(self._restore(step, '/meta', meta=ocp.args.JsonRestore())['meta'])

  def close(self) -> None:
    self.manager.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    self.close()


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
    """Writes `step` (state as pure dicts of arrays) and applies the keep policies.

    Raises:
      CheckpointError: the step could not be written (earlier steps are intact).
    """
    meta = {**meta, 'state_sha256': checks.state_sha256(state)}
    items = {'state': ocp.args.StandardSave(state), 'meta': ocp.args.JsonSave(meta)}
    if data is not None:
      items['data'] = ocp.args.JsonSave(dict(data))
    metrics = {_METRIC: float(val_loss)} if val_loss is not None else None
    try:
      self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)
      self.manager.wait_until_finished()
    except Exception as error:  # OSError, or orbax's and tensorstore's wrappings of one
      reason = checks.describe(error)
      raise CheckpointError(
        f'cannot save the checkpoint of step {step} in {self.directory} ({reason}); '
        'the earlier steps are intact: free space or fix the folder, then rerun to resume.'
      ) from error

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
    self._verify(step, restored['state'], restored['meta'], abstract)
    state = train_state_from_pure(template, restored['state'])
    return state, restored['data'], restored['meta']

  def resume(self, check: Callable[[dict], None], template: TrainState):
    """The newest step that restores and checks: (step, state, data state, meta), or None.

    Damaged steps are moved aside to STEP.damaged, one warning line each.

    Args:
      check: raises on a meta that does not belong to this run (not damage: it stops).
      template: the train state to restore into.
    """
    for step in reversed(self.steps()):
      try:
        check(self.meta(step))
        return (step, *self.restore(step, template))
      except DamagedCheckpoint as error:
        aside = self._move_aside(step)
        checks.warn(f'{error.cause}; moved it aside to {aside} and trying the step before')
    return None

  def _move_aside(self, step: int) -> str:
    """Renames a damaged step out of orbax's sight (its files are kept)."""
    source = os.path.join(self.directory, str(step))
    target, n = f'{source}.damaged', 1
    while os.path.exists(target):
      target, n = f'{source}.damaged{n}', n + 1
    if jax.process_index() == 0:
      os.rename(source, target)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils

      multihost_utils.sync_global_devices(f'checkpoint {step} moved aside')
    self.manager.reload()
    return target


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
      self.close()  # no orbax thread outlives the error line
      raise CheckpointError(
        f'no checkpoints in {directory}: train first (main.py) or convert one '
        '(`python -m tools.convert_fomm`).'
      )

  def pick(self, step: int) -> int:
    """`step`, checked to exist."""
    if step not in self.steps():
      held = ', '.join(map(str, self.steps()))
      raise CheckpointError(
        f'no checkpoint of step {step} in {self.directory} (steps held: {held}); '
        'pick one of those steps.'
      )
    return step

  def first_restorable(self, load: Callable[[int], Any]) -> Any:
    """`load(step)` of the best step, else of the newest that restores (read-only).

    Damaged steps are skipped with one warning line each and left in place.

    Raises:
      CheckpointError: when no step restores.
    """
    best = self.best_step()
    causes = []
    for step in [best, *(s for s in reversed(self.steps()) if s != best)]:
      try:
        return load(step)
      except DamagedCheckpoint as error:
        causes.append(error.cause)
        checks.warn(f'{error.cause}; skipping it (left in place)')
    steps = ', '.join(map(str, self.steps()))
    raise CheckpointError(
      f'no checkpoint in {self.directory} can be restored (steps {steps} are damaged; first: '
      f'{causes[0]}); retrain with main.py, or restore the folder from a copy.'
    )

  def model_meta(self, step: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(model name, model options, meta) of `step`."""
    meta = self.meta(step)
    if not isinstance(meta.get('options'), dict) or meta.get('model') not in models.MODELS:
      fix = _FOMM_RUN if meta.get('model') == 'fomm_pair' else _NOT_OURS
      raise CheckpointError(
        f'{self.directory}/{step}/meta does not name a model of the zoo and its options '
        f'(model={meta.get("model")!r}); {fix}.'
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
      checks.quiet_failed_restore()
      raise self._damaged(step, '/state', checks.describe(error)) from error
    template = jax.tree.map(
      lambda x: np.zeros(x.shape, x.dtype),
      saved.item_metadata,
      is_leaf=lambda x: hasattr(x, 'shape'),
    )
    state = self._restore(step, '/state', state=ocp.args.StandardRestore(template))['state']
    self._verify(step, state, self.meta(step))  # shaped by the step's own metadata
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
    CheckpointError: missing or mismatched folders, a damaged `step`, or no step that
      restores, in one line (damaged steps skipped for the default: one warning line each).
  """
  with Reader(path) as reader:
    if step is not None:
      return _load_model(reader, reader.pick(step), options)
    return reader.first_restorable(lambda best: _load_model(reader, best, options))


def _load_model(
  reader: Reader, step: int, options: Mapping[str, Any] | None
) -> tuple[nnx.Module, dict[str, Any]]:
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
  return model, meta


def _check_fit(expected: Any, saved: Any, where: str, name: str) -> None:
  want, have = checks.shapes(expected), checks.shapes(saved)
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
  with Writer(directory, keep=1) as writer:
    writer.save(0, state, model_meta(name, options, step=0, **provenance))
