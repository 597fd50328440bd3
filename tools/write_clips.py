"""Writes a split of the synthetic talking-face clips as videos in FOMM's layout.

  python -m tools.write_clips --config=configs/fomm.py --split=test --out=datasets/face_clips_vox

ROOT/<split>/<clip id>/<frame>.png (FOMM's vox-png layout), so that
`tools.reconstruction` and `tools.animate` read the held-out clips like any
video folder:
  python -m tools.reconstruction --generator=workdirs/fomm/generator \\
    --detector=workdirs/fomm/detector --data=datasets/face_clips_vox --size=64
"""

from __future__ import annotations

import os
import sys

from absl import flags
from ml_collections import config_flags

from tools import cli

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/fomm.py', 'whose clips to write')
_SPLIT = flags.DEFINE_enum('split', 'test', ['train', 'validation', 'test'], 'the split to write')
_OUT = flags.DEFINE_string('out', None, 'a new folder (ROOT)', required=True)
_MAX_CLIPS = flags.DEFINE_integer('max_clips', None, 'the first clips only')


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from PIL import Image
  from tqdm import tqdm

  from data import clip_pairs, pipeline

  folder = os.path.join(_OUT.value, _SPLIT.value)
  if os.path.exists(folder):
    sys.exit(f'error: {folder} already exists; choose another --out or delete it first.')
  try:
    builder = pipeline.prepare(_CONFIG.value.data)
    clips = clip_pairs.clip_frames(builder, _SPLIT.value, max_clips=_MAX_CLIPS.value)
  except (ValueError, OSError) as error:
    sys.exit(f'error: {error}')
  for clip_id, video, _ in tqdm(clips, unit='clip'):
    target = os.path.join(folder, f'clip{clip_id:05d}')
    os.makedirs(target)
    for i, frame in enumerate(video):
      Image.fromarray(frame).save(os.path.join(target, f'{i:07d}.png'))
  print(f'wrote {len(clips)} clips of {_SPLIT.value} to {folder}')


if __name__ == '__main__':
  cli.run(main)
