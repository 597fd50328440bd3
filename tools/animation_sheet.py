"""A picture of held-out clips animated by a FOMM run's generator, its detector and others driving.

  python -m tools.animation_sheet --run=workdirs/fomm \\
    --detector=edgesegnet=workdirs/study_fomm/edgeseg_L1_seed0 --out=animation.png

--run is a finished FOMM training run (`python main.py --config=configs/fomm.py`):
its generator, its detector (shown first, as 'fomm') and its clips (config.json).
For each of the first --clips clips of --split, at --frames evenly spaced
frames: the driving frames, then per detector two rows: the clip's first frame
re-posed by each frame's absolute keypoints (FOMM's reconstruction, which
tools.reconstruction scores), and the first frame of the next clip, another
face, animated by the clip's motion relative to its first frame (demo.py
--relative --adapt_scale, what tools.animate does).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import flags

from tools import cli

_RUN = flags.DEFINE_string('run', None, 'a finished FOMM training workdir', required=True)
_DETECTORS = flags.DEFINE_multi_string(
  'detector', [], "NAME=FOLDER of another keypoint model (repeat), after the run's own"
)
_SPLIT = flags.DEFINE_enum('split', 'test', ['train', 'validation', 'test'], 'whose clips')
_CLIPS = flags.DEFINE_integer('clips', 2, 'clips shown (each also animates the next clip)')
_FRAMES = flags.DEFINE_integer('frames', 6, 'frames shown per clip, evenly spaced')
_OUT = flags.DEFINE_string('out', None, 'the .png to write (new)', required=True)


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  import ml_collections

  if os.path.exists(_OUT.value):
    sys.exit(f'error: {_OUT.value} already exists; choose another --out or delete it first.')
  if _CLIPS.value < 1 or _FRAMES.value < 2:
    sys.exit(f'error: --clips ({_CLIPS.value}) must be >= 1 and --frames ({_FRAMES.value}) >= 2.')
  from data import clip_pairs, pipeline
  from train import animation, fomm_plots

  config_path = os.path.join(_RUN.value, 'config.json')
  if not os.path.isfile(config_path):
    sys.exit(
      f'error: {_RUN.value} has no config.json; pass the workdir of a finished FOMM run '
      '(python main.py --config=configs/fomm.py).'
    )
  with open(config_path) as f:
    data = ml_collections.ConfigDict(json.load(f)['data'])
  try:
    generator, _ = animation.load_generator(os.path.join(_RUN.value, 'generator'))
    detectors = {'fomm': animation.load_detector(os.path.join(_RUN.value, 'detector'))[0]}
    for entry in _DETECTORS.value:
      name, _, path = entry.rpartition('=')
      detectors[name or path] = animation.load_detector(path)[0]
    builder = pipeline.prepare(data)
    clips = clip_pairs.clip_frames(builder, _SPLIT.value, max_clips=_CLIPS.value + 1)
    if len(clips) < 2:
      raise ValueError(f'the {_SPLIT.value} split has {len(clips)} clip; at least 2 are needed.')
    size = clips[0][1].shape[1]
    animators = {n: animation.Animator(generator, d, size=size) for n, d in detectors.items()}
  except ValueError as error:  # CheckpointError, AnimationError, data errors
    sys.exit(f'error: {error}')
  picked = np.linspace(0, len(clips[0][1]) - 1, _FRAMES.value).round().astype(int)
  rows = []
  shown = min(_CLIPS.value, len(clips) - 1)
  for index in range(shown):
    (clip_id, video, _), (other_id, other, _) = clips[index], clips[index + 1]
    driving = video[picked]
    rows.append((f'clip {clip_id}: driving', None, driving / 255.0))
    for name, animator in animators.items():
      rebuilt, _ = animator.drive(video[0], driving, relative=False, adapt_movement_scale=False)
      rows.append((f'{name}: reconstruction', video[0] / 255.0, rebuilt))
      moved, _ = animator.drive(other[0], driving)
      rows.append((f'{name}: clip {other_id} animated', other[0] / 255.0, moved))
  columns = [f'frame {i}' for i in picked]
  title = f'held-out {_SPLIT.value} clips driving the generator of {os.path.relpath(_RUN.value)}'
  fomm_plots.sheet(rows, columns, _OUT.value, title)
  print(f'wrote {_OUT.value}: {shown} clips x {len(animators)} detectors')


if __name__ == '__main__':
  cli.run(main)
