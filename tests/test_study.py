"""The study command: runs in order, a stopped run resumed, finished runs skipped, summary."""

import json
import os
import pathlib
import shutil

import pytest
from commands import run

from train import study


def test_the_plan_covers_the_issue():
  names = [r.name for r in study.PLAN]
  assert len(names) == len(set(names)) == 20
  for model in study.ARTICLE_STUDENTS:
    assert {r.seed for r in study.PLAN if r.config == model and r.loss == 'L1'} == {0, 1, 2}
  for loss in ('L2', 'L3'):
    assert {r.seed for r in study.PLAN if r.config == 'edgeseg' and r.loss == loss} == {0, 1, 2}
  with pytest.raises(ValueError, match='unknown study run'):
    study.select(['edgeseg_L9_seed0'])


def test_status_and_summary_of_finished_partial_and_missing_runs(shared, edgeseg_run, tmp_path):
  """The study's bookkeeping in-process, on the shared 6-step run (the command: below)."""
  finished, partial = tmp_path / 'runs' / 'edgeseg_L1_seed0', tmp_path / 'runs' / 'edgeseg_L1_seed1'
  shutil.copytree(edgeseg_run[0], finished)
  shutil.copytree(edgeseg_run[0], partial)
  os.remove(partial / 'results.json')
  runs = study.select(['edgeseg_L1_seed0', 'edgeseg_L1_seed1', 'edgeseg_L1_seed2'])
  assert [study.status(str(tmp_path / 'runs' / r.name)) for r in runs] == [
    'finished',
    'partial (step 6)',
    'not started',
  ]
  path = study.write_summary(
    runs, str(tmp_path / 'runs'), str(shared / 'teacher'), str(tmp_path / 'out')
  )
  records = json.loads(pathlib.Path(path).read_text())['runs']
  assert [r['role'] for r in records] == ['teacher', 'student']
  assert records[1]['run'] == 'edgeseg_L1_seed0' and records[1]['steps'] == 6
  assert records[1]['val_distance'] == edgeseg_run[1]['val_distance']
  assert records[0]['params'] > 0 and records[0]['truth_distance'] > 0
  assert sorted(os.listdir(tmp_path / 'out' / 'runs')) == ['edgeseg_L1_seed0', 'teacher']


@pytest.mark.slow
def test_study_resumes_a_stopped_run_skips_finished_ones_and_writes_the_summary(shared, tmp_path):
  def study_command(runs, *extra):
    return run(
      '-m', 'tools.study', f'--runs={runs}', f'--dir={tmp_path / "runs"}',
      f'--out={tmp_path / "out"}', f'--teacher={shared / "teacher"}', '--variant=smoke',
      f'--override=--config.data.data_dir={shared / "data"}',
      '--override=--config.precise_bn_images=8', *extra, timeout=600,
    )  # fmt: skip

  # A run stopped after its step-3 checkpoint: trained to 3 steps, its results removed.
  first = study_command('edgeseg_L1_seed0', '--override=--config.num_steps=3')
  assert first.returncode == 0, first.stderr[-2000:]
  os.remove(tmp_path / 'runs' / 'edgeseg_L1_seed0' / 'results.json')

  both = study_command('edgeseg_L1_seed0,edgeseg_L1_seed1')
  assert both.returncode == 0, both.stderr[-2000:]
  assert '[1/2] edgeseg_L1_seed0 (partial (step 3))' in both.stdout
  assert 'resuming from step 3' in both.stdout
  assert '[2/2] edgeseg_L1_seed1 (not started' in both.stdout

  summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())['runs']
  roles = [r['role'] for r in summary]
  assert roles == ['teacher', 'student', 'student']
  students = {r['run']: r for r in summary[1:]}
  assert students['edgeseg_L1_seed0']['steps'] == students['edgeseg_L1_seed1']['steps'] == 6
  assert [students[n]['seed'] for n in sorted(students)] == [0, 1]
  assert summary[0]['params'] > 0 and summary[0]['truth_distance'] > 0
  for name in ('teacher', 'edgeseg_L1_seed0', 'edgeseg_L1_seed1'):
    assert (tmp_path / 'out' / 'runs' / name / 'results.json').is_file()

  again = study_command('edgeseg_L1_seed0,edgeseg_L1_seed1')
  assert again.returncode == 0 and '2 of 2 runs finished, 0 to do' in again.stdout

  report = run('-m', 'tools.report', f'--study={tmp_path / "out"}', '--benchmark=missing.json')
  assert report.returncode == 0, report.stderr[-2000:]
  tables = (tmp_path / 'out' / 'tables.md').read_text()
  assert '| edgesegnet | 2 | 6 |' in tables and '0.0077' in tables  # beside the article's
  assert '| L1 | 2 |' in tables and ' +- ' in tables  # two seeds: a mean and a spread
  assert (tmp_path / 'out' / 'pareto.png').stat().st_size > 10_000
  assert (tmp_path / 'out' / 'curves.png').is_file()
  assert '| edgeseg_L1_seed1 | ' in tables and '| step 3 | step 6 |' in tables


