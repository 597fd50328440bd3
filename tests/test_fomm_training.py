"""FOMM trained here (configs/fomm.py:smoke): the run, its outputs, resume, its config checks."""

import json
import os
import pathlib
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

from configs import fomm as fomm_config
from train import checkpoints, config_checks, loop


def _config(data_dir, **overrides):
  config = fomm_config.get_config('smoke')
  config.data.data_dir = str(data_dir)
  config.update(overrides)
  return config


@pytest.fixture(scope='module')
def fomm_run(tmp_path_factory):
  """A 12-step smoke run: (workdir, results, data folder)."""
  root = tmp_path_factory.mktemp('fomm')
  results = loop.train_and_evaluate(_config(root / 'data'), str(root / 'run'))
  return root / 'run', results, root / 'data'


def test_a_smoke_run_lowers_its_loss_and_writes_its_scores_pictures_and_networks(fomm_run):
  workdir, results, _ = fomm_run
  assert results['steps'] == 12 and results['task'] == 'fomm'
  for key in ('reconstruction_l1', 'landmark_error', 'landmark_error_interocular'):
    assert np.isfinite(results[key]), key
  assert json.loads((workdir / 'results.json').read_text()) == results
  for name in ('loss_curves.png', 'val_reconstruction.png'):
    assert (workdir / name).stat().st_size > 1000
  records = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  validations = [r for r in records if r['split'] == 'validation']
  assert [r['step'] for r in validations] == [6, 12]
  terms = {'loss_reconstruction', 'loss_equivariance_value', 'loss_equivariance_jacobian'}
  assert terms <= set(records[0])
  losses = [r['loss'] for r in records if r['split'] == 'train']
  assert np.mean(losses[-4:]) < 0.9 * np.mean(losses[:4]), losses
  # The networks as model folders: the detector is a zoo detector, the generator FOMM's.
  detector, meta = checkpoints.restore_model(workdir / 'detector')
  assert meta['model'] == 'fomm_teacher' and meta['trained_as'] == 'fomm'
  generator, _ = checkpoints.restore_model(workdir / 'generator')
  frames = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)

  @jax.jit
  def animate(detector, generator, frames):
    detector, generator = nnx.merge(*detector), nnx.merge(*generator)
    kp = detector(frames)
    return generator(frames, kp, kp)['prediction']

  assert animate(nnx.split(detector), nnx.split(generator), frames).shape == frames.shape


def test_the_training_workdir_points_readers_to_its_networks(fomm_run):
  with pytest.raises(checkpoints.CheckpointError, match='detector/ or generator/ folder'):
    checkpoints.restore_model(fomm_run[0])


@pytest.mark.slow  # the loop's resume is in the fast tier for students (tests/test_train.py)
def test_an_interrupted_run_resumes_bit_identical(fomm_run, tmp_path):
  workdir, results, data = fomm_run
  # Stopped at step 6, then resumed to step 12: the same weights as the straight run.
  loop.train_and_evaluate(_config(data, num_steps=6), str(tmp_path))
  resumed = loop.train_and_evaluate(_config(data), str(tmp_path))
  assert resumed['reconstruction_l1'] == results['reconstruction_l1']
  straight = checkpoints.Reader(workdir / 'detector').weights(0)
  again = checkpoints.Reader(tmp_path / 'detector').weights(0)
  jax.tree.map(np.testing.assert_array_equal, straight, again)


