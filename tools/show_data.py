"""Writes a PNG grid of dataset examples with landmarks and jacobian axes drawn on them.

python -m tools.show_data --dataset=synthetic_faces --out=synthetic_faces.png
python -m tools.show_data --jacobian_stats --count=2000   # per-entry mean and std
"""

from __future__ import annotations

import sys

from absl import flags

from tools import cli

_DATASET = flags.DEFINE_enum('dataset', 'synthetic_faces', ['synthetic_faces', 'frames'], 'dataset')
_SPLIT = flags.DEFINE_string('split', 'train', 'train, validation or test')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 64, 'stored and shown frame size')
_DATA_DIR = flags.DEFINE_string('data_dir', 'datasets', 'where TFDS writes prepared datasets')
_MANUAL_DIR = flags.DEFINE_string('manual_dir', '', 'frames: ROOT of the frame folders')
_COUNT = flags.DEFINE_integer('count', 16, 'examples to show')
_OUT = flags.DEFINE_string('out', 'synthetic_faces.png', 'the PNG to write')
_STATS = flags.DEFINE_bool(
  'jacobian_stats', False, "print the per-entry mean and std of the --count examples' jacobians"
)
_PLAIN = flags.DEFINE_bool(
  'plain', False, 'write the first example alone, undrawn (an input for examples/*.py)'
)


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from configs import base
  from data import pipeline, show

  config = base.data_config()
  config.update(
    {
      'name': _DATASET.value,
      'image_size': _IMAGE_SIZE.value,
      'data_dir': _DATA_DIR.value,
      'manual_dir': _MANUAL_DIR.value,
    }
  )
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
