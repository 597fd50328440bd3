"""The training loop: distil a student from the teacher (or train the teacher itself).

`train_and_evaluate(config, workdir)` runs one experiment. Resume order: the
latest checkpoint in WORKDIR/checkpoints, else `config.init_from`, else from
scratch. The loop itself only steps; logging, evaluation and checkpointing
are the small pieces below it, and the set-up is `train.experiment`.

A run holds its workdir's lock (`train.workdir.lock`) throughout, resumes
from the newest checkpoint that restores (damaged ones are moved aside), and
on SIGTERM or SIGINT saves at the step reached and raises `Preempted`
(`train.preemption`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from typing import Any

import jax
import ml_collections
from flax import nnx
from tqdm import tqdm

from train import checkpoints, evaluate, results
from train.experiment import Experiment
from train.fomm_experiment import FommExperiment
from train.preemption import Preempted, Watch
from train.progress import StepProgress
from train.step import TrainState
from train.workdir import WorkdirError, lock, make_workdir

__all__ = ['Preempted', 'TrainingError', 'WorkdirError', 'make_workdir', 'train_and_evaluate']


class TrainingError(RuntimeError):
  """Training cannot go on (a NaN loss); the last good checkpoint stays."""


class MetricsLog:
  """WORKDIR/metrics.jsonl: one JSON record per logged train step or evaluation."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, 'metrics.jsonl')

  def write(self, record: dict) -> None:
    if jax.process_index() == 0:
      with open(self.path, 'a') as f:
        f.write(json.dumps(record) + '\n')

  def truncate(self, step: int) -> None:
    """Drops records after `step` (a killed run may have logged past its last checkpoint)."""
    if jax.process_index() == 0 and os.path.exists(self.path):
      kept = [r for r in self.read() if r['step'] <= step]
      with open(self.path, 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in kept)

  def read(self) -> list[dict]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]


class _Rate:
  """Training images per second since the last reading (evaluation time excluded)."""

  def __init__(self, batch_size: int):
    self.batch_size = batch_size
    self.restart()

  def restart(self) -> None:
    self.start, self.steps = time.perf_counter(), 0

  def read(self) -> float:
    rate = self.steps * self.batch_size / max(time.perf_counter() - self.start, 1e-9)
    self.restart()
    return rate


def _due(step: int, every: int, last: int) -> bool:
  return step % every == 0 or step == last


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (or resumes), evaluates and writes checkpoints, metrics, results and plots.

  Returns:
    The results (the Table 4 row and the model's size; FOMM's scores for task 'fomm').
  """
  # Checks the config before anything is written.
  if config.task == 'fomm':
    experiment = FommExperiment(config, workdir)
  else:
    experiment = Experiment(config, workdir)
  with contextlib.ExitStack() as stack:
    stack.enter_context(lock(experiment.workdir))
    # Closed however the run ends, so that no orbax thread outlives an error line.
    stack.callback(lambda: 'checkpoints' in vars(experiment) and experiment.checkpoints.close())
    with Watch() as preemption:  # the previous signal handlers come back after the loop
      state, val_metrics, shown = _train(experiment, preemption)
    if val_metrics is None:  # resumed at the very end: evaluate what was restored
      val_metrics, shown = _evaluate(experiment, state)
    records = MetricsLog(experiment.workdir).read()
    if isinstance(experiment, FommExperiment):
      return experiment.finish(state, val_metrics, records, shown)
    outcome = results.run_results(experiment, state, val_metrics, records)
    results.write_outputs(experiment, outcome, records, shown)
  return outcome


def _evaluate(experiment: Experiment, state: TrainState) -> tuple[dict, dict | None]:
  """(validation metrics, what to picture): FOMM's run measures its own."""
  if isinstance(experiment, FommExperiment):
    return experiment.evaluate(state.params, state.batch_stats)
  return evaluate.evaluate(experiment, state.params, state.batch_stats)