def test_the_second_study_scores_students_by_the_animation(fomm_run, shared, edgeseg_run, tmp_path):
  """train.study_fomm in-process: the teacher's scores and regression, a student's, the summary."""
  from data import clip_pairs, pipeline
  from train import animation, study, study_fomm

  workdir, _, data = fomm_run
  config = _config(data)
  clips = clip_pairs.clip_frames(pipeline.prepare(config.data), 'test')
  clips = {f'clip{i}': video for i, video, _ in clips}
  teacher, _ = animation.load_detector(workdir / 'detector')
  generator, _ = animation.load_generator(workdir / 'generator')
  landmarks, _ = animation.load_detector(shared / 'teacher')  # the supervised smoke teacher
  own = study_fomm.score(generator, [teacher], clips, landmarks)[0]
  assert own['kp_distance_to_teacher'] == 0 and own['frames'] == 2 * 6
  (workdir / study_fomm.ANIMATION_FILE).write_text(json.dumps(own))
  entries = [f'learnt={workdir}/detector', f'supervised={shared}/teacher', 'random']
  detectors = dict(study_fomm.detector_entry(e, config) for e in entries)
  report = study_fomm.landmark_report(detectors, config)
  assert report['fit_frames'] == 8 * 3 and report['held_out_frames'] == 2 * 6
  (workdir / study_fomm.REGRESSION_FILE).write_text(json.dumps(report))
  # A student (the shared EdgeSegNet smoke run) replacing the teacher: scored once.
  run = tmp_path / 'runs' / 'edgeseg_L1_seed0'
  shutil.copytree(edgeseg_run[0], run)
  scores = study_fomm.score_run(str(run), teacher, generator, clips, landmarks)
  assert scores['kp_distance_to_teacher'] > 0 and np.isfinite(scores['animated_kp_error'])
  assert study_fomm.score_run(str(run), None, None, {}, None) == scores  # read back, not rerun
  runs = study.select(['edgeseg_L1_seed0'], study.FOMM_PLAN)
  path = study.write_summary(runs, str(tmp_path / 'runs'), str(workdir), str(tmp_path / 'out'))
  teacher_record, student = json.loads(pathlib.Path(path).read_text())['runs']
  assert teacher_record['role'] == 'teacher' and teacher_record['steps'] == 12
  keys = ['landmark_regression_error', 'random_landmark_regression_error']
  keys += ['supervised_landmark_regression_error', 'reconstruction_l1', 'animated_kp_error']
  for key in keys:
    assert np.isfinite(teacher_record[key]), key
  assert student['reconstruction_l1'] == scores['reconstruction_l1']
  assert student['animated_kp_error'] == scores['animated_kp_error']


def test_the_animation_sheet_shows_each_detector_reconstructing_and_animating(fomm_run, tmp_path):
  """tools.animation_sheet in-process: a picture; its refusals are one line."""
  from commands import in_process, one_line

  workdir, _, _ = fomm_run
  out = tmp_path / 'sheet.png'
  args = [f'--run={workdir}', '--frames=3', f'--out={out}']
  assert in_process('tools.animation_sheet', *args, f'--detector=again={workdir}/detector') is None
  assert out.stat().st_size > 10_000
  refused = one_line(in_process('tools.animation_sheet', *args))
  assert refused == f'error: {out} already exists; choose another --out or delete it first.'
  line = one_line(
    in_process('tools.animation_sheet', f'--run={tmp_path}', f'--out={tmp_path}/b.png')
  )
  assert line.startswith(f'error: {tmp_path} has no config.json; pass the workdir of a finished')
  line = one_line(in_process('tools.animation_sheet', *args[:-1], f'--out={tmp_path}/c.png',
                             f'--detector={workdir}'))  # fmt: skip
  assert line.startswith('error: ') and 'detector/ or generator/ folder' in line


@pytest.mark.parametrize(
  'overrides, message',
  [
    ({'data': {'name': 'synthetic_faces'}}, 'data.name must be synthetic_face_clips'),
    ({'loss': {'pixel': 'l2'}}, "loss.pixel='l2'; valid: l1, ssim"),
    ({'loss': {'scales': (1.0, 0.3)}}, 'scale_factor must be 1/n'),
    ({'regression_clips': 2}, 'needs at least 21 training frames'),
    ({'transform': {'points_tps': 1}}, 'transform.points_tps must be >= 2'),
    # 64x64 frames, dense motion at 32x32 halved six times: the generator says what it needs.
    ({'generator': {'dense_motion_num_blocks': 6}}, 'multiples of 128'),
    ({'loss': {'pixle': 'l1'}}, 'unknown field loss.pixle'),
    ({'loss': {'vgg19': '/no/such/vgg19.pth'}}, 'is not a file'),
    ({'data': {'train_size': 3000, 'frames_per_clip': 32, 'image_size': 64}}, 'over the 1,000 MiB'),
  ],
)
def test_bad_fomm_configs_fail_in_one_line(overrides, message, tmp_path):
  config = _config(tmp_path)
  for group, value in overrides.items():
    if isinstance(value, dict):
      config[group].update(value)
    else:
      config[group] = value
  with pytest.raises(config_checks.ConfigError, match=message.replace('(', r'\(')) as error:
    config_checks.validate(config)
  assert '\n' not in str(error.value)


