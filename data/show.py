"""Writes a PNG grid of dataset examples with landmarks and jacobian axes drawn on them.

Usage:
  python -m data.show --dataset=synthetic_faces --out=synthetic_faces.png
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from data import pipeline  # noqa: E402

# One colour per landmark, shared by every figure of the project.
KP_COLOURS = plt.get_cmap('tab10')(np.arange(10))


def draw_keypoints(ax, kp, jacobian=None, *, size, marker='o', label=None, axis_length=0.12):
  """Draws normalised keypoints (and the jacobian's two columns as axes) on `ax`."""
  pixels = (np.asarray(kp) + 1) * (size - 1) / 2
  filled = marker in ('o', 's', 'D', '^')
  ax.scatter(
    pixels[:, 0],
    pixels[:, 1],
    c=KP_COLOURS[: len(kp)],
    s=18,
    marker=marker,
    edgecolors='white' if filled else None,
    linewidths=0.6,
    label=label,
  )
  if jacobian is not None:
    for k, (point, matrix) in enumerate(zip(pixels, np.asarray(jacobian), strict=True)):
      for column in range(2):
        # A unit step along local axis `column` moves the point by this many pixels;
        # scaled so that a typical feature axis is visible.
        step = (
          matrix[:, column]
          * (size - 1)
          / 2
          * axis_length
          / max(np.linalg.norm(matrix, axis=0).mean(), 1e-6)
        )
        ax.plot(*np.stack([point, point + step]).T, color=KP_COLOURS[k], lw=1)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--dataset', default='synthetic_faces', choices=pipeline.DATASETS)
  parser.add_argument('--split', default='train')
  parser.add_argument('--image_size', type=int, default=64)
  parser.add_argument('--data_dir', default='datasets')
  parser.add_argument('--manual_dir', default='', help='frames: ROOT of the frame folders')
  parser.add_argument('--count', type=int, default=16)
  parser.add_argument('--out', default='synthetic_faces.png')
  args = parser.parse_args(argv)
  config = pipeline.default_config()
  config.update(
    {
      'name': args.dataset,
      'image_size': args.image_size,
      'data_dir': args.data_dir,
      'manual_dir': args.manual_dir,
    }
  )
  try:
    batch = next(
      pipeline.make_iterator(
        config, args.split, batch_size=args.count, model_size=args.image_size, train=False
      )
    )
  except ValueError as error:
    sys.exit(f'error: {error}')
  columns = min(8, args.count)
  rows = -(-args.count // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2 * rows), squeeze=False)
  for ax in axes.ravel():
    ax.axis('off')
  for i, ax in enumerate(axes.ravel()[: len(batch['image'])]):
    ax.imshow(batch['image'][i])
    ax.set_xlim(-0.5, args.image_size - 0.5)
    ax.set_ylim(args.image_size - 0.5, -0.5)
    if 'kp' in batch:
      draw_keypoints(ax, batch['kp'][i], batch['jacobian'][i], size=args.image_size)
  figure.suptitle(f'{args.dataset} / {args.split}: landmarks and jacobian axes')
  figure.tight_layout()
  figure.savefig(args.out, dpi=80)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
