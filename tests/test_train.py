"""The distillation system end to end on :smoke configs (tiny data, a few steps).

Runs that several tests read are trained once: the teacher and an EdgeSegNet
run of 6 steps per session, by main.run (`conftest.py`), a 12-step run per module;
tests copy a workdir before changing it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import commands
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from smoke import smoke_config

from train import checkpoints, loop, teacher
from train.checkpoints import CheckpointError
from train.experiment import Experiment
from train.teacher import TeacherError

ROOT = commands.ROOT
# EdgeSegNet's run is shared (conftest) and runs in the fast tier; every other student's
# 6-step run is the slow tier's (their forward and backward passes: tests/test_models.py).
STUDENTS = (
  *(
    pytest.param(name, marks=pytest.mark.slow)
    for name in ('squeeze_unet', 'squeeze_unet_dsc', 'squeeze_unet_noskip', 'squeeze_encdec')
  ),
  pytest.param('l3unet', marks=pytest.mark.slow),
  'edgeseg',
)


@pytest.fixture(scope='module')
def edgeseg_12(shared, tmp_path_factory):
  """A straight 12-step EdgeSegNet run: what interrupted runs must reproduce."""
  workdir = tmp_path_factory.mktemp('edgeseg12')
  config = smoke_config(
    'edgeseg', shared, num_steps=12, eval_every=6, checkpoint_every=3, precise_bn_images=8
  )
  loop.train_and_evaluate(config, str(workdir))
  return workdir


def _params(workdir, step, item='params'):
  """The saved student parameters (or batch_stats) of `step`, as a flat list of arrays."""
  path = os.path.join(workdir, 'checkpoints', str(step), 'state')
  return jax.tree.leaves(ocp.PyTreeCheckpointer().restore(path)[item])


def _assert_same_params(a, b, step):
  """Same parameters and same (precise BN) statistics."""
  for item in ('params', 'batch_stats'):
    for x, y in zip(_params(a, step, item), _params(b, step, item), strict=True):
      np.testing.assert_array_equal(x, y)


def test_trained_teacher_loads_like_a_converted_fomm_checkpoint(shared):
  model, meta = checkpoints.restore_model(shared / 'teacher')
  assert meta['model'] == 'fomm_teacher' and meta['experiment']['task'] == 'supervised'
  assert meta['step'] in (3, 6) and model.scale_factor == 1.0  # the best by val loss
  config = smoke_config('edgeseg', shared)
  assert teacher.teacher_to_train(config) is None  # finished: no second training
  loaded, _ = teacher.load_teacher(config)
  assert loaded.scale_factor == 1.0
  for name in ('results.json', 'metrics.jsonl', 'loss_curves.png', 'val_keypoints.png'):
    assert (shared / 'teacher' / name).exists(), name


@pytest.mark.parametrize('name', STUDENTS)
def test_student_smoke_run(shared, tmp_path, request, name):
  if name == 'edgeseg':
    workdir, results = request.getfixturevalue('edgeseg_run')
  else:
    workdir, results = tmp_path, loop.train_and_evaluate(smoke_config(name, shared), str(tmp_path))
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
  assert json.loads((workdir / 'results.json').read_text()) == results
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  train = [r for r in records if r['split'] == 'train']
  assert [r['step'] for r in train] == [1, 2, 3, 4, 5, 6]
  assert {'loss_kp', 'loss_jacobian', 'grad_norm', 'lr'} <= set(train[0])
  assert [r['step'] for r in records if r['split'] == 'validation'] == [3, 6]
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['3', '6']
  assert (workdir / 'loss_curves.png').exists() and (workdir / 'val_keypoints.png').exists()


def test_resume_gives_the_same_parameters_as_a_straight_run(shared, edgeseg_12, tmp_path):
  overrides = {'eval_every': 6, 'checkpoint_every': 3, 'precise_bn_images': 8}
  loop.train_and_evaluate(smoke_config('edgeseg', shared, num_steps=6, **overrides), str(tmp_path))
  loop.train_and_evaluate(smoke_config('edgeseg', shared, num_steps=12, **overrides), str(tmp_path))
  _assert_same_params(edgeseg_12, tmp_path, 12)


def test_checkpoint_policy_keeps_the_last_steps_and_the_best(edgeseg_12):
  steps = sorted(int(s) for s in os.listdir(edgeseg_12 / 'checkpoints') if s.isdigit())
  reader = checkpoints.Reader(edgeseg_12)
  best = reader.best_step()
  assert best in (6, 12) and steps == sorted({9, 12, best})
  assert reader.meta(12)['experiment']['num_steps'] == 12


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
    f'--config.teacher.checkpoint={shared / "teacher"}',
    f'--config.num_steps={steps}',
    '--config.eval_every=6',
    '--config.checkpoint_every=3',
    '--config.precise_bn_images=8',
  ]


@pytest.mark.slow
def test_killed_run_resumes_to_identical_parameters(shared, edgeseg_12, tmp_path):
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
  assert 'resuming from step' in out and 'step 1 of 2' not in out  # the teacher is there
  _assert_same_params(edgeseg_12, killed, 12)
  # --mode=eval restores the best checkpoint and evaluates it.
  evaluated = _main('--config=configs/edgeseg.py:smoke', '--mode=eval', *_overrides(shared, killed))
  out, err = evaluated.communicate(timeout=300)
  assert evaluated.returncode == 0, err
  assert '(best by val loss)' in out
  assert json.loads((killed / 'eval_results.json').read_text())['step'] in (6, 12)


def test_main_run_trains_a_missing_teacher_first_then_the_student_then_evaluates(
  shared, edgeseg_run, tmp_path, capsys
):
  """In-process `main.run` (what main.py calls), as the session's runs were made
  (conftest.py): the teacher's config in its workdir, then the student; then --mode=eval
  restores the best checkpoint and evaluates it."""
  import main

  out = (shared / 'main_run.out').read_text()
  assert out.index('step 1 of 2') < out.index('fomm_teacher:') < out.index('step 2 of 2')
  assert (shared / 'teacher' / 'checkpoints' / '6').is_dir()
  assert (edgeseg_run[0] / 'results.json').exists()
  student = tmp_path / 'student'
  shutil.copytree(edgeseg_run[0], student)
  main.run(smoke_config('edgeseg', shared), str(student), 'eval')
  assert '(best by val loss)' in capsys.readouterr().out
  assert json.loads((student / 'eval_results.json').read_text())['step'] in (3, 6)


@pytest.mark.slow
def test_main_trains_a_missing_teacher_first_then_the_student(shared, tmp_path):
  """No recursion: main.py runs the teacher's config in its workdir, then the student."""
  process = _main(
    '--config=configs/l3unet.py:smoke',
    f'--workdir={tmp_path / "student"}',
    f'--config.data.data_dir={shared / "data"}',
    f'--config.teacher.checkpoint={tmp_path / "teacher"}',
  )
  out, err = process.communicate(timeout=300)
  assert process.returncode == 0, err
  assert out.index('step 1 of 2') < out.index('fomm_teacher:') < out.index('step 2 of 2')
  assert (tmp_path / 'teacher' / 'checkpoints' / '6').is_dir()
  assert (tmp_path / 'student' / 'results.json').exists()


