"""The second study's tables, from docs/study_fomm/summary.json (tools.study --plan=fomm).

The teacher is the detector of FOMM's own training run, unsupervised, so its
keypoints are not landmarks: a student's "to truth" distance means nothing
here and is left out. Each student is judged twice, by its val distance to
the teacher (Table 4) and by the animation it drives in the teacher's
generator on the held-out clips (train.study_fomm): reconstruction L1 and
the animated keypoint error (AKD). Means +- sample standard deviations over
seeds, Welch's tests as train.report; whether val distance predicts the
animation is Spearman's rank correlation over the individual runs, with a
permutation p-value.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

import models
from train import report

_TABLE4 = ('train_loss', 'val_loss', 'val_distance')
_ANIMATION = ('val_distance', 'kp_distance_to_teacher', 'reconstruction_l1', 'animated_kp_error')


def is_fomm_summary(teacher: dict | None, students: list[dict]) -> bool:
  """Whether a summary is the second study's (its teacher carries the landmark regression)."""
  return bool(teacher and 'landmark_regression_error' in teacher) or any(
    'reconstruction_l1' in s for s in students
  )


def teacher_table(teacher: dict) -> str:
  """Markdown: the FOMM run's own scores and the landmark regression of its keypoints."""
  lines = ['| FOMM teacher | value |', '|---|---:|', f'| training steps | {teacher["steps"]:,} |']
  rows = (
    ('validation reconstruction L1 (end of training)', 'val_reconstruction_l1'),
    ('held-out reconstruction L1', 'reconstruction_l1'),
    ('held-out animated keypoint error', 'animated_kp_error'),
    ('landmark regression error: learnt keypoints', 'landmark_regression_error'),
    ('landmark regression error: random detector', 'random_landmark_regression_error'),
    ('landmark regression error: supervised teacher', 'supervised_landmark_regression_error'),
  )
  for label, key in rows:
    if teacher.get(key) is not None:
      extra = teacher.get(key + '_interocular')
      share = f' ({100 * extra:.1f}% inter-ocular)' if extra is not None else ''
      lines.append(f'| {label} | {teacher[key]:.4f}{share} |')
  return '\n'.join(lines)


def _l1_groups(students: list[dict]) -> dict[str, list[dict]]:
  return {model: runs for (model, loss), runs in report.group(students).items() if loss == 'L1'}


def table4(students: list[dict]) -> str:
  """Markdown: Table 4 from the unsupervised teacher, beside the article's numbers."""
  lines = [
    '| model | seeds | steps | params | train loss | val loss | val distance '
    '| article train | article val | article distance |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for model, runs in _l1_groups(students).items():
    paper = models.spec(model).table4
    article = (
      ' | '.join(f'{v:.4f}' for v in (paper.train_loss, paper.val_loss, paper.val_distance))
      if paper
      else '- | - | -'
    )
    cells = ' | '.join(report.cell([r[c] for r in runs]) for c in _TABLE4)
    lines.append(
      f'| {model} | {len(runs)} | {runs[0]["steps"]} | {runs[0]["params"]:,} | {cells} '
      f'| {article} |'
    )
  return '\n'.join(lines)


def animation_table(teacher: dict | None, students: list[dict]) -> str:
  """Markdown: each student driving the teacher's generator on the held-out clips."""
  lines = [
    '| detector | seeds | val distance | kp distance (clips) | reconstruction L1 '
    '| animated kp error |',
    '|---|---:|---:|---:|---:|---:|',
  ]
  if teacher and teacher.get('reconstruction_l1') is not None:
    lines.append(
      f'| FOMM teacher | - | - | 0 | {teacher["reconstruction_l1"]:.4f} '
      f'| {teacher["animated_kp_error"]:.4f} |'
    )
  for model, runs in _l1_groups(students).items():
    cells = ' | '.join(report.cell([r.get(c) for r in runs]) for c in _ANIMATION)
    lines.append(f'| {model} | {len(runs)} | {cells} |')
  return '\n'.join(lines)


def runs_table(students: list[dict]) -> str:
  """Markdown: every run by val distance beside its animation scores (what Spearman ranks)."""
  lines = [
    '| run | val distance | reconstruction L1 | animated kp error |',
    '|---|---:|---:|---:|',
  ]
  for r in sorted(students, key=lambda r: r['val_distance']):
    if r.get('reconstruction_l1') is None or r.get('animated_kp_error') is None:
      continue
    lines.append(
      f'| {r["run"]} | {r["val_distance"]:.4f} | {r["reconstruction_l1"]:.4f} '
      f'| {r["animated_kp_error"]:.4f} |'
    )
  return '\n'.join(lines)


def ranking(students: list[dict], column: str) -> list[str]:
  """The L1 students, best (lowest mean of `column`) first."""
  groups = _l1_groups(students)
  means = {model: report.stats([r.get(column) for r in runs])[0] for model, runs in groups.items()}
  return sorted(means, key=means.get)


def article_ranking(names: list[str]) -> list[str]:
  """The students the article's Table 4 has, ordered by its val distance."""
  ranked = [m for m in names if models.spec(m).table4]
  return sorted(ranked, key=lambda m: models.spec(m).table4.val_distance)


def spearman(x: np.ndarray, y: np.ndarray, resamples: int = 9_999) -> tuple[float, float, str]:
  """Spearman's rho and its two-sided permutation p-value, and how p was found.

  scipy's default p (a t approximation) is 0 for a perfect ranking of 4 runs,
  where the truth is 2/4! = 0.083: over a few runs only permutations are
  honest. Exact (all n! pairings) up to 8 runs, else `resamples` seeded draws."""
  ranks_x, ranks_y = scipy.stats.rankdata(x), scipy.stats.rankdata(y)
  centred_y = ranks_y - ranks_y.mean()

  def rho(ranks: np.ndarray, axis: int = -1) -> np.ndarray:  # Pearson's r of the ranks
    centred = ranks - ranks.mean(axis, keepdims=True)
    return (centred * centred_y).sum(axis) / np.sqrt((centred**2).sum(axis) * (centred_y**2).sum())

  exact = len(x) <= 8  # 8! = 40,320 pairings
  result = scipy.stats.permutation_test(
    (ranks_x,), rho, permutation_type='pairings', vectorized=True,
    n_resamples=np.inf if exact else resamples, rng=0,
  )  # fmt: skip
  how = 'exact' if exact else f'{resamples:,} permutations'
  return float(result.statistic), float(result.pvalue), how


def rank_correlation(students: list[dict], first: str, second: str) -> str:
  """One line: Spearman's rho between two columns over the runs that have both, with its p."""
  pairs = [
    (r[first], r[second])
    for r in students
    if r.get(first) is not None and r.get(second) is not None
  ]
  if len(pairs) < 3:
    return f'{first} vs {second}: {len(pairs)} runs, too few to rank'
  x, y = np.asarray(pairs, float).T
  if np.ptp(x) == 0 or np.ptp(y) == 0:
    return f'{first} vs {second}: one column is constant over {len(pairs)} runs'
  rho, p_value, how = spearman(x, y)
  # Drawn permutations bound p below by 2/(draws+1): say "under", not "0.000".
  shown = f'{p_value:.3f}' if p_value >= 0.001 else 'under 0.001'
  return (
    f'{first} vs {second}: Spearman rho {rho:+.2f} over {len(pairs)} runs, '
    f'permutation p {shown} ({how})'
  )
