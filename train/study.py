"""The study: every (student, loss, seed) the article's questions need, as normal workdir runs.

Each run is `python main.py --config=configs/<config>.py:study --workdir=DIR/<name>` with
its seed, loss weights and the study's shared teacher set by `--config.*` overrides, so a
run can be repeated by hand with the command the study prints. A run is finished when
its workdir holds results.json (main.py writes it last); an unfinished one resumes from
its checkpoints, so the study can be stopped at any point and continued later.

The plan (`PLAN`): the article's four students with loss L1 and 3 seeds, the two extra
students with 1 seed, and EdgeSegNet with L2 and L3 and 3 seeds each. The losses are the
series' (ARCHITECTURES.md): L1 = MSE(kp) + MSE(jacobian), L2 adds the post-softmax
heatmaps' MSE, L3 also attention transfer between encoder outputs, every term weight 1.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from typing import Any

from train import study_fomm

LOSSES = {
  'L1': {'kp': 1.0, 'jacobian': 1.0, 'heatmap': 0.0, 'attention': 0.0},
  'L2': {'kp': 1.0, 'jacobian': 1.0, 'heatmap': 1.0, 'attention': 0.0},
  'L3': {'kp': 1.0, 'jacobian': 1.0, 'heatmap': 1.0, 'attention': 1.0},
}
ARTICLE_STUDENTS = ('edgeseg', 'squeeze_unet', 'l3unet', 'squeeze_encdec')  # config stems
EXTRA_STUDENTS = ('squeeze_unet_dsc', 'squeeze_unet_noskip')
SEEDS = (0, 1, 2)


@dataclasses.dataclass(frozen=True)
class Run:
  config: str  # configs/<config>.py
  loss: str  # a key of LOSSES
  seed: int

  @property
  def name(self) -> str:
    return f'{self.config}_{self.loss}_seed{self.seed}'

  def command(self, workdir: str, teacher: str, variant: str, overrides: Sequence[str]):
    """The main.py argument list of this run."""
    config = f'configs/{self.config}.py' + (f':{variant}' if variant else '')
    loss = [f'--config.loss.{term}={weight}' for term, weight in LOSSES[self.loss].items()]
    return [
      'main.py',
      f'--config={config}',
      f'--workdir={workdir}',
      f'--config.seed={self.seed}',
      f'--config.teacher.checkpoint={teacher}',
      *loss,
      *overrides,
    ]


PLAN = (
  # seed-major, so the first sitting already has every article student once
  tuple(Run(config, 'L1', seed) for seed in SEEDS for config in ARTICLE_STUDENTS)
  + tuple(Run(config, 'L1', 0) for config in EXTRA_STUDENTS)
  + tuple(Run('edgeseg', loss, seed) for loss in ('L2', 'L3') for seed in SEEDS)
)
# The second study: the article's four students, L1, 3 seeds, distilled from the FOMM
# trained here (configs/fomm.py) and judged by the animation too (train.study_fomm).
FOMM_PLAN = tuple(Run(config, 'L1', seed) for seed in SEEDS for config in ARTICLE_STUDENTS)
PLANS = {'article': PLAN, 'fomm': FOMM_PLAN}


def default_teacher(run: Run, variant: str) -> str:
  """The teacher folder the run's config names under `variant`."""
  config = importlib.import_module(f'configs.{run.config}').get_config(variant or None)
  return config.teacher.checkpoint


def select(names: Sequence[str], plan: Sequence[Run] = PLAN) -> tuple[Run, ...]:
  """The runs of `plan` with these names (all of them for an empty list)."""
  if not names:
    return tuple(plan)
  by_name = {run.name: run for run in plan}
  unknown = [name for name in names if name not in by_name]
  if unknown:
    raise ValueError(f'unknown study run(s) {", ".join(unknown)}; valid: {", ".join(by_name)}.')
  return tuple(by_name[name] for name in names)


def is_finished(workdir: str) -> bool:
  return os.path.isfile(os.path.join(workdir, 'results.json'))


def status(workdir: str) -> str:
  """'finished', 'partial (step N)' or 'not started'."""
  if is_finished(workdir):
    return 'finished'
  checkpoints = os.path.join(workdir, 'checkpoints')
  steps = (
    [int(d) for d in os.listdir(checkpoints) if d.isdigit()] if os.path.isdir(checkpoints) else []
  )
  return f'partial (step {max(steps)})' if steps else 'not started'


def _read_json(path: str) -> dict[str, Any]:
  with open(path) as f:
    return json.load(f)


def summary(runs: Sequence[Run], directory: str, teacher: str) -> list[dict[str, Any]]:
  """One record per finished run (and one for the teacher, role 'teacher')."""
  records = []
  teacher_results = os.path.join(teacher, 'results.json')
  found = _read_json(teacher_results) if os.path.isfile(teacher_results) else None
  if found is not None and found.get('task') == 'fomm':  # FOMM trained here: the second study
    records.append(study_fomm.teacher_record(teacher))
  elif found is not None:
    records.append(
      {
        'role': 'teacher',
        'model': found['model'],
        'workdir': os.path.relpath(teacher),
        'steps': found['steps'],
        'params': found['params'],
        'mult_adds_m': found['mult_adds_m'],
        'val_loss': found['val_loss'],
        # a supervised run's val distance is to the true landmarks
        'truth_distance': found['val_distance'],
      }
    )
  for run in runs:
    workdir = os.path.join(directory, run.name)
    if not is_finished(workdir):
      continue
    found = _read_json(os.path.join(workdir, 'results.json'))
    records.append(
      {
        'role': 'student',
        'run': run.name,
        'config': run.config,
        'model': found['model'],
        'loss': run.loss,
        'seed': run.seed,
        'steps': found['steps'],
        'params': found['params'],
        'mult_adds_m': found['mult_adds_m'],
        'train_loss': found['train_loss'],
        'val_loss': found['val_loss'],
        'val_distance': found['val_distance'],
        'truth_distance': found.get('student_gt_distance'),
        'teacher_truth_distance': found.get('teacher_gt_distance'),
        'images_per_s': found.get('images_per_s'),
      }
    )
    animation = os.path.join(workdir, study_fomm.ANIMATION_FILE)  # the second study's
    if os.path.isfile(animation):
      records[-1].update(_read_json(animation))
  return records


def write_summary(runs: Sequence[Run], directory: str, teacher: str, out: str) -> str:
  """OUT/summary.json and, per finished run, OUT/runs/<name>/{results.json, metrics.jsonl}."""
  os.makedirs(os.path.join(out, 'runs'), exist_ok=True)
  for name, workdir in [('teacher', teacher)] + [
    (r.name, os.path.join(directory, r.name)) for r in runs
  ]:
    if is_finished(workdir):
      kept = os.path.join(out, 'runs', name)
      os.makedirs(kept, exist_ok=True)
      for file in ('results.json', 'metrics.jsonl', study_fomm.ANIMATION_FILE,
                   study_fomm.REGRESSION_FILE):  # fmt: skip
        if os.path.isfile(os.path.join(workdir, file)):
          shutil.copyfile(os.path.join(workdir, file), os.path.join(kept, file))
  path = os.path.join(out, 'summary.json')
  records = summary(runs, directory, teacher)
  temporary = path + '.tmp'
  with open(temporary, 'w') as f:
    json.dump({'written': time.strftime('%Y-%m-%d %H:%M:%S'), 'runs': records}, f, indent=1)
  os.replace(temporary, path)
  return path
