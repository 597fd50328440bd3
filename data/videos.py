"""One image or one video in, one video out: what the animation commands read and write.

Frames are read as `data.frames` stores them for FOMM's detector: RGB,
centre-cropped to a square and resized (Lanczos) to the size asked
(`frames.square`); a video is an .mp4 or .gif file or a folder of frame
images in frame-number order (`frames.list_videos`' order). Videos are
written as .mp4 (H.264 through PyAV, as `data.demo_videos` writes them) or
.gif (PIL).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from data import frames

OUTPUT_EXTENSIONS = ('.mp4', '.gif')


class VideoError(ValueError):
  """An image or video that cannot be read or written; the message names the path and the fix."""


def read_image(path: str | os.PathLike, size: int) -> np.ndarray:
  """One image file as a (size, size, 3) uint8 frame.

  Raises:
    VideoError: when the file is missing or not an image.
  """
  path = os.fspath(path)
  try:
    with Image.open(path) as image:
      return np.asarray(frames.square(image, size), np.uint8)
  except (OSError, ValueError, SyntaxError) as error:  # PIL's errors for bad files
    raise VideoError(
      f'{path} is not a readable image ({type(error).__name__}); pass a .png or .jpg file.'
    ) from error


def _frame_files(folder: str) -> list[str]:
  names = [f for f in os.listdir(folder) if f.lower().endswith(frames.IMAGE_EXTENSIONS)]
  return [os.path.join(folder, f) for f in sorted(names, key=frames._frame_index)]


def video_fps(path: str | os.PathLike, default: float = 25.0) -> float:
  """The frame rate a video file records (FOMM's demo keeps the driving video's); else `default`."""
  path = os.fspath(path)
  if os.path.isdir(path) or not path.lower().endswith('.mp4'):
    return default
  import imageio.v3 as iio

  try:
    fps = iio.immeta(path, plugin='pyav').get('fps')
  except (OSError, ValueError, RuntimeError):  # read_video says what is wrong with the file
    return default
  return float(fps) if fps else default


def _read_file(path: str) -> np.ndarray:
  import imageio.v3 as iio  # only videos given as files need it

  if not path.lower().endswith(frames.VIDEO_EXTENSIONS):
    raise VideoError(
      f'{path} is not a video this reads; pass an .mp4 or .gif file or a folder of '
      f'{"/".join(frames.IMAGE_EXTENSIONS)} frames.'
    )
  # Named plugins: imageio would otherwise try every plugin it has on a bad file.
  plugin = 'pyav' if path.lower().endswith('.mp4') else 'pillow'
  try:
    video = iio.imread(path, plugin=plugin, index=None)
  except (OSError, ValueError, RuntimeError) as error:  # imageio's and av's errors
    raise VideoError(
      f'{path} cannot be read as a video ({type(error).__name__}); check the file.'
    ) from error
  return video[None] if video.ndim == 3 else video  # a one-frame gif


def read_video(path: str | os.PathLike, size: int, *, max_frames: int | None = None) -> np.ndarray:
  """A video file (.mp4, .gif) or a frame folder as (T, size, size, 3) uint8 frames.

  Args:
    path: the video file or the folder of frame images.
    size: the square frame size.
    max_frames: keep the first `max_frames` frames (FOMM's protocols run from the first).

  Raises:
    VideoError: a missing, unreadable or empty video, naming it.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise VideoError(f'{path} does not exist; pass a video file or a folder of frames.')
  if os.path.isdir(path):
    files = _frame_files(path)[:max_frames]
    images = []
    for file in files:
      try:
        images.append(read_image(file, size))
      except VideoError as error:
        raise VideoError(f'{error} (a frame of the video {path})') from error
  else:
    video = _read_file(path)[:max_frames]
    images = [np.asarray(frames.square(Image.fromarray(f), size), np.uint8) for f in video]
  if not images:
    raise VideoError(f'{path} holds no frames; pass a video with at least one frame.')
  return np.stack(images)


def check_output(path: str | os.PathLike) -> None:
  """Raises VideoError for an output path this cannot write (existing, or another format)."""
  path = os.fspath(path)
  if not path.lower().endswith(OUTPUT_EXTENSIONS):
    raise VideoError(f'{path}: the output must be an .mp4 or .gif file; rename it.')
  if os.path.exists(path):
    raise VideoError(f'{path} already exists; choose another output path or delete it first.')
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    raise VideoError(f'{parent} does not exist; create it first.')


def write_video(path: str | os.PathLike, video: np.ndarray, *, fps: float = 25.0) -> None:
  """Writes (T, H, W, 3) uint8 frames as .mp4 (H.264) or .gif, whole or not at all.

  The file is written beside its final name and renamed when complete, so an
  interrupted write leaves no partial video.
  """
  import imageio.v3 as iio

  path = os.fspath(path)
  check_output(path)
  extension = os.path.splitext(path)[1].lower()
  partial = f'{path}.partial{extension}'
  try:
    if extension == '.mp4':
      # yuv420p (what players expect) needs even sides.
      height, width = video.shape[1:3]
      video = np.pad(video, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode='edge')
      iio.imwrite(partial, video, plugin='pyav', codec='libx264', fps=fps)
    else:
      images = [Image.fromarray(f) for f in video]
      duration = round(1000 / fps)
      images[0].save(partial, save_all=True, append_images=images[1:], duration=duration, loop=0)
    os.replace(partial, path)
  finally:
    if os.path.exists(partial):
      os.remove(partial)


def draw_keypoints(frame: np.ndarray, kp: np.ndarray, *, radius: int = 2) -> np.ndarray:
  """`frame` (H, W, 3 uint8) with normalised keypoints (K, 2) drawn as dots, one colour each."""
  from data.show import KP_COLOURS

  image = Image.fromarray(frame)
  draw = ImageDraw.Draw(image)
  height, width = frame.shape[:2]
  for k, (x, y) in enumerate(np.asarray(kp)):
    px, py = (x + 1) * (width - 1) / 2, (y + 1) * (height - 1) / 2
    colour = tuple(int(255 * c) for c in KP_COLOURS[k % len(KP_COLOURS)][:3])
    draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=colour)
  return np.asarray(image)


def to_uint8(images: np.ndarray) -> np.ndarray:
  """Float images in [0, 1] -> uint8 (rounded, clipped)."""
  return np.clip(np.round(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


def side_by_side(
  source: np.ndarray, driving: np.ndarray, kp: np.ndarray, result: np.ndarray
) -> np.ndarray:
  """(T, H, 3W, 3) uint8: the source | each driving frame with its keypoints | the result.

  Args:
    source: (H, W, 3) uint8.
    driving: (T, H, W, 3) uint8.
    kp: (T, K, 2) the driving frames' normalised keypoints.
    result: (T, H, W, 3) uint8.
  """
  drawn = np.stack([draw_keypoints(f, k) for f, k in zip(driving, kp, strict=True)])
  sources = np.broadcast_to(source, driving.shape)
  return np.concatenate([sources, drawn, result], axis=2)
