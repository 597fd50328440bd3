"""How much of the face's geometry keypoints carry: the unsupervised-landmark protocol.

  python -m tools.landmark_regression --detector=workdirs/fomm/detector,workdirs/teacher,random \\
    --out=docs/study_fomm/landmark_regression.json

For each detector, a linear regressor from its keypoints to the 10 true
landmarks is fitted on training frames of the clip dataset (the first
`regression_clips` clips, `regression_frames_per_clip` frames each, as FOMM's
training run evaluates) and tested on every frame of the held-out split
(train.landmark_regression). `random` is FOMM's detector with random weights
(the config's widths, seed --seed): the floor learnt keypoints must beat.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import flags
from ml_collections import config_flags

from tools import cli

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/fomm.py', 'the data and protocol')
_DETECTORS = flags.DEFINE_list(
  'detector', None, "detector folders, or 'random', comma-separated", required=True
)
_SPLIT = flags.DEFINE_enum('split', 'test', ['validation', 'test'], 'the held-out clips')
_SEED = flags.DEFINE_integer('seed', 0, "the random detector's weights")
_OUT = flags.DEFINE_string('out', None, 'JSON to write (new); default: the table only')


def _frames(clips, per_clip: int | None) -> tuple[np.ndarray, np.ndarray]:
  images, landmarks = [], []
  for _, video, kp in clips:
    picked = np.arange(len(video))
    if per_clip is not None:
      picked = np.linspace(0, len(video) - 1, per_clip).round().astype(int)
    images.append(video[picked])
    landmarks.append(kp[picked])
  return np.concatenate(images), np.concatenate(landmarks)


def _detector(name: str, config):
  from flax import nnx

  import models
  from train import animation

  if name == 'random':
    options = models.study_config('fomm_teacher', config.model)
    detector = models.create_model('fomm_teacher', options, rngs=nnx.Rngs(_SEED.value))
    detector.eval()
    return detector
  return animation.load_detector(name)[0]


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from data import clip_pairs, pipeline
  from train import animation, landmark_regression

  config, out = _CONFIG.value, _OUT.value
  if out and os.path.exists(out):
    sys.exit(f'error: {out} already exists; choose another --out or delete it first.')
  try:
    builder = pipeline.prepare(config.data)
    fit = _frames(
      clip_pairs.clip_frames(builder, 'train', max_clips=config.regression_clips),
      config.regression_frames_per_clip,
    )
    held_out = _frames(clip_pairs.clip_frames(builder, _SPLIT.value), None)
    results = {}
    for name in _DETECTORS.value:
      detector = _detector(name, config)
      found = [animation.detect(detector, images) for images in (fit[0], held_out[0])]
      errors = landmark_regression.regression_errors(found[0], fit[1], found[1], held_out[1])
      results[name] = {'model': detector.name, **errors}
  except ValueError as error:  # CheckpointError, AnimationError, data errors
    sys.exit(f'error: {error}')
  summary = {
    'data': builder.info.full_name,
    'fit_frames': len(fit[0]),
    'held_out_split': _SPLIT.value,
    'held_out_frames': len(held_out[0]),
    'detectors': results,
  }
  if out:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
      json.dump(summary, f, indent=2)
  print(f'landmark regression: fitted on {len(fit[0])} training frames, tested on '
        f'{len(held_out[0])} {_SPLIT.value} frames (mean distance per landmark)')  # fmt: skip
  print('| detector | error | / inter-ocular | fit error |\n|---|---:|---:|---:|')
  for name, r in results.items():
    print(f'| {name} | {r["error"]:.4f} | {r["error_interocular"]:.1%} | {r["train_error"]:.4f} |')


if __name__ == '__main__':
  cli.run(main)
