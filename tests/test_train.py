"""The distillation system end to end on :smoke configs (tiny data, a few steps)."""

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from models import checkpoint as saved_models
from train import loop
from train.checkpoints import CheckpointError
from train.config_checks import ConfigError, validate
from train.teacher import TeacherError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDENTS = (
  'squeeze_unet',
  'squeeze_unet_dsc',
  'squeeze_unet_noskip',
  'squeeze_encdec',
  'l3unet',
  'edgeseg',
)


def smoke_config(name, shared):
  config = importlib.import_module(f'configs.{name}').get_config('smoke')
  config.data.data_dir = str(shared / 'data')
  config.teacher.checkpoint = str(shared / 'teacher' / 'model')
  return config


@pytest.fixture(scope='module')
def shared(tmp_path_factory):
  """A tiny dataset and a smoke teacher, trained once for the whole module."""
  shared = tmp_path_factory.mktemp('shared')
  config = smoke_config('teacher', shared)
  config.export_model = str(shared / 'teacher' / 'model')
  results = loop.train_and_evaluate(config, str(shared / 'teacher'))
  assert results['task'] == 'supervised'
  return shared


def _params(workdir, step):
  """The saved student parameters of `step`, as a flat list of arrays."""
  path = os.path.join(workdir, 'checkpoints', str(step), 'state')
  return jax.tree.leaves(ocp.PyTreeCheckpointer().restore(path)['params'])


def test_teacher_export_loads_like_a_converted_fomm_checkpoint(shared):
  teacher, meta = saved_models.load_model(shared / 'teacher' / 'model')
  assert meta['model'] == 'fomm_teacher' and meta['trained_by'] == 'train.loop'
  assert teacher.scale_factor == 1.0
  for name in ('results.json', 'metrics.jsonl', 'loss_curves.png', 'val_keypoints.png'):
    assert (shared / 'teacher' / name).exists(), name


@pytest.mark.parametrize('name', STUDENTS)
def test_student_smoke_run(shared, tmp_path, name):
  results = loop.train_and_evaluate(smoke_config(name, shared), str(tmp_path))
  for key in (
    'train_loss',
    'val_loss',
    'val_distance',
    'params',
    'mult_adds_m',
    'student_gt_distance',
    'teacher_gt_distance',
  ):
    assert np.isfinite(results[key]), key
  assert json.loads((tmp_path / 'results.json').read_text()) == results
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  train = [r for r in records if r['split'] == 'train']
  assert [r['step'] for r in train] == [1, 2, 3, 4, 5, 6]
  assert {'loss_kp', 'loss_jacobian', 'grad_norm', 'lr'} <= set(train[0])
  assert [r['step'] for r in records if r['split'] == 'validation'] == [3, 6]
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3', '6']
  assert (tmp_path / 'loss_curves.png').exists() and (tmp_path / 'val_keypoints.png').exists()


def test_resume_gives_the_same_parameters_as_a_straight_run(shared, tmp_path):
  straight = tmp_path / 'straight'
  loop.train_and_evaluate(smoke_config('edgeseg', shared), str(straight))
  resumed = tmp_path / 'resumed'
  config = smoke_config('edgeseg', shared)
  config.num_steps = 3
  loop.train_and_evaluate(config, str(resumed))
  loop.train_and_evaluate(smoke_config('edgeseg', shared), str(resumed))
  for a, b in zip(_params(straight, 6), _params(resumed, 6), strict=True):
    np.testing.assert_array_equal(a, b)


def _main(*args, env=None, **kwargs):
  return subprocess.Popen(
    [sys.executable, os.path.join(ROOT, 'main.py'), *args],
    cwd=ROOT,
    env={**os.environ, **(env or {})},
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    **kwargs,
  )


def _overrides(shared, workdir, steps=12):
  return [
    f'--workdir={workdir}',
    f'--config.data.data_dir={shared / "data"}',
    f'--config.teacher.checkpoint={shared / "teacher" / "model"}',
    f'--config.num_steps={steps}',
    '--config.eval_every=6',
    '--config.checkpoint_every=3',
  ]


