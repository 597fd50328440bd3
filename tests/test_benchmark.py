"""benchmark.py runs end to end in its quick mode and writes its files (timings not asserted)."""

import json
import os

import pytest

import benchmark


def test_quick_benchmark_writes_tables_plot_and_json(tmp_path, capsys):
  threads = [1, 2] if len(os.sched_getaffinity(0)) >= 2 else [1]
  benchmark.main(
    [
      '--runs=3',
      '--models=squeeze_unet',
      f'--threads={",".join(map(str, threads))}',
      f'--out={tmp_path}',
    ]
  )
  for name in ('table3.md', 'figure1.md', 'ablations.md', 'figure1.png', 'results.json'):
    assert (tmp_path / name).exists(), name
  results = json.loads((tmp_path / 'results.json').read_text())
  assert [r['threads'] for r in results['records']] == threads
  row = results['records'][0]['models'][0]
  assert row['model'] == 'squeeze_unet' and row['params'] == 2_507_035
  assert row['max_kp_difference'] < 1e-3  # the same function in both frameworks
  assert len(results['records'][0]['figure1']) == 2 * len(benchmark.FIGURE1_SIZES)
  table = (tmp_path / 'table3.md').read_text()
  assert 'Measured on' in table and '| squeeze_unet | 1 | 2,507,035 |' in table
  assert '14.2 |' in table  # the article's runtime beside ours
  ablations = (tmp_path / 'ablations.md').read_text()
  assert 'whole model: squeeze_unet' in ablations and 'sub-pixel shifted MACs' in ablations


def test_bad_arguments_fail_clearly(tmp_path):
  with pytest.raises(SystemExit, match='unknown model.*valid'):
    benchmark.main(['--models=resnet', f'--out={tmp_path}'])
  with pytest.raises(SystemExit, match='--threads 64'):
    benchmark.main(['--threads=64', f'--out={tmp_path}'])
  missing = tmp_path / 'missing'
  with pytest.raises(SystemExit, match='^error: no saved model at .*missing'):
    benchmark.main(['--models=edgesegnet', f'--checkpoint={missing}', f'--out={tmp_path}'])
