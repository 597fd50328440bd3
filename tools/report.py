"""Gathers results into the article's Table 4, beside its numbers.

  python -m tools.report workdirs/*                  # one row per run folder
  python -m tools.report --study=docs/study [--benchmark=benchmarks/results.json]
  python -m tools.report --study=docs/study_fomm      # the second study

With `--study` (the folder `python -m tools.study` writes), the study's
tables (mean +- std over seeds; train.report defines each column) are
printed and written to STUDY/tables.md, with the pairwise comparisons the
article's claims need, and the Pareto picture STUDY/pareto.png (val
distance against the JAX latency of the benchmark's results.json, and
against parameters), with the learning curves of every run (STUDY/curves.png
and a table with each run's improvement over its last quarter).

The second study's summary (`python -m tools.study --plan=fomm`, in
docs/study_fomm) gets its own tables (train.report_fomm): the FOMM teacher's
scores and landmark regression, Table 4 from that teacher, the animation each
student drives, the rankings by each score beside the article's, the
article's comparisons by each score, and the rank correlation of val distance
with the animation over the runs.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags

from tools import cli

_STUDY = flags.DEFINE_string('study', None, 'a folder holding summary.json (tools.study)')
_BENCHMARK = flags.DEFINE_string(
  'benchmark', 'benchmarks/results.json', 'benchmark.py results.json for the latency axis'
)

# The article's claims, compared on val distance: students (their L1 runs) or (student, loss).
_CLAIMS = (
  ('edgesegnet', 'squeeze_unet'),
  ('edgesegnet', 'l3unet'),
  ('l3unet', 'squeeze_unet'),
  ('l3unet', 'squeeze_encdec'),
  ('squeeze_encdec', 'squeeze_unet'),
  (('edgesegnet', 'L1'), ('edgesegnet', 'L2')),  # series Part 7: L1 beats L2 and L3
  (('edgesegnet', 'L1'), ('edgesegnet', 'L3')),
  (('edgesegnet', 'L2'), ('edgesegnet', 'L3')),
)
# The second study's scores (tools.study --plan=fomm): distillation, then the animation.
_FOMM_SCORES = ('val_distance', 'reconstruction_l1', 'animated_kp_error')


def _fomm_tables(teacher: dict | None, students: list[dict]) -> list[str]:
  """The second study's sections (train.report_fomm): Table 4, the animation, rankings."""
  from train import report, report_fomm

  lines = []
  if teacher:
    lines += ['## The teacher: FOMM trained here', '', report_fomm.teacher_table(teacher), '']
  lines += ['## Table 4 from the unsupervised teacher (loss L1)', '']
  lines += [report_fomm.table4(students), '', '## The animation (held-out clips)', '']
  lines += [report_fomm.animation_table(teacher, students), '', '## Rankings (best first)', '']
  names = report_fomm.ranking(students, 'val_distance')
  lines.append(f'- the article (val distance): {", ".join(report_fomm.article_ranking(names))}')
  for column in _FOMM_SCORES:
    lines.append(f'- {column}: {", ".join(report_fomm.ranking(students, column))}')
  lines += ['', "## The article's comparisons, by each score"]
  for column in _FOMM_SCORES:
    lines += ['', f'{column}:', '']
    pairs = [(a, b) for a, b in _CLAIMS if isinstance(a, str)]  # students, not losses
    lines += [f'- {report.compare(students, a, b, column)}' for a, b in pairs]
  lines += ['', '## Does val distance rank the runs as the animation does?', '']
  for column in _FOMM_SCORES[1:]:
    lines.append(f'- {report_fomm.rank_correlation(students, "val_distance", column)}')
  return lines + ['', report_fomm.runs_table(students), '']


def _study(folder: str) -> None:
  from train import report, report_fomm

  path = os.path.join(folder, 'summary.json')
  if not os.path.isfile(path):
    sys.exit(f'error: no summary.json in {folder}; run `python -m tools.study` first.')
  try:
    teacher, students = report.load(path)
  except (ValueError, KeyError, TypeError) as error:  # not JSON, or not a study summary
    sys.exit(f'error: {path} is not a study summary ({error}); rerun `python -m tools.study`.')
  if not students:
    sys.exit(f'error: {path} holds no finished student run yet.')
  if report_fomm.is_fomm_summary(teacher, students):
    lines = _fomm_tables(teacher, students)
  else:
    lines = ['## Table 4 (loss L1)', '', report.table4(teacher, students), '']
    lines += ['## Losses', '', report.loss_table(students), '', "## The article's comparisons", '']
    lines += [f'- {report.compare(students, a, b)}' for a, b in _CLAIMS]
  found = report.curves(folder, students)
  lines += ['', '## Learning curves (val distance; the schedule check: under 2%)', '']
  lines += [report.convergence_table(found, students)]
  text = '\n'.join(lines) + '\n'
  print(text)
  with open(os.path.join(folder, 'tables.md'), 'w') as f:
    f.write(text)
  latency, note = {}, f'no latency: {_BENCHMARK.value} not found'
  if os.path.isfile(_BENCHMARK.value):
    with open(_BENCHMARK.value) as f:
      latency = report.latencies(json.load(f))
    note = f'Latency from {_BENCHMARK.value}.'
  picture = os.path.join(folder, 'pareto.png')
  report.pareto(students, latency, picture, note)
  report.curves_picture(found, students, os.path.join(folder, 'curves.png'))
  print(f'wrote {folder}/tables.md, {picture} and curves.png')


def main(argv: list[str]) -> None:
  if _STUDY.value:
    cli.no_positional(argv)
    _study(_STUDY.value)
    return
  from train import results

  workdirs = argv[1:]
  if not workdirs:
    sys.exit(
      'error: pass the run folders to gather, e.g. `python -m tools.report workdirs/*`, '
      'or --study=docs/study.'
    )
  rows = results.load_results(workdirs)
  if not rows:
    sys.exit(f'error: no results.json in {", ".join(workdirs)}; run main.py first.')
  print(results.table4(rows))


if __name__ == '__main__':
  cli.run(main)
