"""A finished run's results: the Table 4 row, results.json, pictures, and Table 4 across runs."""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np

import models
from models import summary
from train import plots
from train.experiment import Experiment
from train.step import TrainState


def run_results(
  experiment: Experiment, state: TrainState, val_metrics: dict[str, float], records: list[dict]
) -> dict[str, Any]:
  """The run's Table 4 row (train loss over the last evaluation window) and its model's size."""
  train = [r['loss'] for r in records if r['split'] == 'train']
  evals = [r['step'] for r in records if r['split'] == 'validation']
  window_start = evals[-2] if len(evals) > 1 else 0
  recent = [r['loss'] for r in records if r['split'] == 'train' and r['step'] > window_start]
  counted = summary.summarize(
    experiment.model(state.params, state.batch_stats), per_layer_xla=False, xla_flops=False
  )
  return {
    'model': experiment.spec.name,
    'task': experiment.config.task,
    'steps': int(state.step),
    'train_loss': float(np.mean(recent or train or [float('nan')])),
    'val_loss': val_metrics['loss'],
    'val_distance': val_metrics['distance'],
    **{k: v for k, v in val_metrics.items() if k not in ('loss', 'distance')},
    'params': counted.params,
    'mult_adds_m': counted.mult_adds / 1e6,
    'images_per_s': float(
      np.median([r['images_per_s'] for r in records if r['split'] == 'train'] or [0])
    ),
  }


def write_outputs(
  experiment: Experiment, results: dict[str, Any], records: list[dict], shown: dict | None
) -> None:
  """results.json, loss_curves.png and val_keypoints.png in the workdir (process 0 only)."""
  if jax.process_index() != 0:
    return
  workdir, name = experiment.workdir, experiment.spec.name
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2)
  plots.loss_curves(records, os.path.join(workdir, 'loss_curves.png'), title=name)
  if shown is not None:
    plots.keypoints_grid(shown, os.path.join(workdir, 'val_keypoints.png'), title=name)
  print(
    f'{results["model"]}: train loss {results["train_loss"]:.4f}, val loss '
    f'{results["val_loss"]:.4f}, val distance {results["val_distance"]:.4f}; '
    f'{results["params"]:,} params, {results["mult_adds_m"]:.2f} M mult-adds',
    flush=True,
  )
  print(f'wrote {workdir}/results.json, loss_curves.png, val_keypoints.png', flush=True)


def load_results(workdirs: list[str]) -> list[dict]:
  """The results.json of each workdir that has one, with the workdir added."""
  rows = []
  for workdir in workdirs:
    path = os.path.join(workdir, 'results.json')
    if os.path.isfile(path):
      with open(path) as f:
        rows.append({'workdir': workdir, **json.load(f)})
  return rows


def table4(rows: list[dict]) -> str:
  """Markdown: our train loss, val loss, val distance beside the article's Table 4."""
  lines = [
    '| model | workdir | steps | train loss | val loss | val distance | student-truth distance '
    '| article train | article val | article distance |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for row in rows:
    paper = models.spec(row['model']).table4
    paper_cells = (
      ' | '.join(f'{v:.4f}' for v in (paper.train_loss, paper.val_loss, paper.val_distance))
      if paper
      else '- | - | -'
    )
    truth = row.get('student_gt_distance')
    lines.append(
      f'| {row["model"]}{" (teacher)" if row.get("task") == "supervised" else ""} '
      f'| {row["workdir"]} | {row["steps"]} | {row["train_loss"]:.4f} | {row["val_loss"]:.4f} '
      f'| {row["val_distance"]:.4f} | {f"{truth:.4f}" if truth is not None else "-"} '
      f'| {paper_cells} |'
    )
  return '\n'.join(lines)
