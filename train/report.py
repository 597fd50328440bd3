"""The study's tables and Pareto picture, from docs/study/summary.json (train.study).

Every number is a mean +- sample standard deviation over the seeds a
(student, loss) pair has. "Train loss" is the mean of the training losses
logged (every `log_every` steps, on augmented batches, BatchNorm in train
mode) over the last evaluation window; "val loss" and "val distance" are to
the teacher on the validation split, BatchNorm in eval mode; "to truth" is
the student's keypoint distance to the true landmarks.

A difference between two students is called decided when Welch's t-test
rejects equal means at the 5% level (two-sided; standard error
sqrt(s1^2/n1 + s2^2/n2), Welch-Satterthwaite degrees of freedom, about 4 for
3 seeds a side, so the gap must exceed about 2.8 standard errors). With 3
seeds this only detects large gaps; "within the spread" means undecided,
not equal.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from typing import Any

import numpy as np
import scipy.stats

import models
from train.loop import MetricsLog

_COLUMNS = ('train_loss', 'val_loss', 'val_distance', 'truth_distance')


def load(path: str) -> tuple[dict | None, list[dict]]:
  """(teacher record or None, student records) of a summary.json."""
  with open(path) as f:
    records = json.load(f)['runs']
  teacher = next((r for r in records if r['role'] == 'teacher'), None)
  return teacher, [r for r in records if r['role'] == 'student']


def group(students: list[dict]) -> dict[tuple[str, str], list[dict]]:
  """Runs by (model, loss), in the order they first appear."""
  groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
  for record in students:
    groups[record['model'], record['loss']].append(record)
  return dict(groups)


def stats(values: list[float]) -> tuple[float, float, int]:
  """(mean, sample standard deviation (nan for one value), count)."""
  array = np.asarray([v for v in values if v is not None], float)
  std = float(array.std(ddof=1)) if array.size > 1 else math.nan
  return float(array.mean()), std, int(array.size)


def cell(values: list[float]) -> str:
  mean, std, count = stats(values)
  return f'{mean:.4f}' if count == 1 else f'{mean:.4f} +- {std:.4f}'


def table4(teacher: dict | None, students: list[dict]) -> str:
  """Markdown: the L1 runs of every student beside the article's Table 4."""
  lines = [
    '| model | seeds | steps | params | train images/s | train loss | val loss | val distance '
    '| to truth | article train | article val | article distance |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  if teacher:
    lines.append(
      f'| {teacher["model"]} (teacher) | - | {teacher["steps"]} | {teacher["params"]:,} | - | - '
      f'| - | - | {teacher["truth_distance"]:.4f} | - | - | - |'
    )
  for (model, loss), runs in group(students).items():
    if loss != 'L1':
      continue
    paper = models.spec(model).table4
    article = (
      ' | '.join(f'{v:.4f}' for v in (paper.train_loss, paper.val_loss, paper.val_distance))
      if paper
      else '- | - | -'
    )
    cells = ' | '.join(cell([r[c] for r in runs]) for c in _COLUMNS)
    rate = np.median([r['images_per_s'] or math.nan for r in runs])
    lines.append(
      f'| {model} | {len(runs)} | {runs[0]["steps"]} | {runs[0]["params"]:,} | {rate:.0f} '
      f'| {cells} | {article} |'
    )
  return '\n'.join(lines)


def loss_table(students: list[dict], model: str = 'edgesegnet') -> str:
  """Markdown: one student trained with L1, L2 and L3."""
  lines = [
    f'| {model} loss | seeds | train loss | val loss | val distance | to truth |',
    '|---|---:|---:|---:|---:|---:|',
  ]
  for (name, loss), runs in group(students).items():
    if name == model:
      cells = ' | '.join(cell([r[c] for r in runs]) for c in _COLUMNS)
      lines.append(f'| {loss} | {len(runs)} | {cells} |')
  return '\n'.join(lines)


Arm = str | tuple[str, str]  # a student (loss L1), or a (student, loss) pair


def _arm(arm: Arm) -> tuple[tuple[str, str], str]:
  """(group key, label): a bare student name means its L1 runs."""
  model, loss = (arm, 'L1') if isinstance(arm, str) else arm
  return (model, loss), model if isinstance(arm, str) else f'{model} {loss}'


def compare(students: list[dict], first: Arm, second: Arm, column: str = 'val_distance') -> str:
  """One line: the difference first - second, its standard error, Welch's p, decided or not."""
  runs = group(students)
  (key1, label1), (key2, label2) = _arm(first), _arm(second)
  if key1 not in runs or key2 not in runs:
    return f'{label1} vs {label2}: not both run'
  values1 = [r[column] for r in runs[key1] if r.get(column) is not None]
  values2 = [r[column] for r in runs[key2] if r.get(column) is not None]
  (m1, s1, n1), (m2, s2, n2) = stats(values1), stats(values2)
  if n1 < 2 or n2 < 2:
    return f'{label1} vs {label2}: {m1 - m2:+.4f} ({column}; one seed, spread unknown)'
  error = math.sqrt(s1**2 / n1 + s2**2 / n2)
  if error == 0:  # no spread on either side (Welch's p is nan): any difference is decided
    verdict = 'decided' if m1 != m2 else 'within the spread'
    return f'{label1} vs {label2}: {m1 - m2:+.4f}, no spread ({column}; {verdict})'
  test = scipy.stats.ttest_ind(values1, values2, equal_var=False)
  interval = test.confidence_interval(0.95)
  verdict = 'decided' if test.pvalue < 0.05 else 'within the spread'
  return (
    f'{label1} vs {label2}: {m1 - m2:+.4f}, standard error {error:.4f}, Welch p '
    f'{test.pvalue:.3f}, 95% interval {interval.low:+.4f} to {interval.high:+.4f} '
    f'({column}; {verdict})'
  )


def latencies(benchmark: dict[str, Any], threads: int = 1) -> dict[str, float]:
  """JAX median latency (ms) per model from a benchmark.py results.json."""
  for record in benchmark['records']:
    if record['threads'] == threads:
      return {m['model']: 1e3 * m['jax']['median_s'] for m in record['models']}
  return {}


def pareto(students: list[dict], latency_ms: dict[str, float], path: str, note: str) -> None:
  """Val distance (mean +- std over seeds, L1) against JAX latency and against parameters."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  from matplotlib import ticker

  figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  for (model, loss), runs in group(students).items():
    if loss != 'L1':
      continue
    mean, std, _ = stats([r['val_distance'] for r in runs])
    error = 0.0 if math.isnan(std) else std
    for axis, x in ((axes[0], latency_ms.get(model)), (axes[1], runs[0]['params'])):
      if x is None:
        continue
      axis.errorbar(x, mean, yerr=error, fmt='o', capsize=4)
      axis.annotate(f'{model} ({len(runs)})', (x, mean), textcoords='offset points', xytext=(5, 5))
  axes[0].set_xlabel('JAX latency, batch 1, 1 thread (ms)')
  axes[1].set_xlabel('parameters')
  axes[1].set_xscale('log')
  axes[1].xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f'{v / 1e6:g} M'))
  axes[1].xaxis.set_minor_formatter(ticker.NullFormatter())  # unlabelled minor ticks
  for axis in axes:
    axis.set_ylabel('val distance to the teacher')
    axis.grid(alpha=0.3)
    axis.margins(x=0.2, y=0.12)  # room for the labels
  figure.suptitle(
    f'Students distilled with L1: mean +- std over seeds (count in brackets). {note}', fontsize=9
  )
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def curves(folder: str, students: list[dict]) -> dict[str, list[tuple[int, float]]]:
  """Per run, (step, val distance) of every validation, from OUT/runs/<run>/metrics.jsonl."""
  found = {}
  for record in students:
    rows = MetricsLog(os.path.join(folder, 'runs', record['run'])).read()
    if rows:
      found[record['run']] = [
        (r['step'], r['distance']) for r in rows if r['split'] == 'validation'
      ]
  return found


def last_quarter(curve: list[tuple[int, float]]) -> float | None:
  """Relative val-distance improvement over the last quarter of the run (the schedule check)."""
  if not curve:
    return None
  last_step, last = curve[-1]
  earlier = [d for s, d in curve if s <= 0.75 * last_step]
  return (earlier[-1] - last) / earlier[-1] if earlier else None


def mean_curves(
  found: dict[str, list[tuple[int, float]]], students: list[dict]
) -> dict[str, list[tuple[int, float]]]:
  """Per (model, loss) with 2+ finished runs, the seeds' mean val distance at the steps all share.

  The schedule criterion is read on this curve: one seed's late dip is noise.
  """
  means = {}
  for (model, loss), runs in group(students).items():
    curves = [dict(found[r['run']]) for r in runs if found.get(r['run'])]
    if len(curves) < 2:
      continue
    shared = sorted(set.intersection(*(set(c) for c in curves)))
    means[f'{model}, {loss} (mean of {len(curves)})'] = [
      (s, float(np.mean([c[s] for c in curves]))) for s in shared
    ]
  return means


def convergence_table(found: dict[str, list[tuple[int, float]]], students: list[dict]) -> str:
  """Markdown: each run's val distance at every validation and its last-quarter improvement,
  then one row per student with 2+ runs: the mean over its seeds."""
  steps = sorted({s for curve in found.values() for s, _ in curve})
  lines = [
    '| run | ' + ' | '.join(f'step {s}' for s in steps) + ' | last-quarter improvement |',
    '|---|' + '---:|' * (len(steps) + 1),
  ]
  for run, curve in {**found, **mean_curves(found, students)}.items():
    by_step = dict(curve)
    cells = ' | '.join(f'{by_step[s]:.4f}' if s in by_step else '-' for s in steps)
    gain = last_quarter(curve)
    lines.append(f'| {run} | {cells} | {"-" if gain is None else f"{100 * gain:.1f}%"} |')
  return '\n'.join(lines)


def curves_picture(
  found: dict[str, list[tuple[int, float]]], students: list[dict], path: str
) -> None:
  """Val distance against step for every run, one colour per (student, loss) for all its seeds."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  figure, axis = plt.subplots(figsize=(7, 4.2))
  for index, ((model, loss), runs) in enumerate(group(students).items()):
    label = f'{model}, {loss} (each seed)'
    for record in runs:
      if not found.get(record['run']):
        continue
      steps, distances = zip(*found[record['run']], strict=True)
      axis.plot(steps, distances, marker='o', markersize=3, color=f'C{index % 10}', label=label)
      label = None  # one legend entry per (student, loss)
  axis.set_xlabel('step (batch 16)')
  axis.set_ylabel('val distance to the teacher')
  axis.set_yscale('log')
  axis.grid(alpha=0.3)
  axis.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
