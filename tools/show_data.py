"""Writes a PNG grid of dataset examples with landmarks and jacobian axes drawn on them.

python -m tools.show_data --dataset=synthetic_faces --out=synthetic_faces.png
python -m tools.show_data --jacobian_stats --count=2000   # per-entry mean and std
python -m tools.show_data --dataset=synthetic_face_clips --out=docs/synthetic_face_clips.png
"""

from __future__ import annotations

import sys

from absl import flags

from tools import cli

_DATASET = flags.DEFINE_enum(
  'dataset', 'synthetic_faces', ['synthetic_faces', 'frames', 'synthetic_face_clips'], 'dataset'
)
_SPLIT = flags.DEFINE_string('split', 'train', 'train, validation or test')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 64, 'stored and shown frame size')
_DATA_DIR = flags.DEFINE_string('data_dir', 'datasets', 'where TFDS writes prepared datasets')
_MANUAL_DIR = flags.DEFINE_string('manual_dir', '', 'frames: ROOT of the frame folders')
_COUNT = flags.DEFINE_integer('count', 16, 'examples to show')
_CLIPS = flags.DEFINE_integer(
  'clips', 4, 'synthetic_face_clips: clips to show, a row of 8 evenly spaced frames each'
)
_OUT = flags.DEFINE_string('out', 'synthetic_faces.png', 'the PNG to write')
_STATS = flags.DEFINE_bool(
  'jacobian_stats', False, "print the per-entry mean and std of the --count examples' jacobians"
)
_PLAIN = flags.DEFINE_bool(
  'plain', False, 'write the first example alone, undrawn (an input for examples/*.py)'
)


def _show_clips(config) -> None:
  """A row per clip: evenly spaced frames with their true landmarks (no jacobian axes:
  the motion is what to see)."""
  from data import clip_pairs, pipeline, show
  from data.synthetic_faces import SPLITS

  if _STATS.value or _PLAIN.value:
    sys.exit('error: --jacobian_stats and --plain read images; use --dataset=synthetic_faces.')
  if _SPLIT.value not in SPLITS:  # before building anything
    sys.exit(f'error: unknown split {_SPLIT.value!r}; valid splits: {", ".join(SPLITS)}.')
  clips = clip_pairs.clip_frames(pipeline.prepare(config), _SPLIT.value, _CLIPS.value)
  title = f'synthetic_face_clips / {_SPLIT.value}: 8 frames of each clip, true landmarks'
  show.clip_grid(clips, _OUT.value, title=title)
  print(f'wrote {_OUT.value}')


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from configs import base
  from data import pipeline, show

  clips = _DATASET.value == 'synthetic_face_clips'
  config = base.clip_data_config() if clips else base.data_config()
  config.update(
    {
      'name': _DATASET.value,
      'image_size': _IMAGE_SIZE.value,
      'data_dir': _DATA_DIR.value,
      'manual_dir': _MANUAL_DIR.value,
    }
  )
  if clips:
    return _show_clips(config)
  try:
    batch = next(
      pipeline.make_iterator(
        config, _SPLIT.value, batch_size=_COUNT.value, model_size=_IMAGE_SIZE.value, train=False
      )
    )
  except ValueError as error:
    sys.exit(f'error: {error}')
  if _STATS.value:
    if 'jacobian' not in batch:
      sys.exit(
        f'error: --jacobian_stats needs jacobians; {_DATASET.value} has none (use synthetic_faces).'
      )
    print(show.jacobian_table(batch['jacobian']))
    return
  if _PLAIN.value:
    import matplotlib.pyplot as plt

    plt.imsave(_OUT.value, batch['image'][0])
  else:
    title = f'{_DATASET.value} / {_SPLIT.value}: landmarks and jacobian axes'
    show.example_grid(batch, _OUT.value, title=title)
  print(f'wrote {_OUT.value}')


if __name__ == '__main__':
  cli.run(main)
