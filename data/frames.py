"""`frames`: real talking-head videos in FOMM's folder layout, as a TFDS builder.

    ROOT/train/<video_id>/<frame>.png|jpg    one folder per video (FOMM's vox-png)
    ROOT/train/<video_id>.mp4|.gif           or one file per video
    ROOT/test/...

It stores what FOMM's detector would see: each video keeps at most
`frames_per_video` frames, evenly spaced, centre-cropped to a square of
`image_size` (256: FOMM's vox input), encoded (PNG or JPEG bytes; a frame
file already at that size and format is kept byte for byte). The pipeline
decodes a frame and applies FOMM's anti-alias downsampling to the model's
size (data.pipeline). Examples are frames, written in video order; the
dataset's metadata keeps each split's frames per video, so that training
samples videos as FOMM does (`num_repeats` per epoch).

`train` and `validation` split ROOT/train by video (no video in both);
`test` is ROOT/test. Unreadable frames and videos are counted and skipped,
and the build fails, leaving nothing behind, when more than
`max_bad_fraction` of a split is bad. The build's name holds a digest of
the folder's path and file listing (`folder_digest`), so two folders, or
one that changed, never share a prepared dataset.
"""

from __future__ import annotations

import hashlib
import io
import os
import re

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
VIDEO_EXTENSIONS = ('.mp4', '.gif')
LAYOUT = 'ROOT/{train,test}/<video_id>/<frame>.png|jpg (or ROOT/{train,test}/<video_id>.mp4|.gif)'
ENCODINGS = {'png': 'PNG', 'jpeg': 'JPEG'}


class FramesError(ValueError):
  """The frames folder cannot become a dataset; the message names the path and the fix."""


class FramesConfig(tfds.core.BuilderConfig):
  def __init__(
    self,
    *,
    image_size: int = 256,
    frames_per_video: int = 32,
    encoding: str = 'png',
    validation_fraction: float = 0.1,
    max_bad_fraction: float = 0.01,
    digest: str = '',
  ):
    super().__init__(
      name=f'{image_size}px_{frames_per_video}f_{encoding}_val{validation_fraction:g}'
      + (f'_{digest}' if digest else ''),
      description=f'at most {frames_per_video} frames per video, {image_size}x{image_size} '
      f'{encoding}',
    )
    self.image_size = image_size
    self.frames_per_video = frames_per_video
    self.encoding = encoding
    self.validation_fraction = validation_fraction
    self.max_bad_fraction = max_bad_fraction


def _frame_index(filename: str) -> int:
  digits = re.findall(r'\d+', os.path.splitext(filename)[0])
  return int(digits[-1]) if digits else -1


def list_videos(root: str, part: str) -> tuple[dict[str, list[str] | str], list[str]]:
  """(video id -> sorted frame paths, or the path of its .mp4/.gif; empty video folders).

  Raises:
    FramesError: if ROOT/part is missing or holds no video.
  """
  folder = os.path.join(root, part)
  if not os.path.isdir(folder):
    raise FramesError(f'frames: {folder} does not exist; expected the layout {LAYOUT}.')
  videos, empty = {}, []
  for entry in sorted(os.scandir(folder), key=lambda e: e.name):
    stem, extension = os.path.splitext(entry.name)
    if entry.is_dir():
      frames = [f for f in os.listdir(entry.path) if f.lower().endswith(IMAGE_EXTENSIONS)]
      if frames:
        videos[entry.name] = [os.path.join(entry.path, f) for f in sorted(frames, key=_frame_index)]
      else:
        empty.append(entry.path)
    elif extension.lower() in VIDEO_EXTENSIONS:
      videos[stem] = entry.path
  if not videos:
    raise FramesError(f'frames: no videos in {folder}; expected the layout {LAYOUT}.')
  return videos, empty


def folder_digest(root: str) -> str:
  """12 hex digits of the folder's absolute path and its files' names, sizes and mtimes."""
  digest = hashlib.sha256(os.path.abspath(root).encode())
  for base, folders, files in os.walk(root):
    folders.sort()
    for name in sorted(files):
      stat = os.stat(os.path.join(base, name))
      relative = os.path.relpath(os.path.join(base, name), root)
      digest.update(f'{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode())
  return digest.hexdigest()[:12]


def is_validation(video_id: str, fraction: float) -> bool:
  """A stable per-video assignment, so no video is in two splits."""
  digest = hashlib.sha256(video_id.encode()).digest()
  return int.from_bytes(digest[:8], 'big') / 2**64 < fraction


def evenly_spaced(count: int, keep: int) -> list[int]:
  """At most `keep` indices of `count`, evenly spaced, first and last included."""
  if count <= keep:
    return list(range(count))
  return sorted({int(i) for i in np.linspace(0, count - 1, keep).round()})


def square(image: Image.Image, size: int) -> Image.Image:
  """Centre-crops to a square and resizes (Lanczos) to size x size RGB."""
  image = image.convert('RGB')
  side = min(image.size)
  left, top = (image.width - side) // 2, (image.height - side) // 2
  image = image.crop((left, top, left + side, top + side))
  return image if side == size else image.resize((size, size), Image.Resampling.LANCZOS)


def encode(image: Image.Image, encoding: str) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format=ENCODINGS[encoding], **({'quality': 95} if encoding == 'jpeg' else {}))
  return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
  """Encoded frame bytes -> (H, W, 3) uint8."""
  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image.convert('RGB'), np.uint8)