@pytest.mark.parametrize(
  ('flag', 'message'),
  [
    ('--runs=edgeseg_L9_seed0', 'error: unknown study run(s) edgeseg_L9_seed0; valid: '),
    ('--variant=fast', "error: unknown config argument 'fast'; valid: smoke, paper, study."),
  ],
)
def test_bad_study_arguments_are_one_line(flag, message):
  from commands import last_error_line

  assert last_error_line(run('-m', 'tools.study', flag)).startswith(message)


def test_comparisons_follow_welchs_t_test():
  import scipy.stats

  from train import report

  def runs(model, values):
    return [{'model': model, 'loss': 'L1', 'val_distance': v} for v in values]

  a, b, c = [0.040, 0.042, 0.041], [0.046, 0.047, 0.045], [0.044, 0.038, 0.043]
  students = runs('edgesegnet', a) + runs('squeeze_unet', b) + runs('l3unet', c)
  for other, values in (('squeeze_unet', b), ('l3unet', c)):
    line = report.compare(students, 'edgesegnet', other)
    p_value = scipy.stats.ttest_ind(a, values, equal_var=False).pvalue
    assert ('decided' if p_value < 0.05 else 'within the spread') in line, (line, p_value)
  assert 'within the spread' in report.compare(students, 'edgesegnet', 'l3unet')
  # No spread on either side: Welch has no p, any difference is decided.
  flat = runs('edgesegnet', [0.04, 0.04]) + runs('squeeze_unet', [0.05, 0.05])
  assert report.compare(flat, 'edgesegnet', 'squeeze_unet') == (
    'edgesegnet vs squeeze_unet: -0.0100, no spread (val_distance; decided)'
  )
  interval = scipy.stats.ttest_ind(a, c, equal_var=False).confidence_interval(0.95)
  assert f'95% interval {interval.low:+.4f} to {interval.high:+.4f} ' in report.compare(
    students, 'edgesegnet', 'l3unet'
  )
  assert 'decided' in report.compare(students, 'edgesegnet', 'squeeze_unet')
  # (student, loss) pairs compare losses of one student: series Part 7's L1 against L2.
  students += [{'model': 'edgesegnet', 'loss': 'L2', 'val_distance': v} for v in b]
  line = report.compare(students, ('edgesegnet', 'L1'), ('edgesegnet', 'L2'))
  assert line.startswith('edgesegnet L1 vs edgesegnet L2: -0.0050,') and 'decided' in line
  assert 'not both run' in report.compare(students, ('edgesegnet', 'L1'), ('edgesegnet', 'L3'))


def test_report_on_a_damaged_summary_is_one_line(tmp_path):
  """tools.report in-process (its subprocess: tests/test_outliers.py)."""
  from commands import in_process, one_line

  (tmp_path / 'summary.json').write_text('not json')
  line = one_line(in_process('tools.report', f'--study={tmp_path}'))
  assert line.startswith(f'error: {tmp_path}/summary.json is not a study summary')
  line = one_line(in_process('tools.report', f'--study={tmp_path / "missing"}'))
  assert line.startswith('error: no summary.json in')


