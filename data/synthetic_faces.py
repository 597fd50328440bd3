"""`synthetic_faces`: the embedded default dataset, a TFDS builder (no TensorFlow needed).

Procedural face-like images (`data/faces.py`) with 10 ground-truth landmarks
in FOMM's [-1, 1] coordinates and their 2x2 local jacobians, written as
array_record files with Tensor features. Example (seed, split, i) is a pure
function of those three numbers, so two builds with one seed give identical
bytes, and examples are rendered in parallel worker processes in a fixed
order.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds

from data import faces

SPLITS = ('train', 'validation', 'test')
_CHUNK = 250  # examples per task sent to a worker
_PARALLEL_FROM = 1000  # smaller splits render in-process (spawning costs ~1 s)


class SyntheticFacesConfig(tfds.core.BuilderConfig):
  """Image size, split sizes and seed; the name encodes them, so each has its own folder."""

  def __init__(
    self,
    *,
    image_size: int = 64,
    train_size: int = 20_000,
    validation_size: int = 2_000,
    test_size: int = 2_000,
    seed: int = 0,
    name: str | None = None,
  ):
    sizes = (train_size, validation_size, test_size)
    if image_size < 16 or min(sizes) < 1:
      raise ValueError(
        f'synthetic_faces: image_size must be at least 16 and every split at least 1 example; '
        f'got image_size={image_size}, split sizes={sizes}.'
      )
    default_name = f'{image_size}px_{train_size}_{validation_size}_{test_size}_seed{seed}'
    super().__init__(
      name=name or default_name,
      description=f'{image_size}x{image_size} faces, splits {sizes}, seed {seed}',
    )
    self.image_size = image_size
    self.split_sizes = dict(zip(SPLITS, sizes, strict=True))
    self.seed = seed


def _render_chunk(task: tuple[int, int, list[int], int]) -> list[dict[str, np.ndarray]]:
  seed, split_id, indices, size = task
  return [faces.make_example(seed, split_id, i, size) for i in indices]


@dataclasses.dataclass
class _Workers:
  """A spawn-context pool, so workers never inherit JAX's threads through fork."""

  count: int

  def __enter__(self):
    self.pool = multiprocessing.get_context('spawn').Pool(self.count)
    return self.pool

  def __exit__(self, *exc):
    self.pool.terminate()


def render_in_order(render_chunk: Callable, tasks: list[tuple], *, parallel: bool) -> Iterator:
  """(index, example) for every index of every task, in task order (so the files are
  identical however many workers render). A task's third item is its list of indices;
  `render_chunk(task)` (picklable) returns their examples. With `parallel`, one spawned
  worker per core renders."""
  workers = os.cpu_count() or 1
  if not parallel or workers == 1:
    for task in tasks:
      yield from zip(task[2], render_chunk(task), strict=True)
    return
  with _Workers(workers) as pool:
    for task, chunk in zip(tasks, pool.imap(render_chunk, tasks), strict=True):
      yield from zip(task[2], chunk, strict=True)


class SyntheticFaces(tfds.core.GeneratorBasedBuilder):
  """Face-like images with landmarks and jacobians, at 64x64 or 256x256."""

  VERSION = tfds.core.Version('2.0.0')
  RELEASE_NOTES = {
    '1.0.0': 'First release.',
    '2.0.0': 'FOMM-like jacobians: dimensionless, relative to the mean face (same images).',
  }
  BUILDER_CONFIGS = [
    SyntheticFacesConfig(image_size=64, name='64px'),
    SyntheticFacesConfig(
      image_size=256, train_size=2_000, validation_size=200, test_size=200, name='256px'
    ),
  ]
  DEFAULT_CONFIG_NAME = '64px'

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    tensor = tfds.features.Tensor
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=tfds.features.FeaturesDict(
        {
          'image': tensor(shape=(size, size, 3), dtype=np.uint8),
          'kp': tensor(shape=(faces.NUM_KP, 2), dtype=np.float32),
          'jacobian': tensor(shape=(faces.NUM_KP, 2, 2), dtype=np.float32),
          'visible': tensor(shape=(faces.NUM_KP,), dtype=np.bool_),
          'pose': tensor(shape=(6,), dtype=np.float32),
          'expression': tensor(shape=(7,), dtype=np.float32),
        }
      ),
      supervised_keys=None,
      homepage='https://github.com/AliaksandrSiarohin/first-order-model',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {
      split: self._generate_examples(split_id=i, size=self.builder_config.split_sizes[split])
      for i, split in enumerate(SPLITS)
    }

  def _generate_examples(self, split_id: int, size: int):
    config = self.builder_config
    tasks = [
      (config.seed, split_id, list(range(start, min(start + _CHUNK, size))), config.image_size)
      for start in range(0, size, _CHUNK)
    ]
    yield from render_in_order(_render_chunk, tasks, parallel=size >= _PARALLEL_FROM)