def _train(experiment: Experiment, preemption: Watch):
  """The steps from the resumed one to the last: (state, last validation metrics, shown)."""
  config = experiment.config  # with an epoch schedule in steps (train.epochs)
  state = jax.device_put(_resume_or_start(experiment), experiment.replicated)
  log = MetricsLog(experiment.workdir)
  log.truncate(int(state.step))
  start, last = int(state.step), config.num_steps
  rate = _Rate(config.batch_size)
  val_metrics = shown = None
  progress = StepProgress(
    total=last, initial=start, desc=experiment.label, disable=jax.process_index() != 0
  )
  for step in range(start + 1, last + 1):
    batch = experiment.put(next(experiment.train_iter), whole=False)
    state, metrics = experiment.train_step(state, experiment.rest, experiment.teacher_state, batch)
    rate.steps += 1
    evaluated = _due(step, config.eval_every, last)
    saved = _due(step, config.checkpoint_every, last)
    logged = _due(step, config.log_every, last) or saved
    if logged:
      _log_train(log, progress, step, metrics, rate)
    if evaluated:
      state = experiment.with_precise_bn(state)  # eval and checkpoints get precise statistics
      val_metrics, shown = _log_validation(log, experiment, state, step)
      rate.restart()  # images/s measures training, not evaluation
    if saved:
      _save(experiment, state, step, val_metrics['loss'] if evaluated else None)
    if evaluated:  # the bar's time now includes the evaluation's
      progress.reached(step)
    if step < last and preemption.due(step):
      progress.close()
      if not saved:  # the state as the next step would see it: a resume is bit-identical
        _save(experiment, state, step, None)
      raise Preempted(preemption.signum, step)
  progress.close()
  return state, val_metrics, shown


def _log_train(
  log: MetricsLog, progress: StepProgress, step: int, metrics: dict, rate: _Rate
) -> None:
  """Logs the step's loss terms; stops on a non-finite loss before anything is saved."""
  values = evaluate.scalars(metrics)  # waits for the step: the rate is read after it
  images_per_s = rate.read()
  if not all(math.isfinite(v) for v in values.values()):
    progress.close()
    raise TrainingError(
      f'non-finite training loss at step {step} ({values}); nothing was saved after the '
      'last checkpoint. Lower optim.lr or set optim.clip_norm, then rerun to resume.'
    )
  log.write({'step': step, 'split': 'train', **values, 'images_per_s': images_per_s})
  progress.reached(step, loss=f'{values["loss"]:.4g}', img_s=f'{images_per_s:.0f}')


def _log_validation(log: MetricsLog, experiment: Experiment, state: TrainState, step: int):
  metrics, shown = _evaluate(experiment, state)
  log.write({'step': step, 'split': 'validation', **metrics})
  if jax.process_index() == 0:
    tqdm.write(f'step {step}: validation ' + ', '.join(f'{k} {v:.4g}' for k, v in metrics.items()))
  return metrics, shown


def _save(experiment: Experiment, state: TrainState, step: int, val_loss: float | None) -> None:
  experiment.checkpoints.save(
    step,
    checkpoints.train_state_to_pure(state),
    experiment.meta(step),
    data=experiment.train_iter.get_state(),
    val_loss=val_loss,
  )


def _resume_or_start(experiment: Experiment) -> TrainState:
  """The latest checkpoint of the workdir, else a warm start from `init_from`, else fresh."""
  state = experiment.initial_state()
  writer = experiment.checkpoints

  def check(meta: dict) -> None:
    experiment.check_same_model(meta, f'{experiment.workdir} (checkpoints)')
    experiment.check_same_data(meta, f'{experiment.workdir} (checkpoints)')

  resumed = writer.resume(check, state)
  if resumed is not None:
    latest, state, data_state, _ = resumed
    experiment.train_iter.set_state(data_state)
    print(f'resuming from step {latest} in {writer.directory}', flush=True)
    return state
  if experiment.config.init_from:
    return _warm_start(experiment, state)
  return state


def _warm_start(experiment: Experiment, state: TrainState) -> TrainState:
  """Student weights from another run's best checkpoint or a checkpoint folder."""
  path = os.path.abspath(experiment.config.init_from)
  model, meta = checkpoints.restore_model(path)
  experiment.check_same_model(meta, f'init_from {path}')
  params, batch_stats = state.params, state.batch_stats
  nnx.replace_by_pure_dict(params, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  nnx.replace_by_pure_dict(batch_stats, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))
  print(f'warm start from {path}', flush=True)
  return TrainState(state.step, params, batch_stats, state.opt_state)
