"""Input pipeline: TFDS data source -> grain -> shuffle -> augment -> batch -> float32 NHWC.

One function, `make_iterator`, serves training (seeded shuffle, endless,
augmented, checkpointable) and evaluation (ordered, one pass, no
augmentation). On `frames`, training samples videos as FOMM does: each
epoch visits every video `num_repeats` times in a shuffled order and takes
one random frame of it; frames are decoded here. Frames stored larger than
the model's input go through FOMM's anti-alias downsampling here, once, so
teacher and student see the same augmented image. Clip datasets
(`synthetic_face_clips`) are read as FOMM's pairs by `data.clip_pairs`.
"""

from __future__ import annotations

import os

import grain
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from absl import flags

from data import faces, frames
from data.synthetic_face_clips import SyntheticFaceClips, SyntheticFaceClipsConfig
from data.synthetic_faces import SPLITS, SyntheticFaces, SyntheticFacesConfig
from models import ops

DATASETS = ('synthetic_faces', 'frames', 'synthetic_face_clips')
# Datasets of whole clips, read as pairs of frames by `data.clip_pairs`, not by `make_iterator`.
CLIP_DATASETS = ('synthetic_face_clips',)


def make_builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The TFDS builder that `config` (`configs.base.data_config()`) describes.

  Raises:
    ValueError: for an unknown dataset name or a `frames` config without a folder.
  """
  if config.name == 'synthetic_faces':
    builder_config = SyntheticFacesConfig(
      image_size=config.image_size,
      train_size=config.train_size,
      validation_size=config.validation_size,
      test_size=config.test_size,
      seed=config.seed,
    )
    return SyntheticFaces(
      config=builder_config, data_dir=config.data_dir, file_format='array_record'
    )
  if config.name == 'synthetic_face_clips':
    builder_config = SyntheticFaceClipsConfig(
      image_size=config.image_size,
      frames=config.frames_per_clip,
      train_size=config.train_size,
      validation_size=config.validation_size,
      test_size=config.test_size,
      seed=config.seed,
    )
    return SyntheticFaceClips(
      config=builder_config, data_dir=config.data_dir, file_format='array_record'
    )
  if config.name == 'frames':
    if not config.manual_dir:
      raise ValueError(
        'data.name=frames needs --config.data.manual_dir=ROOT, a folder laid out as '
        'ROOT/{train,test}/<video_id>/<frame>.png|jpg.'
      )
    for part in ('train', 'test'):  # the layout first, with a clearer message than TFDS's
      frames.list_videos(config.manual_dir, part)
    builder_config = frames.FramesConfig(
      image_size=config.image_size,
      frames_per_video=config.frames_per_video,
      encoding=config.encoding,
      validation_fraction=config.validation_fraction,
      max_bad_fraction=config.max_bad_fraction,
      digest=frames.folder_digest(config.manual_dir),
    )
    return frames.Frames(
      config=builder_config, data_dir=config.data_dir, file_format='array_record'
    )
  raise ValueError(f'unknown dataset {config.name!r}; valid datasets: {", ".join(DATASETS)}.')


def prepare(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """Builds the dataset on first use (with progress bars) and returns its builder."""
  builder = make_builder(config)
  manual_dir = os.path.abspath(config.manual_dir) if config.manual_dir else None
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def videos(builder: tfds.core.DatasetBuilder, split: str) -> np.ndarray | None:
  """Frames per video of `split`, in storage order (None for a dataset of single images).

  Raises:
    ValueError: for a `frames` build without them (damaged or from a development build).
  """
  found = builder.info.metadata.get('videos') if builder.info.metadata else None
  if builder.name == 'frames' and (found is None or split not in found):
    raise ValueError(
      f'the frames build in {builder.data_dir} lacks its frames per video (damaged, or from '
      'another version); delete that folder to rebuild it.'
    )
  return None if found is None else np.asarray(found[split], np.int64)


def epoch_size(config: ml_collections.ConfigDict, builder: tfds.core.DatasetBuilder) -> int:
  """Training examples per epoch: videos (or clips) x num_repeats (FOMM's), else the train
  split's size."""
  counts = videos(builder, 'train')
  if counts is not None:
    return len(counts) * config.num_repeats
  size = len(builder.as_data_source('train'))
  return size * config.num_repeats if builder.name in CLIP_DATASETS else size


def check_request(
  config: ml_collections.ConfigDict, split: str, batch_size: int, model_size: int
) -> None:
  """Rejects an unknown split, a bad batch size or an image size the data cannot serve.

  Raises:
    ValueError: one clear line, before any data work.
  """
  if config.name not in DATASETS:
    raise ValueError(f'unknown dataset {config.name!r}; valid datasets: {", ".join(DATASETS)}.')
  if config.name in CLIP_DATASETS:
    raise ValueError(
      f'{config.name} holds clips, not images: read it with data.clip_pairs '
      '(make_pair_iterator for pairs, clip_frames for evaluation).'
    )
  if split not in SPLITS:
    raise ValueError(
      f'unknown split {split!r} of {config.name}; valid splits: {", ".join(SPLITS)}.'
    )
  if batch_size < 1:
    raise ValueError(f'batch size must be positive, got {batch_size}.')
  if config.image_size % model_size:
    raise ValueError(
      f'{config.name} stores {config.image_size}x{config.image_size} frames, which cannot be '
      f"downsampled to the model's {model_size}x{model_size} by a whole factor; set "
      f'data.image_size to a multiple of {model_size}.'
    )
  if config.name == 'synthetic_faces':
    size = config[f'{split}_size']
    if batch_size > size:
      raise ValueError(
        f'batch size {batch_size} is larger than the {split} split ({size} examples); '
        f'lower the batch size or raise data.{split}_size.'
      )


def _flip(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Mirror the image; landmarks mirror x and swap left and right."""
  out = dict(example, image=example['image'][:, ::-1])
  if 'kp' in example:
    order = list(faces.FLIP_PERMUTATION)
    mirror = np.diag([-1.0, 1.0]).astype(np.float32)
    out['kp'] = example['kp'][order] * np.array([-1.0, 1.0], np.float32)
    out['jacobian'] = mirror @ example['jacobian'][order] @ mirror
    out['visible'] = example['visible'][order]
  return out


def jitter_factors(rng: np.random.Generator, strength: dict) -> tuple[float, ...]:
  """ColorJitter's random brightness, contrast and saturation factors and hue shift."""
  return tuple(
    rng.uniform(1 - strength[name], 1 + strength[name])
    for name in ('brightness', 'contrast', 'saturation')
  ) + (rng.uniform(-strength['hue'], strength['hue']),)


def jitter(image: np.ndarray, factors: tuple[float, ...]) -> np.ndarray:
  """torchvision-style ColorJitter on a float image in [0, 1], with `jitter_factors`'s draw
  (one draw for all frames of a clip, as FOMM jitters a clip)."""
  brightness, contrast, saturation, hue = factors
  gray_weights = np.array([0.299, 0.587, 0.114], np.float32)
  image = image * brightness
  mean = float((image @ gray_weights).mean())
  image = (image - mean) * contrast + mean
  gray = (image @ gray_weights)[..., None]
  image = gray + (image - gray) * saturation
  # Hue: rotate the chroma plane of YIQ by up to hue * 360 degrees.
  angle = hue * 2 * np.pi
  to_yiq = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32
  )
  c, s = np.cos(angle), np.sin(angle)
  rotate = np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float32)
  image = image @ (np.linalg.inv(to_yiq) @ rotate @ to_yiq).T.astype(np.float32)
  return np.clip(image, 0.0, 1.0)