def test_the_vgg19_option_reads_a_torchvision_state_dict(tmp_path):
  """FOMM's perceptual loss, given weights by path (here random ones, in torchvision's keys)."""
  import torch

  from models.vgg19 import Vgg19Features
  from train import vgg19_weights

  reference = Vgg19Features(rngs=nnx.Rngs(1))
  state = {}
  for index, conv in reference.convs.items():
    state[f'features.{index}.weight'] = torch.from_numpy(
      np.asarray(conv.kernel[...]).transpose(3, 2, 0, 1).copy()
    )
    state[f'features.{index}.bias'] = torch.from_numpy(np.asarray(conv.bias[...]).copy())
  state['classifier.0.weight'] = torch.zeros(4, 4)  # ignored
  torch.save(state, tmp_path / 'vgg19.pth')
  loaded = vgg19_weights.load(tmp_path / 'vgg19.pth')
  frames = np.random.default_rng(0).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  for a, b in zip(loaded(frames), reference(frames), strict=True):
    np.testing.assert_array_equal(a, b)
  del state['features.28.bias']
  torch.save(state, tmp_path / 'partial.pth')
  with pytest.raises(vgg19_weights.Vgg19WeightsError, match='has no features.28.bias'):
    vgg19_weights.load(tmp_path / 'partial.pth')
  with pytest.raises(vgg19_weights.Vgg19WeightsError, match='no VGG19 weights file'):
    vgg19_weights.load(tmp_path / 'missing.pth')


@pytest.mark.slow
def test_the_second_study_command_skips_resumes_and_scores(fomm_run, shared, tmp_path):
  """`tools.study --plan=fomm` on two tiny runs: one stopped at step 3, one not started."""
  from commands import run

  workdir, _, _ = fomm_run

  def study_command(runs, *extra):
    return run(
      '-m', 'tools.study', '--plan=fomm', f'--runs={runs}', f'--dir={tmp_path / "runs"}',
      f'--out={tmp_path / "out"}', f'--teacher={workdir}', f'--landmarks={shared / "teacher"}',
      '--variant=smoke', f'--override=--config.data.data_dir={shared / "data"}', *extra,
      timeout=900,
    )  # fmt: skip

  first = study_command('edgeseg_L1_seed0', '--override=--config.num_steps=3')
  assert first.returncode == 0, first.stderr[-2000:]
  os.remove(tmp_path / 'runs' / 'edgeseg_L1_seed0' / 'results.json')
  os.remove(tmp_path / 'runs' / 'edgeseg_L1_seed0' / 'animation.json')
  both = study_command('edgeseg_L1_seed0,squeeze_unet_L1_seed0')
  assert both.returncode == 0, both.stderr[-2000:]
  assert '[1/2] edgeseg_L1_seed0 (partial (step 3))' in both.stdout
  assert 'resuming from step 3' in both.stdout
  assert f'--config.teacher.checkpoint={workdir}/detector' in both.stdout
  summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())['runs']
  assert [r['role'] for r in summary] == ['teacher', 'student', 'student']
  for record in summary:
    assert np.isfinite(record['reconstruction_l1']) and np.isfinite(record['animated_kp_error'])
  assert 'landmark_regression_error' in summary[0]
  again = study_command('edgeseg_L1_seed0,squeeze_unet_L1_seed0')
  assert again.returncode == 0 and '2 of 2 runs finished, 0 to do' in again.stdout


@pytest.mark.slow  # eager PyTorch steps; the fast tier checks the twin's loss (test_fomm_losses)
def test_the_training_throughput_comparison_times_both_frameworks(fomm_run):
  """bench.fomm_training on the smoke step (the same program as the run's: a cache hit)."""
  from bench import fomm_training

  found = fomm_training.compare(_config(fomm_run[2]), runs=1, rounds=1, warmup=(1, 0))
  for name in ('jax', 'pytorch'):
    assert found[name]['pairs_per_s'] > 0 and found[name]['median_s'] > 0
  assert found['jax_speedup'] == found['pytorch']['median_s'] / found['jax']['median_s']
  traced = fomm_training.profile(_config(fomm_run[2]), steps=1)
  assert traced.wall_us > 0 and traced.busy_us > 0 and traced.families
