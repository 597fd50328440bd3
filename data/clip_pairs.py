"""FOMM's training pairs from a clip dataset: two frames of one clip, augmented alike.

FOMM trains on (source, driving): two frames of one video, drawn as its
`FramesDataset` draws them in train mode, then augmented as its vox config
says, identically for both frames (its transforms take the whole clip):
time flip (swaps source and driving), horizontal flip and colour jitter.
Each epoch visits every training clip `num_repeats` times (FOMM's
`DatasetRepeater`) in a shuffled order. All randomness comes from grain's
RandomMap, a function of (seed, position), so the iterator's state resumes
bit-identically. `clip_frames` reads whole clips in order, for evaluation.
"""

from __future__ import annotations

import grain
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from absl import flags

from data import pipeline
from data.synthetic_faces import SPLITS

# A few batches ahead, not grain's default 500: a batch reads a whole clip per pair
# (6 MB for 16 clips of 32 frames at 64x64), and FOMM's step takes far longer than that.
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)


class _Pair(grain.transforms.RandomMap):
  """A clip's index -> {'source', 'driving'}: two of its frames, float32 in [0, 1], augmented."""

  def __init__(self, source, flip: bool, jitter: dict):
    self.source, self.flip, self.jitter = source, flip, jitter

  def random_map(self, clip: int, rng: np.random.Generator):
    video = self.source[int(clip)]['video']
    # FOMM's choice: np.sort(np.random.choice(num_frames, replace=True, size=2)), so
    # source comes no later than driving and both are one frame once in T draws.
    chosen = np.sort(rng.choice(len(video), replace=True, size=2))
    pair = video[chosen].astype(np.float32) / 255.0
    # FOMM's RandomFlip returns after a time flip, so it never mirrors a time-flipped
    # clip; here the two flips are independent, each with p 0.5.
    if self.flip and rng.uniform() < 0.5:
      pair = pair[::-1]  # time flip: the later frame becomes the source
    if self.flip and rng.uniform() < 0.5:
      pair = pair[:, :, ::-1]
    if any(self.jitter.values()):
      factors = pipeline.jitter_factors(rng, self.jitter)  # one draw for both frames
      pair = np.stack([pipeline.jitter(frame, factors) for frame in pair])
    return {
      'source': np.ascontiguousarray(pair[0], np.float32),
      'driving': np.ascontiguousarray(pair[1], np.float32),
    }


def _check(data_config: ml_collections.ConfigDict) -> None:
  if data_config.name not in pipeline.CLIP_DATASETS:
    raise ValueError(
      f'pairs of frames need a clip dataset ({", ".join(pipeline.CLIP_DATASETS)}), got '
      f'data.name={data_config.name!r}; set --config.data.name=synthetic_face_clips.'
    )


def make_pair_iterator(
  data_config: ml_collections.ConfigDict,
  *,
  batch_size: int,
  seed: int,
  builder: tfds.core.DatasetBuilder | None = None,
  shard: tuple[int, int] = (0, 1),
):
  """An endless grain iterator of training pairs: `source` and `driving` float32 (B, S, S, 3).

  Args:
    data_config: `config.data` naming a clip dataset (`synthetic_face_clips`).
    batch_size: pairs per global batch.
    seed: shuffle and augmentation seed.
    builder: an already prepared builder (default: prepare one from data_config).
    shard: (process index, process count): this process's rows of each global batch,
      as `pipeline.make_iterator` splits them.

  Returns:
    A checkpointable grain DatasetIterator (`get_state` / `set_state`).

  Raises:
    ValueError: for a dataset of images, a bad batch size or process count.
  """
  _check(data_config)
  if batch_size < 1:
    raise ValueError(f'batch size must be positive, got {batch_size}.')
  builder = builder or pipeline.prepare(data_config)
  source = builder.as_data_source('train')
  if batch_size > len(source):
    raise ValueError(
      f'batch size {batch_size} is larger than the train split ({len(source)} clips); '
      'lower the batch size or raise data.train_size.'
    )
  # Each epoch: every clip num_repeats times, shuffled anew.
  dataset = grain.MapDataset.range(len(source)).repeat(data_config.num_repeats)
  dataset = dataset.shuffle(seed=seed).repeat(None)
  pair = _Pair(source, data_config.flip, dict(data_config.jitter))
  dataset = dataset.random_map(pair, seed=seed + 1)
  index, count = shard
  if batch_size % count:
    raise ValueError(f'batch size {batch_size} must be divisible by the {count} processes.')
  dataset = dataset.batch(batch_size // count, drop_remainder=True)
  if count > 1:
    dataset = dataset[index::count]
  iterable = dataset.to_iter_dataset(_READ_OPTIONS)
  if data_config.workers > 0:
    # grain's workers read absl flags; outside an absl app, take their defaults.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    options = grain.MultiprocessingOptions(num_workers=data_config.workers)
    iterable = iterable.mp_prefetch(options)
  return iter(iterable)


def clip_frames(
  builder: tfds.core.DatasetBuilder, split: str, max_clips: int | None = None
) -> list[tuple[int, np.ndarray, np.ndarray]]:
  """Whole clips in storage order: (clip id, video uint8 (T, H, W, 3), kp (T, 10, 2)).

  Raises:
    ValueError: for an unknown split or a builder of images.
  """
  if split not in SPLITS:
    raise ValueError(f'unknown split {split!r}; valid splits: {", ".join(SPLITS)}.')
  if builder.name not in pipeline.CLIP_DATASETS:
    raise ValueError(
      f'clip_frames reads clip datasets ({", ".join(pipeline.CLIP_DATASETS)}), not '
      f'{builder.name}; pass a synthetic_face_clips builder.'
    )
  source = builder.as_data_source(split)
  count = len(source) if max_clips is None else min(max_clips, len(source))
  clips = []
  for i in range(count):
    clip = source[i]
    clips.append((i, np.asarray(clip['video']), np.asarray(clip['kp'])))
  return clips


def frames_and_landmarks(
  clips: list[tuple[int, np.ndarray, np.ndarray]], per_clip: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """(frames (N, H, W, 3), landmarks (N, 10, 2)) of `clip_frames`' clips: every frame, or
  `per_clip` evenly spaced ones of each clip (the landmark regression's training frames)."""
  images, landmarks = [], []
  for _, video, kp in clips:
    picked = np.arange(len(video))
    if per_clip is not None:
      picked = np.linspace(0, len(video) - 1, per_clip).round().astype(int)
    images.append(video[picked])
    landmarks.append(kp[picked])
  return np.concatenate(images), np.concatenate(landmarks)