class _Augment(grain.transforms.RandomMap):
  def __init__(self, flip: bool, jitter: dict):
    self.flip, self.jitter = flip, jitter

  def random_map(self, example, rng: np.random.Generator):
    example = dict(example, image=example['image'].astype(np.float32) / 255.0)
    if self.flip and rng.uniform() < 0.5:
      example = _flip(example)
    if any(self.jitter.values()):
      example['image'] = jitter(example['image'], jitter_factors(rng, self.jitter))
    return example


class _Finalize(grain.transforms.Map):
  """uint8 or float images -> float32 in [0, 1], downsampled to the model's size."""

  def __init__(self, stored: int, model: int):
    self.scale = model / stored
    self.matrix = ops.anti_alias_matrix(stored, self.scale) if stored != model else None

  def map(self, batch):
    image = batch['image']
    image = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image
    if self.matrix is not None:
      # Rows then columns, each a BLAS matmul (one three-operand einsum loops naively).
      image = np.einsum('oh,bhwc->bowc', self.matrix, image, optimize=True)
      image = np.einsum('bowc,pw->bopc', image, self.matrix, optimize=True)
    out = dict(batch)
    out['image'] = np.ascontiguousarray(image, np.float32)
    return out


class _Numeric(grain.transforms.Map):
  """Keeps the array features (drops text such as video ids), decoding encoded frames."""

  KEYS = ('image', 'kp', 'jacobian', 'visible', 'frame_index')

  def map(self, example):
    out = {k: np.asarray(v) for k, v in example.items() if k in self.KEYS}
    if isinstance(example['image'], bytes):
      out['image'] = frames.decode(example['image'])
    return out


