"""Writes a folder of moving synthetic faces in FOMM's vox-png layout (`data.demo_videos`).

  python -m tools.demo_videos --out=/tmp/demo-vox --videos=20 --frames=64

Then `python main.py --config=configs/vox.py --config.data.manual_dir=/tmp/demo-vox ...`
runs FOMM's path on it, and `python -m tools.throughput --manual_dir=/tmp/demo-vox`
measures its storage and pipeline rate.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from tools import cli

_OUT = flags.DEFINE_string('out', None, 'folder to write (new)', required=True)
_VIDEOS = flags.DEFINE_integer('videos', 20, 'training videos (the last one as an .mp4)')
_TEST = flags.DEFINE_integer('test_videos', 2, 'test videos')
_FRAMES = flags.DEFINE_integer('frames', 64, 'frames per video')
_SIZE = flags.DEFINE_integer('size', 256, 'frame size')


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from tqdm import tqdm

  from data import demo_videos

  if os.path.exists(_OUT.value):
    sys.exit(f'error: {_OUT.value} already exists; choose another --out or delete it first.')
  if min(_VIDEOS.value, _TEST.value, _FRAMES.value) < 1 or _SIZE.value < 16:
    sys.exit('error: --videos, --test_videos and --frames must be positive, --size at least 16.')
  bar = tqdm(total=_VIDEOS.value + _TEST.value, unit='video')
  demo_videos.write_folder(
    _OUT.value,
    train=tuple(f'train{k:04d}' for k in range(_VIDEOS.value)),
    test=tuple(f'test{k:04d}' for k in range(_TEST.value)),
    count=_FRAMES.value,
    size=_SIZE.value,
    progress=lambda done: bar.update(done - bar.n),
  )
  bar.close()
  print(f'wrote {_OUT.value}: {_VIDEOS.value} + {_TEST.value} videos of {_FRAMES.value} frames')


if __name__ == '__main__':
  cli.run(main)
