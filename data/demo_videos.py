"""A folder of short videos of moving synthetic faces in FOMM's layout (vox-png).

For trying the `frames` path without VoxCeleb, measuring it (storage,
throughput), and the tests: ROOT/{train,test}/<video>/<frame>.png, with the
last training video written as an .mp4 instead (FOMM reads both).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from PIL import Image

from data import faces


def moving_face(seed: int, count: int, size: int = 256) -> list[np.ndarray]:
  """`count` frames (size x size RGB uint8) of one synthetic face drifting and turning."""
  rng = np.random.default_rng(seed)
  face = faces.sample_face(rng, occlusion_rate=0.0)
  out = []
  for i in range(count):
    angle = 0.03 * i
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = dataclasses.replace(face, A=turn @ face.A, t=face.t + np.array([0.02 * i, 0.0]))
    out.append(faces.render(moved, size, rng))
  return out


def write_folder(
  root: str | os.PathLike,
  *,
  train: tuple[str, ...],
  test: tuple[str, ...],
  count: int,
  size: int = 256,
  progress=None,
) -> None:
  """Writes the videos; `progress(done)` is called after each one."""
  import imageio.v3 as iio

  done = 0
  for part, videos in (('train', train), ('test', test)):
    folder = os.path.join(root, part)
    os.makedirs(folder, exist_ok=True)
    for k, video in enumerate(videos):
      images = moving_face(100_000 * (part == 'test') + k, count, size)
      if part == 'train' and k == len(videos) - 1:
        path = os.path.join(folder, f'{video}.mp4')
        iio.imwrite(path, np.stack(images), plugin='pyav', codec='libx264')
      else:
        os.makedirs(os.path.join(folder, video))
        for i, image in enumerate(images):
          Image.fromarray(image).save(os.path.join(folder, video, f'{i:07d}.png'))
      done += 1
      if progress:
        progress(done)
