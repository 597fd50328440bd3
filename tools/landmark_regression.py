"""How much of the face's geometry keypoints carry: the unsupervised-landmark protocol.

  python -m tools.landmark_regression \\
    --detector=learnt=workdirs/fomm/detector,supervised=workdirs/teacher_study,random \\
    --out=workdirs/fomm/landmark_regression.json

For each detector (NAME=FOLDER, a FOLDER, or `random`), a linear regressor
from its keypoints to the 10 true landmarks is fitted on training frames of
the clip dataset (the first `regression_clips` clips, `regression_frames_per_clip`
frames each, as FOMM's training run evaluates) and tested on every frame of
the held-out split (train.landmark_regression, train.study_fomm). `random` is
FOMM's detector with random weights (the config's widths, seed --seed): the
floor that learnt keypoints must beat.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags
from ml_collections import config_flags

from tools import cli

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/fomm.py', 'the data and protocol')
_DETECTORS = flags.DEFINE_list(
  'detector', None, "NAME=FOLDER, FOLDER or 'random', comma-separated", required=True
)
_SPLIT = flags.DEFINE_enum('split', 'test', ['validation', 'test'], 'the held-out clips')
_SEED = flags.DEFINE_integer('seed', 0, "the random detector's weights")
_OUT = flags.DEFINE_string('out', None, 'JSON to write (new); default: the table only')


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from train import study_fomm

  config, out = _CONFIG.value, _OUT.value
  if out and os.path.exists(out):
    sys.exit(f'error: {out} already exists; choose another --out or delete it first.')
  try:
    detectors = dict(study_fomm.detector_entry(e, config, _SEED.value) for e in _DETECTORS.value)
    report = study_fomm.landmark_report(detectors, config, _SPLIT.value)
  except ValueError as error:  # CheckpointError, AnimationError, data errors
    sys.exit(f'error: {error}')
  if out:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
      json.dump(report, f, indent=2)
  fitted, tested = report['fit_frames'], report['held_out_frames']
  print(f'landmark regression: fitted on {fitted} training frames, tested on {tested} '
        f'{_SPLIT.value} frames (mean distance per landmark)')  # fmt: skip
  print('| detector | error | / inter-ocular | fit error |\n|---|---:|---:|---:|')
  for name, r in report['detectors'].items():
    print(f'| {name} | {r["error"]:.4f} | {r["error_interocular"]:.1%} | {r["train_error"]:.4f} |')


if __name__ == '__main__':
  cli.run(main)
