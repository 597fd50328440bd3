"""benchmark.py runs end to end in its quick mode and writes its files (timings not asserted).

The command is run as a subprocess (its absl flags stay out of this process);
the bench/ library is imported directly.
"""

import json
import os
import pathlib
import subprocess

import commands
import pytest


def _benchmark(*args: str) -> subprocess.CompletedProcess:
  return commands.run('benchmark.py', *args, timeout=600)


_last_error_line = commands.last_error_line


def _listing(folder: pathlib.Path) -> dict[str, tuple[int, int]]:
  """Every file and folder under `folder`: relative path -> (size, mtime) for files."""
  listing = {}
  for path in sorted(folder.rglob('*')):
    stat = path.stat()
    listing[str(path.relative_to(folder))] = (
      (stat.st_size, stat.st_mtime_ns) if path.is_file() else (0, 0)
    )
  return listing


def test_one_thread_count_is_measured_in_process_and_tabled(tmp_path):
  """The worker's measurement (what each benchmark.py subprocess runs) on one small model,
  every framework on the same weights, outputs compared before timing; the tables."""
  from flax import nnx

  import models
  from bench import tables, worker
  from train.checkpoints import save_model

  workdir = tmp_path / 'workdir'  # trained weights, as --checkpoint gives them
  model = models.create_model('l3unet', rngs=nnx.Rngs(1))
  save_model(workdir / 'checkpoints', model, name='l3unet', options=models.model_config('l3unet'))
  before = _listing(workdir)
  threads = len(os.sched_getaffinity(0))  # pins this process to the cores it already has
  record = worker.measure(
    threads,
    names=['l3unet'],
    batch=1,
    runs=2,
    checkpoint=str(workdir),
    skip_figure1=True,
    exported_dir=str(tmp_path),
    runtimes=('onnxruntime',),  # LiteRT's files and runtime: tests/test_export.py
  )
  assert _listing(workdir) == before  # nothing written into the training workdir
  assert record['threads'] == threads and record['peak_gflops'] > 0
  row = record['models'][0]
  assert row['model'] == 'l3unet' and row['params'] == 162_311
  assert row['max_kp_difference'] < 1e-3
  assert not row['runtimes_failed'], row['runtimes_failed']
  assert set(row['runtimes']) == {'onnxruntime'}, row['runtimes']
  assert max(row['runtimes_max_kp_difference'].values()) < 1e-3
  best = min(r['median_s'] for r in row['runtimes'].values())
  assert row['jax_over_best_runtime'] == pytest.approx(row['jax']['median_s'] / best)
  table = tables.table3([record])
  assert '| l3unet | ' in table and '7.9 |' in table  # the article's runtime beside ours
  json.dumps(record)  # what the worker prints


@pytest.mark.slow
def test_quick_benchmark_writes_tables_plot_and_json(tmp_path):
  from bench.models import FIGURE1_SIZES

  threads = [1, 2] if len(os.sched_getaffinity(0)) >= 2 else [1]
  result = _benchmark(
    '--runs=3',
    '--models=squeeze_unet',
    f'--threads={",".join(map(str, threads))}',
    '--out',  # the space form: DIR must not reach the workers as a stray argument
    str(tmp_path),
  )
  assert result.returncode == 0, result.stderr[-3000:]
  for name in ('table3.md', 'figure1.md', 'ablations.md', 'figure1.png', 'results.json'):
    assert (tmp_path / name).exists(), name
  results = json.loads((tmp_path / 'results.json').read_text())
  assert [r['threads'] for r in results['records']] == threads
  row = results['records'][0]['models'][0]
  assert row['model'] == 'squeeze_unet' and row['params'] == 2_507_035
  assert row['max_kp_difference'] < 1e-3  # the same function in both frameworks
  # ONNX Runtime and LiteRT on the same weights, outputs compared before timing.
  assert set(row['runtimes']) == {'onnxruntime', 'litert'} and not row['runtimes_failed']
  assert max(row['runtimes_max_kp_difference'].values()) < 1e-3
  best = min(r['median_s'] for r in row['runtimes'].values())
  assert row['jax_over_best_runtime'] == pytest.approx(row['jax']['median_s'] / best)
  assert len(results['records'][0]['figure1']) == 2 * len(FIGURE1_SIZES)
  table = (tmp_path / 'table3.md').read_text()
  assert 'Measured on' in table and '| squeeze_unet | 1 | 2,507,035 |' in table
  assert '| ONNX Runtime (ms) | LiteRT (ms) | JAX / best of ORT, LiteRT |' in table
  assert '14.2 |' in table  # the article's runtime beside ours
  ablations = (tmp_path / 'ablations.md').read_text()
  assert 'whole model: squeeze_unet' in ablations and 'sub-pixel shifted MACs' in ablations
  assert len(results['records'][0]['ablations']) == 14
  assert f'wrote {tmp_path / "table3.md"}' in result.stdout


def test_ablation_rows_are_data_with_the_documented_names():
  from bench import ablations

  rows = ablations.ablations()
  assert len(rows) == 14
  assert len({row.what for row in rows}) == 14
  assert any(row.after == 'sub-pixel shifted MACs' for row in rows)
  assert all(callable(row.before_fn) and callable(row.after_fn) for row in rows)


def test_an_unknown_model_is_one_line(tmp_path):
  assert _last_error_line(_benchmark('--models=resnet', f'--out={tmp_path}')).startswith(
    'error: unknown model(s) resnet; valid: '
  )


