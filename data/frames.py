"""`frames`: real video frames in FOMM's folder layout, as a TFDS builder.

    ROOT/train/<video_id>/<frame>.png|jpg
    ROOT/test/<video_id>/<frame>.png|jpg

Frames are centre-cropped to a square and resized to `image_size`; each example
keeps its video id and frame index. `train` and `validation` split
ROOT/train by video (no video in both), `test` is ROOT/test. Unreadable or
truncated images are skipped and counted; the build fails if more than
`max_bad_fraction` of a split is bad.
"""

from __future__ import annotations

import hashlib
import os
import re

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
LAYOUT = 'ROOT/{train,test}/<video_id>/<frame>.png|jpg'


class FramesError(ValueError):
  """The frames folder cannot become a dataset; the message names the path and the fix."""


class FramesConfig(tfds.core.BuilderConfig):
  def __init__(
    self,
    *,
    image_size: int = 256,
    validation_fraction: float = 0.1,
    max_bad_fraction: float = 0.01,
    name: str | None = None,
  ):
    super().__init__(
      name=name or f'{image_size}px_val{validation_fraction:g}',
      description=f'frames resized to {image_size}x{image_size}',
    )
    self.image_size = image_size
    self.validation_fraction = validation_fraction
    self.max_bad_fraction = max_bad_fraction


def _frame_index(filename: str) -> int:
  digits = re.findall(r'\d+', os.path.splitext(filename)[0])
  return int(digits[-1]) if digits else -1


def list_videos(root: str, part: str) -> dict[str, list[str]]:
  """video id -> sorted frame paths under ROOT/part.

  Raises:
    FramesError: if ROOT/part is missing or holds no frames.
  """
  folder = os.path.join(root, part)
  if not os.path.isdir(folder):
    raise FramesError(f'frames: {folder} does not exist; expected the layout {LAYOUT}.')
  videos = {}
  for video in sorted(os.listdir(folder)):
    path = os.path.join(folder, video)
    if os.path.isdir(path):
      frames = [f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS)]
      if frames:
        videos[video] = [os.path.join(path, f) for f in sorted(frames, key=_frame_index)]
  if not videos:
    raise FramesError(f'frames: no video folders with images in {folder}; expected {LAYOUT}.')
  return videos


def is_validation(video_id: str, fraction: float) -> bool:
  """A stable per-video assignment, so no video is in two splits."""
  digest = hashlib.sha256(video_id.encode()).digest()
  return int.from_bytes(digest[:8], 'big') / 2**64 < fraction


def load_frame(path: str, size: int) -> np.ndarray:
  """Centre-crops to a square and resizes (antialiased) to size x size RGB uint8."""
  with Image.open(path) as image:
    image.load()
    image = image.convert('RGB')
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != size:
      image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, np.uint8)


class Frames(tfds.core.GeneratorBasedBuilder):
  """Talking-head (or any) video frames from a local folder."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}
  BUILDER_CONFIGS = [
    FramesConfig(image_size=256, name='256px'),
    FramesConfig(image_size=64, name='64px'),
  ]
  DEFAULT_CONFIG_NAME = '256px'
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Put the frames in the manual folder (`--config.data.manual_dir=ROOT`) as
  {LAYOUT}, e.g. FOMM's VoxCeleb frames (vox-png): one folder per video, one
  image per frame, numbered in order.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=tfds.features.FeaturesDict(
        {
          'image': tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8),
          'video_id': tfds.features.Text(),
          'frame_index': tfds.features.Scalar(dtype=np.int32),
        }
      ),
    )

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)
    config = self.builder_config
    train = list_videos(root, 'train')
    test = list_videos(root, 'test')
    validation = {v: f for v, f in train.items() if is_validation(v, config.validation_fraction)}
    if len(train) > 1 and not validation:  # keep at least one validation video
      first = sorted(train)[0]
      validation = {first: train[first]}
    train = {v: f for v, f in train.items() if v not in validation}
    return {
      'train': self._generate_examples(train, 'train'),
      'validation': self._generate_examples(validation, 'validation'),
      'test': self._generate_examples(test, 'test'),
    }

  def _generate_examples(self, videos: dict[str, list[str]], split: str):
    config = self.builder_config
    total = sum(len(frames) for frames in videos.values())
    bad = []
    for video, frames in videos.items():
      for index, path in enumerate(frames):
        try:
          image = load_frame(path, config.image_size)
        except (OSError, ValueError, SyntaxError) as error:  # PIL's errors for bad files
          bad.append(f'{path} ({type(error).__name__})')
          continue
        yield f'{video}/{index}', {'image': image, 'video_id': video, 'frame_index': index}
    logging.info('frames %s: %d images, %d unreadable and skipped', split, total, len(bad))
    print(
      f'frames {split}: {total - len(bad)} of {total} images read, {len(bad)} skipped'
      + (f' (first: {bad[0]})' if bad else '')
    )
    if total and len(bad) / total > config.max_bad_fraction:
      raise FramesError(
        f'frames {split}: {len(bad)} of {total} images are unreadable (more than '
        f'max_bad_fraction={config.max_bad_fraction}), e.g. {bad[0]}; fix or remove them.'
      )