class _VideoFrame(grain.transforms.RandomMap):
  """A video's index -> one of its frames, drawn uniformly (FOMM's sampling)."""

  def __init__(self, source, counts: np.ndarray):
    self.source, self.counts = source, counts
    self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

  def random_map(self, video, rng: np.random.Generator):
    return self.source[int(self.starts[video] + rng.integers(self.counts[video]))]


def make_iterator(
  config: ml_collections.ConfigDict,
  split: str,
  *,
  batch_size: int,
  model_size: int,
  train: bool,
  seed: int = 0,
  builder: tfds.core.DatasetBuilder | None = None,
  shard: tuple[int, int] = (0, 1),
):
  """A grain iterator of batches: `image` float32 (B, S, S, 3) in [0, 1] plus labels.

  Args:
    config: `config.data` (see `default_config`).
    split: 'train', 'validation' or 'test'.
    batch_size: examples per batch.
    model_size: the model's input size S; larger stored frames are
      anti-alias downsampled to it.
    train: endless, shuffled with `seed`, augmented and checkpointable
      (`get_state` / `set_state`); otherwise one ordered pass, keeping the
      last partial batch.
    seed: shuffle and augmentation seed.
    builder: an already prepared builder (default: prepare one from config).
    shard: (process index, process count): training yields this process's rows of
      each global batch of `batch_size`, by grain's slicing of the dataset of
      per-process row blocks; only those rows are read and augmented. A global
      batch is the same on one process or many (`train.experiment`).

  Returns:
    A grain DatasetIterator.
  """
  check_request(config, split, batch_size, model_size)
  builder = builder or prepare(config)
  source = builder.as_data_source(split)
  counts = videos(builder, split)
  # Training drops partial batches (video sampling is endless); evaluation keeps them.
  if train and counts is None and batch_size > len(source):
    raise ValueError(
      f'batch size {batch_size} is larger than the {split} split ({len(source)} examples).'
    )
  if train and counts is not None:  # each epoch: every video num_repeats times, shuffled
    dataset = grain.MapDataset.range(len(counts)).repeat(config.num_repeats)
    dataset = dataset.shuffle(seed=seed).repeat(None)
    dataset = dataset.random_map(_VideoFrame(source, counts), seed=seed + 2).map(_Numeric())
  else:
    dataset = grain.MapDataset.source(source).map(_Numeric())
    if train:
      dataset = dataset.shuffle(seed=seed).repeat(None)
  if train:
    dataset = dataset.random_map(_Augment(config.flip, dict(config.jitter)), seed=seed + 1)
  index, count = shard
  if train and count > 1:
    if batch_size % count:
      raise ValueError(f'batch size {batch_size} must be divisible by the {count} processes.')
    dataset = dataset.batch(batch_size // count, drop_remainder=True)[index::count]
  else:
    dataset = dataset.batch(batch_size, drop_remainder=train)
  dataset = dataset.map(_Finalize(config.image_size, model_size))
  iterable = dataset.to_iter_dataset()
  if train and config.workers > 0:
    # grain's workers read absl flags; outside an absl app, take their defaults.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.workers))
  return iter(iterable)