@pytest.mark.slow
def test_bad_arguments_fail_clearly(tmp_path):
  assert _last_error_line(_benchmark('--models=resnet', f'--out={tmp_path}')).startswith(
    'error: unknown model(s) resnet; valid: '
  )
  assert _last_error_line(_benchmark('--threads=64', f'--out={tmp_path}')).startswith(
    'error: --threads 64'
  )
  missing = tmp_path / 'missing'
  line = _last_error_line(
    _benchmark('--models=edgesegnet', f'--checkpoint={missing}', f'--out={tmp_path}')
  )
  assert line.startswith('error: no checkpoints at ') and str(missing) in line
  assert _last_error_line(_benchmark('--runs=many')).startswith('error: ')
  assert _last_error_line(_benchmark('--out', str(tmp_path), 'stray')).startswith(
    'error: unexpected argument(s) stray'
  )
  assert 'threads_worker' not in _benchmark('--help').stdout  # internal


@pytest.mark.slow
def test_trained_workdir_is_timed_and_only_read(tmp_path):
  from flax import nnx

  import models
  from train.checkpoints import save_model

  workdir = tmp_path / 'workdir'
  name = 'edgesegnet'
  model = models.create_model(name, rngs=nnx.Rngs(1))
  save_model(workdir / 'checkpoints', model, name=name, options=models.model_config(name))
  before = _listing(workdir)
  assert any(path.startswith('checkpoints') for path in before)

  # Another model than the one saved, or no --models (every model): one error line each.
  line = _last_error_line(_benchmark(f'--checkpoint={workdir}', '--models=squeeze_unet'))
  assert line == f'error: --checkpoint {workdir} holds a edgesegnet, not squeeze_unet.'
  line = _last_error_line(_benchmark('--checkpoint', str(workdir)))
  assert line == 'error: --checkpoint times one model: pass --models=NAME too.'

  out = tmp_path / 'out'
  result = _benchmark(
    '--checkpoint',
    str(workdir),
    f'--models={name}',
    '--skip_figure1',
    '--no_runtimes',
    '--runs=3',
    '--threads=1',
    f'--out={out}',
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert _listing(workdir) == before  # nothing written into the training workdir
  results = json.loads((out / 'results.json').read_text())
  row = results['records'][0]['models'][0]
  assert row['model'] == name and row['max_kp_difference'] < 1e-3
  assert row['runtimes'] == {} and row['jax_over_best_runtime'] is None  # --no_runtimes
  assert results['records'][0]['figure1'] == []
  assert sorted(p.name for p in out.iterdir()) == ['ablations.md', 'results.json', 'table3.md']


def _goal_run(ratio, gflops, peak=100.0):
  models = [
    {'model': 'edgesegnet', 'jax_over_best_runtime': ratio, 'jax_gflops_per_s': gflops,
     'mult_adds_m': 120.3},
    {'model': 'squeeze_encdec', 'jax_over_best_runtime': None, 'jax_gflops_per_s': 10.0,
     'mult_adds_m': 31.3},
  ]  # fmt: skip
  return {'records': [{'threads': 1, 'peak_gflops': peak, 'models': models}]}


def test_goals_give_ranges_and_counts_over_runs(tmp_path):
  from bench import goals

  runs = [_goal_run(0.9, 60.0), _goal_run(1.2, 40.0), _goal_run(0.95, 55.0)]
  lines = goals.table(runs).splitlines()
  assert lines[2] == '| edgesegnet | 1 | 0.90-1.20 | 2 of 3 | 40%-60% | 2 of 3 |'
  # No runtime timed: no ratio; under 50 M mult-adds: no peak goal.
  assert lines[3] == '| squeeze_encdec | 1 | - | - | 10% | - |'
  (tmp_path / 'results.json').write_text(json.dumps(runs[0]))
  result = commands.run('-m', 'tools.benchmark_goals', f'--runs={tmp_path},{tmp_path}')
  assert result.returncode == 0, result.stderr[-2000:]
  assert '| edgesegnet | 1 | 0.90 | 2 of 2 | 60% | 2 of 2 |' in result.stdout
  missing = commands.run('-m', 'tools.benchmark_goals', f'--runs={tmp_path / "missing"}')
  assert _last_error_line(missing).startswith('error: cannot read ')
  (tmp_path / 'other.json').write_text(json.dumps({'records': [{'threads': 1}]}))
  other = commands.run('-m', 'tools.benchmark_goals', f'--runs={tmp_path / "other.json"}')
  assert 'is not a results.json of this benchmark.py' in _last_error_line(other)


def _threads_run(jax_one, runtime_two):
  def model(jax_s, runtimes):
    return {'model': 'l3unet', 'jax': {'median_s': jax_s}, 'runtimes': runtimes}

  two = model(0.001, {'onnxruntime': {'median_s': runtime_two}, 'litert': {'median_s': 0.5}})
  return {
    'records': [
      {'threads': 1, 'models': [model(jax_one, {})]},
      {'threads': 2, 'models': [two]},
    ]
  }


def test_goals_set_jax_on_one_core_beside_runtimes_on_two():
  from bench import goals

  runs = [_threads_run(0.002, 0.004), _threads_run(0.003, 0.002)]
  assert goals.one_thread_ratios(runs[0]) == {'l3unet': 0.5}
  lines = goals.one_thread_table(runs).splitlines()
  assert lines[2] == '| l3unet | 0.50-1.50 | 1 of 2 |'
  assert goals.one_thread_table([{'records': [{'threads': 1, 'models': []}]}]) == ''
