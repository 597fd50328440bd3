"""Evaluation: loss terms and keypoint distances over a split, and `--mode=eval` on a workdir."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from flax import nnx

from train import checkpoints
from train.experiment import Experiment


def scalars(tree: dict) -> dict[str, float]:
  """Device scalars as Python floats."""
  return {k: float(v) for k, v in jax.device_get(tree).items()}


def _gather(tree: dict) -> dict[str, np.ndarray]:
  """Arrays sharded over every process's devices, whole on the host."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils

  return multihost_utils.process_allgather(tree, tiled=True)


def evaluate(
  experiment: Experiment, params: nnx.State, batch_stats: nnx.State, *, split: str = 'validation'
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Averages of the loss terms and distances over `split`, plus the first batch's keypoints."""
  totals: dict[str, float] = {}
  shown = None
  for batch in experiment.batches(split):
    sums, outputs = experiment.eval_step(
      params, batch_stats, experiment.rest, experiment.teacher_state, experiment.put(batch)
    )
    for key, value in scalars(sums).items():
      totals[key] = totals.get(key, 0.0) + value
    if shown is None:
      shown = {'image': batch['image'], **_gather(outputs)}
      if 'kp' in batch:
        shown['gt_kp'] = batch['kp']
  count = totals.pop('count')
  return {key: value / count for key, value in totals.items()}, shown


def evaluate_workdir(experiment: Experiment) -> dict[str, float]:
  """`--mode=eval`: evaluates the best checkpoint of the workdir; writes eval_results.json."""
  model, meta = checkpoints.restore_model(experiment.workdir)
  experiment.check_same_model(meta, f'{experiment.workdir} (checkpoints)')
  _, params, batch_stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
  params, batch_stats = jax.device_put((params, batch_stats), experiment.replicated)
  metrics, _ = evaluate(experiment, params, batch_stats)
  step = meta['step']
  print(f'step {step} (best by val loss): ' + ', '.join(f'{k} {v:.4g}' for k, v in metrics.items()))
  if jax.process_index() == 0:
    with open(os.path.join(experiment.workdir, 'eval_results.json'), 'w') as f:
      json.dump({'step': step, **metrics}, f, indent=2)
  return metrics