def test_other_architecture_and_damaged_checkpoints_fail_clearly(shared, edgeseg_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(edgeseg_run[0], workdir)
  with pytest.raises(CheckpointError, match='holds another model.*name'):
    loop.train_and_evaluate(smoke_config('l3unet', shared), str(workdir))
  # A damaged step does not stop a resume (tests/test_faults.py), but another model does,
  # whichever step is read.
  shutil.rmtree(workdir / 'checkpoints' / '6' / 'state')
  with pytest.raises(CheckpointError, match='holds another model.*name'):
    loop.train_and_evaluate(smoke_config('l3unet', shared), str(workdir))


def test_warm_start_takes_the_other_runs_weights_and_refuses_another_model(
  shared, edgeseg_run, tmp_path, capsys
):
  """The start of a warm-started run (the loop's `_resume_or_start`): the other run's best
  weights and statistics. The whole run: the slow test below."""
  source = edgeseg_run[0]
  config = smoke_config('edgeseg', shared, init_from=str(source))
  experiment = Experiment(config, str(tmp_path / 'warm'))
  state = loop._resume_or_start(experiment)
  experiment.checkpoints.close()
  assert f'warm start from {source}' in capsys.readouterr().out
  model, _ = checkpoints.restore_model(source)
  for kind, got in ((nnx.Param, state.params), (nnx.BatchStat, state.batch_stats)):
    want = jax.tree.leaves(nnx.to_pure_dict(nnx.state(model, kind)))
    for a, b in zip(jax.tree.leaves(nnx.to_pure_dict(got)), want, strict=True):
      np.testing.assert_array_equal(a, b)
  assert int(state.step) == 0
  with pytest.raises(CheckpointError, match='holds another model'):
    loop.train_and_evaluate(
      smoke_config('squeeze_unet', shared, init_from=str(source)), str(tmp_path / 'wrong')
    )


@pytest.mark.slow
def test_warm_start_from_another_run_and_its_mismatch(shared, edgeseg_run, tmp_path):
  source = edgeseg_run[0]
  results = loop.train_and_evaluate(
    smoke_config('edgeseg', shared, init_from=str(source)), str(tmp_path / 'warm')
  )
  assert results['steps'] == 6
  with pytest.raises(CheckpointError, match='holds another model'):
    loop.train_and_evaluate(
      smoke_config('squeeze_unet', shared, init_from=str(source)), str(tmp_path / 'wrong')
    )


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
    teacher.teacher_to_train(config)
  with pytest.raises(TeacherError, match='tools.convert_fomm'):
    teacher.load_teacher(config)


def test_teacher_made_for_other_data_is_refused_unless_meant(shared):
  config = smoke_config('edgeseg', shared)
  path = str(shared / 'teacher')
  meta = teacher._latest_meta(path)
  assert meta['provenance']['kind'] == 'trained'
  assert meta['provenance']['build'].startswith('synthetic_faces/')
  teacher.check_provenance(config, meta, path)  # its own data: fine
  real = config.copy_and_resolve_references()
  real.data.name = 'frames'
  with pytest.raises(TeacherError, match='trained here on synthetic_faces.* the data is frames;'):
    teacher.check_provenance(real, meta, path)
  other = config.copy_and_resolve_references()
  other.data.seed = 1  # another build of the synthetic set
  with pytest.raises(TeacherError, match='delete it to retrain it on this data'):
    teacher.check_provenance(other, meta, path)
  old = {k: v for k, v in meta.items() if k != 'provenance'}  # a teacher saved before provenance
  with pytest.raises(TeacherError, match='does not record what it was trained on'):
    teacher.check_provenance(config, old, path)
  other.teacher.allow_other_data = True
  teacher.check_provenance(other, old, path)

  # A run resumes only on the data it was trained on.
  experiment = Experiment(config)
  experiment.check_same_data(meta, 'the workdir')
  with pytest.raises(CheckpointError, match='was trained on synthetic_faces/x/2.0.0, but the data'):
    experiment.check_same_data({'provenance': {'build': 'synthetic_faces/x/2.0.0'}}, 'the workdir')
