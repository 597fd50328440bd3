"""The tools that read a finished run: tools.report's table, train.outliers (and its
command), and their one line for a damaged checkpoint; on the session's EdgeSegNet run."""

import os
import shutil

import commands
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from train import checkpoints
from train.checkpoints import CheckpointError


def _params(workdir, step):
  path = os.path.join(workdir, 'checkpoints', str(step), 'state')
  return jax.tree.leaves(ocp.PyTreeCheckpointer().restore(path)['params'])


def _tool(*args):
  return commands.run('-m', *args)


def test_report_and_outliers_read_a_finished_run(shared, edgeseg_run, capsys):
  from train import outliers

  workdir = edgeseg_run[0]
  # tools.report in-process on the runs, as a subprocess on a missing one (its wiring).
  assert commands.in_process('tools.report', str(workdir), str(shared / 'teacher')) is None
  out = capsys.readouterr().out
  assert '| edgesegnet |' in out and '| 0.0016 | 0.0039 | 0.0077 |' in out
  assert 'fomm_teacher (teacher)' in out
  missing = _tool('tools.report', str(shared / 'missing'))
  assert commands.last_error_line(missing).startswith('error: no results.json in')

  # The shared loader restores exactly what was saved, in eval mode.
  step = 6
  model, meta = checkpoints.restore_model(workdir, step)
  assert meta['step'] == step and model.residual.norm_in.use_running_average
  restored = jax.tree.leaves(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  for got, saved in zip(restored, _params(workdir, step), strict=True):
    np.testing.assert_array_equal(got, saved)

  found = outliers.inspect(str(workdir), step)
  assert len(found['running']) == len(found['batch']) == 16  # the smoke validation split
  assert np.all(np.isfinite(found['running'])) and np.all(found['running'] > 0)
  assert [path for _, path, _ in found['variances']] and len(found['variances']) == 3
  assert found['variances'] == sorted(found['variances'])
  dead, total = found['dead_channels']
  assert 0 <= dead <= total == 8 + 72 + 72  # EdgeSegNet's three BatchNorms
  # The command's wiring, both flag forms (--flag=value and --flag value); its whole
  # output: the slow test below.
  line = commands.last_error_line(_tool('tools.outliers', '--workdir', str(workdir), '--step=99'))
  assert line.startswith('error: no checkpoint of step 99 ')
  under = found['perturbed']
  assert set(under) == {'none', *outliers.PERTURBATIONS}
  assert all(np.all(np.isfinite(v['largest'])) and len(v['kp_shift']) == 16 for v in under.values())
  assert under['none']['kp_shift'].max() == 0 and under['noise']['kp_shift'].max() > 0
  with pytest.raises(CheckpointError, match=r'^no checkpoint of step 99999 .*steps held: '):
    outliers.inspect(str(workdir), 99999)
  with pytest.raises(CheckpointError, match='^no checkpoints at '):
    outliers.inspect(str(shared / 'missing'))


@pytest.mark.slow
def test_outliers_command_prints_its_tables(edgeseg_run):
  workdir, step = edgeseg_run[0], 6
  cli = _tool('tools.outliers', '--workdir', str(workdir), f'--step={step}', '--top', '2')
  assert cli.returncode == 0, cli.stderr
  assert f'checkpoint step {step}' in cli.stdout and 'running statistics' in cli.stdout
  assert 'Gaussian blur, sigma 1 pixel' in cli.stdout and 'INFO' not in cli.stderr


def _damaged_copy(edgeseg_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(edgeseg_run[0], workdir)
  shutil.rmtree(workdir / 'checkpoints' / '6' / 'state')
  return workdir


def test_damaged_state_is_one_clear_error_for_the_tools(edgeseg_run, tmp_path):
  from train import outliers

  workdir = _damaged_copy(edgeseg_run, tmp_path)
  with pytest.raises(CheckpointError) as error:
    outliers.inspect(str(workdir), 6)
  message = str(error.value)
  # Asked for by number: an error, not a fallback, and the data is not for deleting.
  assert message.startswith(f'checkpoint {workdir}/checkpoints/6/state cannot be restored')
  assert message.endswith('; pick another step, or none to use the newest one that restores.')
  assert '\n' not in message and 'delete' not in message


@pytest.mark.slow
def test_damaged_state_is_one_line_for_the_tools(edgeseg_run, tmp_path):
  workdir = _damaged_copy(edgeseg_run, tmp_path)
  line = commands.last_error_line(_tool('tools.outliers', f'--workdir={workdir}', '--step=6'))
  assert line.startswith(f'error: checkpoint {workdir}/checkpoints/6/state cannot be restored')