def test_killed_run_resumes_to_identical_parameters(shared, tmp_path):
  straight = tmp_path / 'straight'
  config = smoke_config('edgeseg', shared)
  config.update({'num_steps': 12, 'eval_every': 6, 'checkpoint_every': 3})
  loop.train_and_evaluate(config, str(straight))

  killed = tmp_path / 'killed'
  process = _main('--config=configs/edgeseg.py:smoke', *_overrides(shared, killed))
  deadline = time.time() + 240
  while not (killed / 'checkpoints' / '3').is_dir():  # renamed into place when complete
    assert process.poll() is None and time.time() < deadline, process.communicate()
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not (killed / 'checkpoints' / '12').exists()
  finished = _main('--config=configs/edgeseg.py:smoke', *_overrides(shared, killed))
  out, err = finished.communicate(timeout=300)
  assert finished.returncode == 0, err
  assert 'resuming from step' in out
  for a, b in zip(_params(straight, 12), _params(killed, 12), strict=True):
    np.testing.assert_array_equal(a, b)
  # --mode=eval restores the best checkpoint and evaluates it.
  evaluated = _main('--config=configs/edgeseg.py:smoke', '--mode=eval', *_overrides(shared, killed))
  out, err = evaluated.communicate(timeout=300)
  assert evaluated.returncode == 0, err
  assert '(best by val loss)' in out
  assert json.loads((killed / 'eval_results.json').read_text())['step'] in (6, 12)


def test_data_parallel_on_two_devices_matches_one(shared, tmp_path):
  runs = {}
  for devices in (1, 2):
    workdir = tmp_path / f'devices{devices}'
    env = {'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'}
    process = _main(
      '--config=configs/squeeze_unet.py:smoke', *_overrides(shared, workdir, steps=4), env=env
    )
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    lines = (workdir / 'metrics.jsonl').read_text().splitlines()
    runs[devices] = [json.loads(line) for line in lines]
  assert [r['step'] for r in runs[1]] == [r['step'] for r in runs[2]]
  # Step 1 sees the same weights and batch: only the order of float reductions
  # (BatchNorm statistics, gradients) differs. Adam's normalised updates then
  # amplify those ulp-level differences a little, step by step.
  np.testing.assert_allclose(runs[1][0]['loss'], runs[2][0]['loss'], rtol=1e-5)
  for one, two in zip(runs[1], runs[2], strict=True):
    np.testing.assert_allclose(one['loss'], two['loss'], rtol=1e-2)


@pytest.mark.parametrize(
  'key,value,message',
  [
    ('optim.lr', -1.0, 'optim.lr must be positive'),
    ('batch_size', 0, 'batch_size must be positive'),
    ('optim.milestones', (10,), 'must lie inside (0, num_steps=6)'),
    ('loss.kp', -0.5, 'loss.kp must be >= 0'),
    ('data.image_size', 72, 'cannot be downsampled'),
    ('model.fold', 3, 'multiples of 24'),
  ],
)
def test_bad_config_values_fail_with_one_line(shared, key, value, message):
  config = smoke_config('l3unet', shared)
  section, _, leaf = key.rpartition('.')
  (config[section] if section else config)[leaf] = value
  with pytest.raises(ConfigError) as error:
    validate(config)
  assert message in str(error.value) and '\n' not in str(error.value)


def test_cli_rejects_typos_and_bad_values_clearly(shared, tmp_path):
  typo = _main(
    '--config=configs/edgeseg.py:smoke', '--config.optim.lrr=1e-3', f'--workdir={tmp_path}'
  )
  _, err = typo.communicate(timeout=120)
  assert typo.returncode != 0 and 'lrr' in err
  bad = _main('--config=configs/edgeseg.py:smoke', '--config.optim.lr=-1', f'--workdir={tmp_path}')
  _, err = bad.communicate(timeout=120)
  assert bad.returncode == 1
  assert err.strip().splitlines()[-1] == 'error: config: optim.lr must be positive, got -1.0.'
  assert not (tmp_path / 'checkpoints').exists()


def test_other_architecture_and_damaged_checkpoints_fail_clearly(shared, tmp_path):
  loop.train_and_evaluate(smoke_config('edgeseg', shared), str(tmp_path))
  with pytest.raises(CheckpointError, match='holds another model.*name'):
    loop.train_and_evaluate(smoke_config('l3unet', shared), str(tmp_path))
  shutil.rmtree(tmp_path / 'checkpoints' / '6' / 'state')
  with pytest.raises(CheckpointError, match='6 cannot be restored.*delete that folder'):
    loop.train_and_evaluate(smoke_config('edgeseg', shared), str(tmp_path))