def test_the_second_studys_report_ranks_students_by_each_score(tmp_path):
  """tools.report on a --plan=fomm summary: the teacher, both tables, rankings, Spearman."""
  import numpy as np
  import scipy.stats
  from commands import in_process

  from train import report_fomm

  teacher = {
    'role': 'teacher', 'model': 'fomm_teacher', 'steps': 5000, 'val_reconstruction_l1': 0.04,
    'reconstruction_l1': 0.041, 'animated_kp_error': 0.012, 'kp_distance_to_teacher': 0.0,
    'landmark_regression_error': 0.03, 'landmark_regression_error_interocular': 0.08,
    'random_landmark_regression_error': 0.17, 'supervised_landmark_regression_error': 0.02,
  }  # fmt: skip
  students, order = [], ['squeeze_encdec', 'edgesegnet', 'l3unet', 'squeeze_unet']
  for rank, model in enumerate(order):
    for seed in range(3):
      distance = 0.02 + 0.01 * rank + 0.001 * seed
      students.append({
        'role': 'student', 'run': f'{model}_L1_seed{seed}', 'model': model, 'loss': 'L1',
        'seed': seed, 'steps': 100, 'params': 1000, 'train_loss': 0.1, 'val_loss': 0.1,
        'val_distance': distance, 'kp_distance_to_teacher': distance,
        'reconstruction_l1': 0.05 + distance,  # the same order as val distance
        'animated_kp_error': 0.1 - distance if model != 'l3unet' else 0.0,  # reversed but one
      })  # fmt: skip
  assert report_fomm.is_fomm_summary(teacher, students)
  assert report_fomm.ranking(students, 'reconstruction_l1') == order
  line = report_fomm.rank_correlation(students, 'val_distance', 'animated_kp_error')
  expected = scipy.stats.spearmanr(
    [s['val_distance'] for s in students], [s['animated_kp_error'] for s in students]
  )
  _, p_value, _ = report_fomm.spearman(
    np.array([s['val_distance'] for s in students]),
    np.array([s['animated_kp_error'] for s in students]),
  )  # its p is checked against counted permutations below
  assert line == (
    f'val_distance vs animated_kp_error: Spearman rho {expected.statistic:+.2f} over 12 runs, '
    f'permutation p {p_value:.3f} (9,999 permutations)'
  )
  assert 'too few to rank' in report_fomm.rank_correlation(students[:2], 'val_distance', 'x')
  (tmp_path / 'summary.json').write_text(json.dumps({'runs': [teacher] + students}))
  assert in_process('tools.report', f'--study={tmp_path}', '--benchmark=/no/such.json') is None
  tables = (tmp_path / 'tables.md').read_text()
  assert '| landmark regression error: random detector | 0.1700 |' in tables
  assert '| learnt keypoints | 0.0300 (8.0% inter-ocular) |' in tables.replace(
    'landmark regression error: ', ''
  )
  assert '| FOMM teacher | - | - | 0 | 0.0410 | 0.0120 |' in tables
  assert f'- reconstruction_l1: {", ".join(order)}' in tables
  assert '- the article (val distance): edgesegnet, squeeze_unet, l3unet, squeeze_encdec' in tables
  assert 'val_distance vs reconstruction_l1: Spearman rho +1.00 over 12 runs' in tables
  # Every run, by val distance, with the scores the correlation ranks.
  assert '| squeeze_encdec_L1_seed0 | 0.0200 | 0.0700 | 0.0800 |' in tables
  assert tables.index('| squeeze_encdec_L1_seed2 |') < tables.index('| edgesegnet_L1_seed0 |')
  assert 'to truth' not in tables


def test_spearman_p_counts_permutations_exactly_over_a_few_runs():
  """Over n <= 8 runs p is the share of all n! pairings at least as extreme, counted here."""
  import itertools

  import numpy as np
  import scipy.stats

  from train import report_fomm

  # A perfect ranking of 4 runs: 2 of the 24 pairings reach |rho| = 1 (scipy's t says 0).
  rho, p_value, how = report_fomm.spearman(np.arange(4.0), np.array([0.1, 0.3, 0.35, 0.9]))
  assert (rho, how) == (1.0, 'exact') and p_value == pytest.approx(2 / 24)
  x, y = np.array([0.3, 0.1, 0.5, 0.4, 0.2, 0.9]), np.array([2.0, 1.0, 2.5, 3.0, 0.5, 4.0])
  observed = scipy.stats.spearmanr(x, y).statistic
  extreme = [
    abs(scipy.stats.spearmanr(x[list(order)], y).statistic) >= abs(observed) - 1e-12
    for order in itertools.permutations(range(6))
  ]
  rho, p_value, _ = report_fomm.spearman(x, y)
  assert rho == pytest.approx(observed) and p_value == pytest.approx(np.mean(extreme))


def test_the_schedule_check_reads_the_mean_curve_over_seeds():
  from train import report

  found = {'a0': [(300, 0.10), (600, 0.050), (800, 0.048)], 'a1': [(300, 0.12), (600, 0.030)]}
  students = [{'run': 'a0', 'model': 'a', 'loss': 'L1'}, {'run': 'a1', 'model': 'a', 'loss': 'L1'}]
  # Only the steps both seeds reached are averaged.
  mean = report.mean_curves(found, students)
  assert list(mean) == ['a, L1 (mean of 2)']
  steps, values = zip(*mean['a, L1 (mean of 2)'], strict=True)
  assert steps == (300, 600) and values == pytest.approx((0.11, 0.04))
  assert report.last_quarter(mean['a, L1 (mean of 2)']) == pytest.approx((0.11 - 0.04) / 0.11)
  table = report.convergence_table(found, students)
  assert '| a, L1 (mean of 2) | 0.1100 | 0.0400 | - | 63.6% |' in table
  # A student with one finished run gets no mean row.
  assert 'mean of' not in report.convergence_table(found, students[:1])


def test_a_drawn_permutation_p_is_bounded_not_zero():
  """Over 12 runs p comes from 9,999 draws: a perfect ranking reads 'under 0.001', never 0."""
  import numpy as np

  from train import report_fomm

  rho, p_value, how = report_fomm.spearman(np.arange(12.0), np.arange(12.0) ** 2)
  assert (rho, how) == (1.0, '9,999 permutations') and 0 < p_value < 0.001
  runs = [{'run': str(i), 'a': float(i), 'b': float(i) ** 2} for i in range(12)]
  assert report_fomm.rank_correlation(runs, 'a', 'b').endswith(
    'permutation p under 0.001 (9,999 permutations)'
  )