def read_frame(path: str, size: int, encoding: str) -> bytes:
  """One frame file as stored: its own bytes when it already fits, else re-encoded."""
  with open(path, 'rb') as file:
    data = file.read()
  with Image.open(io.BytesIO(data)) as image:
    image.load()  # decodes: a truncated or corrupt file fails here
    if image.size == (size, size) and image.mode == 'RGB' and image.format == ENCODINGS[encoding]:
      return data
    return encode(square(image, size), encoding)


def read_video(path: str, keep: int, size: int, encoding: str) -> list[tuple[int, bytes]]:
  """(frame index, encoded frame) for at most `keep` evenly spaced frames of an .mp4 or .gif."""
  import imageio.v3 as iio  # only videos given as files need it

  plugin = 'pyav' if path.lower().endswith('.mp4') else None
  frames = iio.imread(path, plugin=plugin, index=None)
  if frames.ndim == 3:  # a one-frame gif
    frames = frames[None]
  return [
    (i, encode(square(Image.fromarray(frames[i]), size), encoding))
    for i in evenly_spaced(len(frames), keep)
  ]


class Frames(tfds.core.GeneratorBasedBuilder):
  """Talking-head (or any) videos from a local folder, as FOMM reads them."""

  VERSION = tfds.core.Version('2.0.0')
  RELEASE_NOTES = {
    '1.0.0': 'First release: every frame, raw pixels.',
    '2.0.0': 'Encoded frames, at most frames_per_video per video, .mp4/.gif videos, '
    'frames per video in the metadata, the folder digest in the name.',
  }
  BUILDER_CONFIGS = [FramesConfig()]
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Put the videos in the manual folder (`--config.data.manual_dir=ROOT`) as
  {LAYOUT}, e.g. FOMM's VoxCeleb frames (vox-png).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=tfds.features.FeaturesDict(
        {
          'image': tfds.features.Tensor(shape=(), dtype=np.object_),  # encoded bytes
          'video_id': tfds.features.Text(),
          'frame_index': tfds.features.Scalar(dtype=np.int32),
        }
      ),
      metadata=tfds.core.MetadataDict(),
      # Video order is what lets training find a video's frames (metadata `videos`).
      disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    root = os.fspath(dl_manager.manual_dir)
    config = self.builder_config
    (train, empty), (test, empty_test) = list_videos(root, 'train'), list_videos(root, 'test')
    if len(train) < 2:
      raise FramesError(f'frames: {root}/train holds one video; it needs two (train, validation).')
    validation = {v: f for v, f in train.items() if is_validation(v, config.validation_fraction)}
    if not validation:  # keep at least one validation video
      first = sorted(train)[0]
      validation = {first: train[first]}
    train = {v: f for v, f in train.items() if v not in validation}
    if not train:
      raise FramesError(
        f'frames: validation_fraction={config.validation_fraction} leaves no training video in '
        f'{root}/train; lower it.'
      )
    self.info.metadata['videos'] = {}
    return {
      'train': self._generate_examples(train, 'train', empty),
      'validation': self._generate_examples(validation, 'validation', []),
      'test': self._generate_examples(test, 'test', empty_test),
    }

  def _video_frames(self, source: list[str] | str, bad: list[str]):
    config = self.builder_config
    size, keep, encoding = config.image_size, config.frames_per_video, config.encoding
    if isinstance(source, str):
      try:
        yield from read_video(source, keep, size, encoding)
      except (OSError, ValueError, RuntimeError) as error:  # imageio's and av's errors
        bad.append(f'{source} ({type(error).__name__})')
      return
    for index in evenly_spaced(len(source), keep):
      try:
        yield index, read_frame(source[index], size, encoding)
      except (OSError, ValueError, SyntaxError) as error:  # PIL's errors for bad files
        bad.append(f'{source[index]} ({type(error).__name__})')

  def _generate_examples(self, videos: dict, split: str, empty: list[str]):
    keep = self.builder_config.frames_per_video
    counts, bad, short = [], [], 0
    for video, source in videos.items():
      count = 0
      for index, data in self._video_frames(source, bad):
        yield f'{video}/{index}', {'image': data, 'video_id': video, 'frame_index': index}
        count += 1
      if count:
        counts.append(count)
        short += count < keep
    self.info.metadata['videos'][split] = counts
    frames, tried = sum(counts), sum(counts) + len(bad)
    print(
      f'frames {split}: {frames} frames of {len(counts)} videos stored ({short} with fewer than '
      f'frames_per_video={keep} keep all theirs); {len(bad)} unreadable frames or videos and '
      f'{len(empty)} empty video folders skipped'
      + (f' (first: {(bad or empty)[0]})' if bad or empty else '')
    )
    if tried and len(bad) / tried > self.builder_config.max_bad_fraction:
      raise FramesError(
        f'frames {split}: {len(bad)} of {tried} frames or videos are unreadable (more than '
        f'max_bad_fraction={self.builder_config.max_bad_fraction}), e.g. {bad[0]}; fix or '
        'remove them.'
      )
    if not counts:
      raise FramesError(f'frames {split}: no readable frame in its videos; check the folder.')