def test_warm_start_from_another_run_and_its_mismatch(shared, tmp_path):
  source = tmp_path / 'source'
  loop.train_and_evaluate(smoke_config('edgeseg', shared), str(source))
  config = smoke_config('edgeseg', shared)
  config.init_from = str(source)
  results = loop.train_and_evaluate(config, str(tmp_path / 'warm'))
  assert results['steps'] == 6
  config = smoke_config('squeeze_unet', shared)
  config.init_from = str(source)
  with pytest.raises(CheckpointError, match='holds another model'):
    loop.train_and_evaluate(config, str(tmp_path / 'wrong'))


def test_nan_loss_stops_before_saving(shared, tmp_path):
  config = smoke_config('edgeseg', shared)
  config.optim.lr = 1e30
  with pytest.raises(loop.TrainingError, match='non-finite training loss at step'):
    loop.train_and_evaluate(config, str(tmp_path))
  saved = os.listdir(tmp_path / 'checkpoints') if (tmp_path / 'checkpoints').exists() else []
  assert all(int(step) < 3 for step in saved if step.isdigit())


def test_no_teacher_for_real_frames_says_how_to_get_one(shared, tmp_path):
  config = smoke_config('edgeseg', shared)
  config.teacher.checkpoint = str(tmp_path / 'missing')
  config.data.name = 'frames'
  with pytest.raises(TeacherError, match='tools.convert_fomm'):
    loop.teacher.obtain_teacher(config)


def test_report_and_outliers_read_a_finished_run(shared, tmp_path, capsys):
  from flax import nnx

  from train import outliers, report
  from train.checkpoints import Checkpoints

  config = smoke_config('edgeseg', shared)
  workdir = str(tmp_path / 'edge')
  loop.train_and_evaluate(config, workdir)
  report.main([workdir, str(shared / 'teacher')])
  out = capsys.readouterr().out
  assert '| edgesegnet |' in out and '| 0.0016 | 0.0039 | 0.0077 |' in out
  assert 'fomm_teacher (teacher)' in out

  # The shared loader restores exactly what was saved, in eval mode.
  step = config.num_steps
  model, meta = Checkpoints(os.path.join(workdir, 'checkpoints'), keep=10).load_model(step)
  assert meta['step'] == step and model.residual.norm_in.use_running_average
  restored = jax.tree.leaves(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  for got, saved in zip(restored, _params(workdir, step), strict=True):
    np.testing.assert_array_equal(got, saved)

  found = outliers.inspect(workdir, step)
  assert len(found['running']) == len(found['batch']) == config.data.validation_size
  assert np.all(np.isfinite(found['running'])) and np.all(found['running'] > 0)
  assert [path for _, path, _ in found['variances']] and len(found['variances']) == 3
  assert found['variances'] == sorted(found['variances'])
  dead, total = found['dead_channels']
  assert 0 <= dead <= total == 8 + 72 + 72  # EdgeSegNet's three BatchNorms
  outliers.main(['--workdir', workdir, '--step', str(step), '--top', '2'])
  out = capsys.readouterr().out
  assert f'checkpoint step {step}' in out and 'running statistics' in out
  with pytest.raises(SystemExit, match=r'no checkpoint of step 99999 .*steps held: '):
    outliers.main(['--workdir', workdir, '--step', '99999'])
  with pytest.raises(SystemExit, match='has no checkpoints/ folder'):
    outliers.main(['--workdir', str(tmp_path / 'missing')])
  shutil.rmtree(os.path.join(workdir, 'checkpoints', str(step), 'state'))
  with pytest.raises(SystemExit, match=rf'^error: checkpoint .*{step}/state cannot be restored'):
    outliers.main(['--workdir', workdir, '--step', str(step)])


def test_default_workdir_is_named_after_the_config_file(shared, tmp_path):
  process = subprocess.run(
    [
      sys.executable,
      '-c',
      (
        'import sys; sys.argv = ["main.py", "--config=configs/edgeseg.py:smoke"]; '
        'from absl import flags; import main; flags.FLAGS(sys.argv); print(main._default_workdir())'
      ),
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=True,
  )
  assert process.stdout.strip() == os.path.join('workdirs', 'edgeseg')
