"""Runs the whole study, one normal main.py run after another, resumable across sittings.

  python -m tools.study                     # every run of train.study.PLAN
  python -m tools.study --status            # what is finished, partial, not started
  python -m tools.study --runs=edgeseg_L1_seed0,l3unet_L1_seed1
  python -m tools.study --plan=fomm          # the second study: from the FOMM trained here

Finished runs are skipped, a killed one resumes from its checkpoints, and
OUT/summary.json (with each finished run's results.json and metrics.jsonl
under OUT/runs/) is rewritten after every run; `python -m tools.report
--study=OUT` turns it into the tables and pictures of docs/results.md. Every
run uses its config's `:study` variant (configs/base.py: the study's
schedule); the shared teacher (`configs/teacher.py:study`, in
workdirs/teacher_study) is trained first, by main.py, in the first run.

`--plan=fomm` is the second study (train.study.FOMM_PLAN, in workdirs/study_fomm and
docs/study_fomm): the students distil the detector of FOMM's training run
(`--teacher`, default workdirs/fomm, trained by `python main.py --config=configs/fomm.py`)
on synthetic_faces, and each finished run is also scored driving that run's
generator on the held-out clips (train.study_fomm); the teacher's own scores and its
landmark regression (learnt, random, supervised) are computed first, once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import flags

from tools import cli

_PLAN = flags.DEFINE_enum('plan', 'article', ['article', 'fomm'], 'which study (see above)')
_DIR = flags.DEFINE_string('dir', None, "where the runs' workdirs go (workdirs/study[_fomm])")
_OUT = flags.DEFINE_string('out', None, 'where summary.json and the results go (docs/study[_fomm])')
_TEACHER = flags.DEFINE_string(
  'teacher',
  None,
  "the teacher every run distils (default: the variant's, trained by the first run; for "
  '--plan=fomm, the FOMM training workdir, default workdirs/fomm)',
)
_LANDMARKS = flags.DEFINE_string(
  'landmarks', 'workdirs/teacher_study', '--plan=fomm: the supervised landmark model (AKD)'
)
_VARIANT = flags.DEFINE_string('variant', 'study', 'config argument of every run (smoke: tests)')
_RUNS = flags.DEFINE_list('runs', [], 'names of the runs to do (default: the whole plan)')
_OVERRIDE = flags.DEFINE_multi_string(
  'override', [], 'a --config.* override added to every run, e.g. --override=--config.batch_size=8'
)
_STATUS = flags.DEFINE_bool('status', False, "print each run's state and exit")


# main.py and configs/ are found from the project root, whatever the caller's folder.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _minutes(seconds: float) -> str:
  return f'{seconds / 60:.1f} min'


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from train import study

  fomm = _PLAN.value == 'fomm'
  suffix = '_fomm' if fomm else ''
  try:
    runs = study.select(_RUNS.value, study.PLANS[_PLAN.value])
    # a config's teacher folder is relative to the project root, where main.py runs
    default = 'workdirs/fomm' if fomm else study.default_teacher(runs[0], _VARIANT.value)
    teacher = _TEACHER.value or os.path.join(_ROOT, default)
  except ValueError as error:  # an unknown run name or config variant
    sys.exit(f'error: {error}')
  directory = os.path.abspath(_DIR.value or f'workdirs/study{suffix}')
  teacher, out = os.path.abspath(teacher), os.path.abspath(_OUT.value or f'docs/study{suffix}')
  workdirs = {run.name: os.path.join(directory, run.name) for run in runs}
  if _STATUS.value:
    print(f'{"teacher (" + os.path.relpath(teacher) + ")":32s} {study.status(teacher)}')
    for run in runs:
      print(f'{run.name:32s} {study.status(workdirs[run.name])}')
    return
  todo = [run for run in runs if not study.is_finished(workdirs[run.name])]
  print(
    f'study: {len(runs) - len(todo)} of {len(runs)} runs finished, {len(todo)} to do', flush=True
  )
  overrides, score = _OVERRIDE.value, None
  if fomm:
    # The students read the teacher's detector on synthetic_faces, not on its clips.
    overrides = [*overrides, '--config.teacher.allow_other_data=True']
    score = _fomm_scoring(teacher)
  started = time.time()
  for done, run in enumerate(todo):
    workdir = workdirs[run.name]
    args = run.command(workdir, os.path.join(teacher, 'detector') if fomm else teacher,
                       _VARIANT.value, overrides)  # fmt: skip
    eta = (
      ''
      if not done
      else f', about {_minutes((time.time() - started) / done * (len(todo) - done))} left'
    )
    print(f'\n[{done + 1}/{len(todo)}] {run.name} ({study.status(workdir)}{eta})', flush=True)
    print(f'  python {" ".join(args)}', flush=True)
    try:
      result = subprocess.run([sys.executable, *args], cwd=_ROOT, check=False)
    except KeyboardInterrupt:
      study.write_summary(runs, directory, teacher, out)
      sys.exit(f'\nstopped during {run.name}; its checkpoints are kept: rerun to resume.')
    if score and result.returncode == 0:
      score(workdir)
    path = study.write_summary(runs, directory, teacher, out)
    if result.returncode != 0:
      sys.exit(
        f'error: {run.name} failed (exit status {result.returncode}); its checkpoints and the '
        f'finished runs are kept ({path}); fix the cause and rerun to continue.'
      )
  if score:  # runs finished in an earlier sitting, before they were scored
    for run in runs:
      if study.is_finished(workdirs[run.name]):
        score(workdirs[run.name])
  path = study.write_summary(runs, directory, teacher, out)
  print(f'study: all {len(runs)} runs finished in this selection; wrote {path}', flush=True)


def _fomm_scoring(fomm_workdir: str):
  """The FOMM run's own scores (once), and a function that scores one finished student run."""
  import ml_collections

  from data import clip_pairs, pipeline
  from train import animation, study_fomm

  if not os.path.isfile(os.path.join(fomm_workdir, 'results.json')):
    sys.exit(
      f'error: no finished FOMM run at {fomm_workdir}; train it first (python main.py '
      '--config=configs/fomm.py) or pass its workdir as --teacher.'
    )
  try:
    # The held-out clips of the FOMM run's own data (its config.json).
    with open(os.path.join(fomm_workdir, 'config.json')) as f:
      config = ml_collections.ConfigDict(json.load(f))
    builder = pipeline.prepare(config.data)
    clips = {f'clip{i:05d}': video for i, video, _ in clip_pairs.clip_frames(builder, 'test')}
    teacher, _ = animation.load_detector(os.path.join(fomm_workdir, 'detector'))
    generator, _ = animation.load_generator(os.path.join(fomm_workdir, 'generator'))
    landmarks, _ = animation.load_detector(_LANDMARKS.value)
    regression = os.path.join(fomm_workdir, study_fomm.REGRESSION_FILE)
    if not os.path.isfile(regression):
      entries = [f'learnt={fomm_workdir}/detector', f'supervised={_LANDMARKS.value}', 'random']
      detectors = dict(study_fomm.detector_entry(e, config) for e in entries)
      report = study_fomm.landmark_report(detectors, config)
      with open(regression, 'w') as f:
        json.dump(report, f, indent=2)
    own = os.path.join(fomm_workdir, study_fomm.ANIMATION_FILE)
    if not os.path.isfile(own):
      with open(own, 'w') as f:
        json.dump(study_fomm.score(generator, [teacher], clips, landmarks)[0], f, indent=2)
  except ValueError as error:  # CheckpointError, AnimationError, data errors
    sys.exit(f'error: {error}')

  def score(workdir: str) -> None:
    study_fomm.score_run(workdir, teacher, generator, clips, landmarks)

  return score


if __name__ == '__main__':
  cli.run(main)
