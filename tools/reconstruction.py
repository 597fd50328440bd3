"""FOMM's reconstruction score for several detectors driving one generator, as one table.

  python -m tools.reconstruction --generator=checkpoints/fomm_vox_generator \
    --detector=checkpoints/fomm_vox,workdirs/edgeseg,workdirs/l3unet \
    --data=vox-png --out=reconstruction.json

FOMM's reconstruction.py: each video of ROOT/<split> (data.frames' layout)
is re-generated from its first frame, driven by every frame's absolute
keypoints; the score is the mean L1 over pixels in [0, 1] of all frames.
Every detector runs on the same frames, the first (the teacher) being the
reference for the keypoint distance. Writes the JSON and prints a markdown
table. AKD and AED are not computed (docs/animation.md). Library:
`train.reconstruction`.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags

from tools import cli

_GENERATOR = flags.DEFINE_string(
  'generator', None, 'FOMM generator folder (tools.convert_fomm --generator_out)', required=True
)
_DETECTORS = flags.DEFINE_list(
  'detector', None, 'detector folders, comma-separated; the first is the reference', required=True
)
_DATA = flags.DEFINE_string(
  'data', None, 'videos in FOMM layout: ROOT/<split>/<video>', required=True
)
_SPLIT = flags.DEFINE_string('split', 'test', 'the folder of ROOT holding the videos')
_MAX_VIDEOS = flags.DEFINE_integer('max_videos', None, 'the first videos (by name) only')
_MAX_FRAMES = flags.DEFINE_integer('max_frames', None, 'the first frames of each video only')
_BATCH = flags.DEFINE_integer('batch', 8, 'frames per generator call')
_SIZE = flags.DEFINE_integer('size', None, "frame size (default: the generator's, 256 for vox)")
_OUT = flags.DEFINE_string('out', None, 'JSON to write (new); default: the table only')


def _check_counts() -> None:
  if not _DETECTORS.value:
    raise ValueError('--detector names no folder; pass the teacher first, then the students.')
  for name, holder in (('max_videos', _MAX_VIDEOS), ('max_frames', _MAX_FRAMES)):
    if holder.value is not None and holder.value < 1:
      raise ValueError(f'--{name} must be positive, got {holder.value}.')


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from tqdm import tqdm

  from train import animation, reconstruction

  out = _OUT.value
  try:
    _check_counts()
    if out and os.path.exists(out):
      raise ValueError(f'{out} already exists; choose another --out or delete it first.')
    paths = reconstruction.split_videos(_DATA.value, _SPLIT.value, max_videos=_MAX_VIDEOS.value)
    generator, _ = animation.load_generator(_GENERATOR.value)
    loaded = [animation.load_detector(path) for path in _DETECTORS.value]
    with tqdm(unit='frame') as bar:  # closed first: the error line is last
      results = reconstruction.reconstruct(
        generator,
        [detector for detector, _ in loaded],
        paths,
        size=_SIZE.value,
        batch=_BATCH.value,
        max_frames=_MAX_FRAMES.value,
        progress=lambda done: bar.update(done - bar.n),
      )
  except ValueError as error:  # AnimationError, CheckpointError, VideoError, FramesError
    sys.exit(f'error: {error}')
  names = []
  for path, (_, meta), result in zip(_DETECTORS.value, loaded, results, strict=True):
    result.update(detector=os.path.abspath(path), model=meta['model'])
    names.append(f'{os.path.basename(os.path.normpath(path))} ({meta["model"]})')
  summary = {
    'generator': os.path.abspath(_GENERATOR.value),
    'data': os.path.abspath(_DATA.value),
    'split': _SPLIT.value,
    'videos': len(paths),
    'frames': results[0]['frames'],
    'detectors': results,
  }
  if out:
    partial = f'{out}.partial'
    with open(partial, 'w') as file:
      json.dump(summary, file, indent=2)
    os.replace(partial, out)
  print(f'FOMM reconstruction on {len(paths)} videos, {results[0]["frames"]} frames:')
  print(reconstruction.markdown_table(names, results))


if __name__ == '__main__':
  cli.run(main)
