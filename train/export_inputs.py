"""The images an export is checked and calibrated on, and the keypoints it is scored against.

From a training workdir: the first validation images (parity and val
distance, against the run's teacher for a distilled student or the true
landmarks for a supervised one) and the first training images (the int8
representative set), read in order without augmentation. Without a
dataset (`--model`, a converted FOMM checkpoint): uniform random images.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections
import numpy as np

from models import compiler
from train.experiment import Experiment


@dataclasses.dataclass
class ExportInputs:
  images: np.ndarray  # (N, H, W, 3) float32 in [0, 1]
  images_source: str
  calibration: list[np.ndarray]  # each (1, H, W, 3)
  calibration_source: str
  reference_kp: np.ndarray | None = None  # (N, K, 2), what val distance is measured to
  reference: str | None = None


def random_inputs(size: int, count: int, calibration: int, seed: int = 0) -> ExportInputs:
  rng = np.random.default_rng(seed)
  images = rng.uniform(size=(count, size, size, 3)).astype(np.float32)
  representative = rng.uniform(size=(calibration, 1, size, size, 3)).astype(np.float32)
  return ExportInputs(
    images,
    f'{count} uniform random {size}x{size} images',
    list(representative),
    f'{calibration} uniform random images (no dataset given)',
  )


def _first(experiment: Experiment, split: str, count: int | None) -> dict[str, np.ndarray]:
  parts: dict[str, list[np.ndarray]] = {}
  total = 0
  for batch in experiment.batches(split):
    for key in ('image', 'kp'):
      if key in batch:
        parts.setdefault(key, []).append(np.asarray(batch[key]))
    total += len(batch['image'])
    if count is not None and total >= count:
      break
  return {key: np.concatenate(value)[:count] for key, value in parts.items()}


def _teacher_kp(config: ml_collections.ConfigDict, images: np.ndarray, batch: int) -> np.ndarray:
  from train.teacher import load_teacher

  teacher, _ = load_teacher(config)
  return compiler.predict(teacher, images, outputs=('kp',), batch=batch)['kp']


def workdir_inputs(
  experiment_config: dict[str, Any], count: int | None, calibration: int
) -> ExportInputs:
  """Validation and training images of the run whose config is `experiment_config`."""
  config = ml_collections.ConfigDict(experiment_config)
  experiment = Experiment(config)
  validation = _first(experiment, 'validation', count)
  images = validation['image'].astype(np.float32)
  train = _first(experiment, 'train', calibration)['image'].astype(np.float32)
  name = config.data.name
  inputs = ExportInputs(
    images,
    f'the first {len(images)} validation images of {name}',
    [image[None] for image in train],
    f'the first {len(train)} training images of {name}',
  )
  if config.task == 'distill':
    inputs.reference_kp = _teacher_kp(config, images, config.eval_batch_size)
    inputs.reference = f'the teacher ({config.teacher.checkpoint})'
  elif 'kp' in validation:
    inputs.reference_kp, inputs.reference = validation['kp'], 'the true landmarks'
  return inputs
