"""Writes a PNG grid of dataset examples with landmarks and jacobian axes drawn on them.

Command line: `python -m tools.show_data --dataset=synthetic_faces --out=synthetic_faces.png`.
"""

from __future__ import annotations

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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
        # Where a step of `axis_length` (normalised units) along reference axis `column`
        # lands: FOMM-like jacobians are dimensionless, so the identity draws a plain cross.
        step = matrix[:, column] * axis_length * (size - 1) / 2
        ax.plot(*np.stack([point, point + step]).T, color=KP_COLOURS[k], lw=1)


def example_grid(
  batch: dict[str, np.ndarray], path: str, *, title: str, columns: int = 8, dpi: int = 80
) -> None:
  """A PNG grid of a batch's images with landmarks and jacobian axes (where it has them)."""
  count, size = len(batch['image']), batch['image'].shape[1]
  columns = min(columns, count)
  rows = -(-count // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2 * rows), squeeze=False)
  for ax in axes.ravel():
    ax.axis('off')
  for i, ax in enumerate(axes.ravel()[:count]):
    ax.imshow(batch['image'][i])
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    if 'kp' in batch:
      jacobian = batch['jacobian'][i] if 'jacobian' in batch else None
      draw_keypoints(ax, batch['kp'][i], jacobian, size=size)
  figure.suptitle(title)
  figure.tight_layout()
  figure.savefig(path, dpi=dpi)
  plt.close(figure)


def clip_grid(clips, path: str, *, title: str, columns: int = 8) -> None:
  """A PNG grid of (clip id, video, kp) clips: a row each, `columns` evenly spaced frames."""
  images, kp = [], []
  for _, video, points in clips:
    chosen = np.linspace(0, len(video) - 1, columns).round().astype(int)
    images.append(video[chosen])
    kp.append(points[chosen])
  batch = {'image': np.concatenate(images), 'kp': np.concatenate(kp)}
  # 64 dpi: twice the pixels of a 64x64 frame per panel, half the file of the default 80.
  example_grid(batch, path, title=title, columns=columns, dpi=64)


def jacobian_table(jacobian: np.ndarray) -> str:
  """Markdown: per landmark, each jacobian entry's mean +- std over the examples (B, K, 2, 2)."""
  from data import faces

  lines = [
    f'| landmark ({len(jacobian)} examples) | J11 | J12 | J21 | J22 |',
    '|---|---:|---:|---:|---:|',
  ]
  mean, std = jacobian.mean(0), jacobian.std(0)
  for k, name in enumerate(faces.LANDMARKS[: jacobian.shape[1]]):
    cells = ' | '.join(f'{mean[k, i, j]:.2f} +- {std[k, i, j]:.2f}' for i in (0, 1) for j in (0, 1))
    lines.append(f'| {name} | {cells} |')
  return '\n'.join(lines)
