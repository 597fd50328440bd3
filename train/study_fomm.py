"""The second study's animation scores: each student driving the FOMM trained here.

The students of `train.study.FOMM_PLAN` distil the detector of FOMM's own
training run (configs/fomm.py: WORKDIR/detector); here each one replaces
that detector in the run's generator (WORKDIR/generator) on the held-out
clips, by FOMM's reconstruction protocol (train.reconstruction: each clip's
first frame re-posed by every frame's absolute keypoints), and is scored by
- `reconstruction_l1`: mean L1 between generated and real frames in [0, 1];
- `animated_kp_error`: an AKD in the spirit of FOMM's, the supervised landmark
  model (configs/teacher.py's run: it predicts the 10 true landmarks) standing
  in for face-alignment: the mean distance between its landmarks on the
  generated frame and on the real frame, in normalised coordinates.
Scores are written to RUN/animation.json, once per run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import numpy as np
from flax import nnx

import models
from train import animation, landmark_regression, reconstruction

ANIMATION_FILE = 'animation.json'


def landmark_distance(landmark_model: nnx.Module) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
  """(generated, real) float frames in [0, 1] -> per frame mean landmark distance (AKD)."""

  def distance(generated: np.ndarray, real: np.ndarray) -> np.ndarray:
    frames = [np.round(np.clip(x, 0, 1) * 255).astype(np.uint8) for x in (generated, real)]
    found = [animation.detect(landmark_model, x, batch=len(x)) for x in frames]
    return np.linalg.norm(found[0] - found[1], axis=-1).mean(-1)

  return distance


def score(
  generator: nnx.Module,
  detectors: Sequence[nnx.Module],
  clips: dict[str, np.ndarray],
  landmark_model: nnx.Module,
  *,
  batch: int = 32,
) -> list[dict[str, float]]:
  """Per detector: reconstruction L1, animated keypoint error, and distance to the first's kp."""
  results = reconstruction.reconstruct(
    generator,
    detectors,
    clips,
    size=next(iter(clips.values())).shape[1],
    batch=batch,
    frame_metrics={'animated_kp_error': landmark_distance(landmark_model)},
  )
  return [
    {
      'reconstruction_l1': r['l1'],
      'animated_kp_error': r['animated_kp_error'],
      'kp_distance_to_teacher': r['kp_distance'],
      'frames': r['frames'],
    }
    for r in results
  ]


def score_run(
  workdir: str,
  teacher: nnx.Module,
  generator: nnx.Module,
  clips: dict[str, np.ndarray],
  landmark_model: nnx.Module,
) -> dict[str, float]:
  """A finished run's scores (RUN/animation.json, computed once), the teacher as reference."""
  path = os.path.join(workdir, ANIMATION_FILE)
  if os.path.isfile(path):
    with open(path) as f:
      return json.load(f)
  student, _ = animation.load_detector(workdir)
  found = score(generator, [teacher, student], clips, landmark_model)[1]
  with open(path + '.tmp', 'w') as f:
    json.dump(found, f, indent=2)
  os.replace(path + '.tmp', path)
  return found


def detector_entry(entry: str, config, seed: int = 0) -> tuple[str, nnx.Module]:
  """(name, detector in eval mode) of NAME=FOLDER, FOLDER or 'random' (FOMM's detector at
  `config.model`'s widths with random weights, seeded by `seed`)."""
  name, _, path = entry.rpartition('=')
  if path == 'random':
    options = models.study_config('fomm_teacher', config.model)
    detector = models.create_model('fomm_teacher', options, rngs=nnx.Rngs(seed))
    detector.eval()
    return name or path, detector
  return name or path, animation.load_detector(path)[0]


def landmark_report(detectors: dict[str, nnx.Module], config, split: str = 'test') -> dict:
  """The landmark regression (train.landmark_regression) of each detector on the clips of a
  FOMM config: fitted on its `regression_clips` x `regression_frames_per_clip` training
  frames (as its run's evaluations), tested on every frame of `split`."""
  from data import clip_pairs, pipeline

  builder = pipeline.prepare(config.data)
  train_clips = clip_pairs.clip_frames(builder, 'train', max_clips=config.regression_clips)
  fit = clip_pairs.frames_and_landmarks(train_clips, config.regression_frames_per_clip)
  held_out = clip_pairs.frames_and_landmarks(clip_pairs.clip_frames(builder, split))
  results = {}
  for name, detector in detectors.items():
    found = [animation.detect(detector, images) for images in (fit[0], held_out[0])]
    errors = landmark_regression.regression_errors(found[0], fit[1], found[1], held_out[1])
    results[name] = {'model': detector.name, **errors}
  return {
    'data': builder.info.full_name,
    'fit_frames': len(fit[0]),
    'held_out_split': split,
    'held_out_frames': len(held_out[0]),
    'detectors': results,
  }


# Files a FOMM training workdir gathers for the second study's teacher record.
REGRESSION_FILE = 'landmark_regression.json'
REGRESSION_KEYS = {
  'learnt': 'landmark_regression_error',
  'random': 'random_landmark_regression_error',
  'supervised': 'supervised_landmark_regression_error',
}


def teacher_record(fomm_workdir: str) -> dict:
  """The summary's 'teacher' record: FOMM's run, its landmark regression and its animation."""

  def read(name):
    path = os.path.join(fomm_workdir, name)
    if not os.path.isfile(path):
      return {}
    with open(path) as f:
      return json.load(f)

  found = read('results.json')
  record = {
    'role': 'teacher',
    'model': 'fomm_teacher',
    'workdir': os.path.relpath(fomm_workdir),
    'steps': found['steps'],
    'val_reconstruction_l1': found['reconstruction_l1'],
    **read(ANIMATION_FILE),
  }
  for name, result in read(REGRESSION_FILE).get('detectors', {}).items():
    if name in REGRESSION_KEYS:
      record[REGRESSION_KEYS[name]] = result['error']
      record[REGRESSION_KEYS[name] + '_interocular'] = result['error_interocular']
  return record
