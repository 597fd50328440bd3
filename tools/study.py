"""Runs the whole study, one normal main.py run after another, resumable across sittings.

  python -m tools.study                     # every run of train.study.PLAN
  python -m tools.study --status            # what is finished, partial, not started
  python -m tools.study --runs=edgeseg_L1_seed0,l3unet_L1_seed1

Finished runs are skipped, a killed one resumes from its checkpoints, and
OUT/summary.json (with each finished run's results.json and metrics.jsonl
under OUT/runs/) is rewritten after every run; `python -m tools.report
--study=OUT` turns it into the tables and pictures of docs/results.md. Every
run uses its config's `:study` variant (configs/base.py: the study's
schedule); the shared teacher (`configs/teacher.py:study`, in
workdirs/teacher_study) is trained first, by main.py, in the first run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from absl import flags

from tools import cli

_DIR = flags.DEFINE_string('dir', 'workdirs/study', "where the runs' workdirs go")
_OUT = flags.DEFINE_string('out', 'docs/study', "where summary.json and the runs' results go")
_TEACHER = flags.DEFINE_string(
  'teacher',
  None,
  "the teacher every run distils (default: the variant's, trained by the first run)",
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

  try:
    runs = study.select(_RUNS.value)
    # a config's teacher folder is relative to the project root, where main.py runs
    teacher = _TEACHER.value or os.path.join(_ROOT, study.default_teacher(runs[0], _VARIANT.value))
  except ValueError as error:  # an unknown run name or config variant
    sys.exit(f'error: {error}')
  directory, teacher, out = map(os.path.abspath, (_DIR.value, teacher, _OUT.value))
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
  started = time.time()
  for done, run in enumerate(todo):
    workdir = workdirs[run.name]
    args = run.command(workdir, teacher, _VARIANT.value, _OVERRIDE.value)
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
    path = study.write_summary(runs, directory, teacher, out)
    if result.returncode != 0:
      sys.exit(
        f'error: {run.name} failed (exit status {result.returncode}); its checkpoints and the '
        f'finished runs are kept ({path}); fix the cause and rerun to continue.'
      )
  path = study.write_summary(runs, directory, teacher, out)
  print(f'study: all {len(runs)} runs finished in this selection; wrote {path}', flush=True)


if __name__ == '__main__':
  cli.run(main)
