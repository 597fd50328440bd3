"""`synthetic_face_clips`: moving synthetic faces for FOMM, a TFDS builder (no TensorFlow needed).

Each example is one clip (`data/face_clips.py`): `video` (T, S, S, 3) uint8 of
one face turning, moving and talking, with every frame's true landmarks,
jacobians and visibility (for evaluation; FOMM learns from the frames alone).
Written as array_record files with Tensor features. Clip (seed, split, i) is
a pure function of those three numbers, so two builds with one seed give
identical bytes; clips are rendered in parallel worker processes in a fixed
order.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from data import face_clips, faces
from data.synthetic_faces import SPLITS, render_in_order

_CHUNK_FRAMES = 256  # frames per task sent to a worker
_PARALLEL_FROM = 1000  # frames; smaller splits render in-process (spawning costs ~1 s)
# TFDS holds a split in memory while writing it and spills to disk through TensorFlow
# beyond 1,000 MiB (tfds.core.shuffle.MAX_MEM_BUFFER_SIZE), which this project lacks.
_MAX_SPLIT_BYTES = 1000 << 20


def clip_bytes(image_size: int, frames: int) -> int:
  """A stored clip's size: raw video bytes, float32 kp and jacobians, visibility, framing."""
  return frames * (image_size * image_size * 3 + faces.NUM_KP * (6 * 4 + 2)) + 256


class SyntheticFaceClipsConfig(tfds.core.BuilderConfig):
  """Frame size, frames per clip, split sizes (clips) and seed; the name encodes them."""

  def __init__(
    self,
    *,
    image_size: int = 64,
    frames: int = 32,
    train_size: int = 2_000,
    validation_size: int = 50,
    test_size: int = 50,
    seed: int = 0,
    name: str | None = None,
  ):
    sizes = (train_size, validation_size, test_size)
    if image_size < 16 or frames < 2 or min(sizes) < 1:
      raise ValueError(
        f'synthetic_face_clips: image_size must be at least 16, frames_per_clip at least 2 and '
        f'every split at least 1 clip; got image_size={image_size}, frames_per_clip={frames}, '
        f'split sizes={sizes}.'
      )
    largest = max(sizes) * clip_bytes(image_size, frames)
    if largest > _MAX_SPLIT_BYTES:
      raise ValueError(
        f'synthetic_face_clips: a split of {max(sizes)} clips of {frames} frames at '
        f'{image_size}x{image_size} takes {largest / 2**20:.0f} MiB, over the 1,000 MiB that '
        'TFDS writes without TensorFlow; lower data.train_size, frames_per_clip or image_size.'
      )
    default_name = f'{image_size}px_{frames}f_{train_size}_{validation_size}_{test_size}_seed{seed}'
    super().__init__(
      name=name or default_name,
      description=f'{frames} frames of {image_size}x{image_size}, splits {sizes}, seed {seed}',
    )
    self.image_size = image_size
    self.frames = frames
    self.split_sizes = dict(zip(SPLITS, sizes, strict=True))
    self.seed = seed


def _render_chunk(task: tuple[int, int, list[int], int, int]) -> list[dict[str, np.ndarray]]:
  seed, split_id, indices, frames, size = task
  return [face_clips.make_clip(seed, split_id, i, frames, size) for i in indices]


class SyntheticFaceClips(tfds.core.GeneratorBasedBuilder):
  """Clips of moving synthetic faces with every frame's landmarks and jacobians."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = [SyntheticFaceClipsConfig(name='64px')]
  DEFAULT_CONFIG_NAME = '64px'

  def _info(self) -> tfds.core.DatasetInfo:
    size, frames = self.builder_config.image_size, self.builder_config.frames
    tensor = tfds.features.Tensor
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=tfds.features.FeaturesDict(
        {
          # Raw bytes: the default int64 list takes 1.4 bytes per pixel.
          'video': tensor(shape=(frames, size, size, 3), dtype=np.uint8, encoding='bytes'),
          'kp': tensor(shape=(frames, faces.NUM_KP, 2), dtype=np.float32),
          'jacobian': tensor(shape=(frames, faces.NUM_KP, 2, 2), dtype=np.float32),
          'visible': tensor(shape=(frames, faces.NUM_KP), dtype=np.bool_),
        }
      ),
      supervised_keys=None,
      homepage='https://github.com/AliaksandrSiarohin/first-order-model',
      # Stored position i is clip i of its split (`make_clip(seed, split, i, ...)`).
      disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {
      split: self._generate_examples(split_id=i, size=self.builder_config.split_sizes[split])
      for i, split in enumerate(SPLITS)
    }

  def _generate_examples(self, split_id: int, size: int):
    config = self.builder_config
    chunk = max(1, _CHUNK_FRAMES // config.frames)
    tasks = [
      (config.seed, split_id, list(range(start, min(start + chunk, size))), config.frames,
       config.image_size)
      for start in range(0, size, chunk)
    ]  # fmt: skip
    parallel = size * config.frames >= _PARALLEL_FROM
    yield from render_in_order(_render_chunk, tasks, parallel=parallel)
