"""Pictures of a run: loss curves, and validation images with keypoints drawn on them."""

from __future__ import annotations

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from data.show import draw_keypoints  # noqa: E402


def loss_curves(records: list[dict], path: str, *, title: str) -> None:
  """Train loss (every logged step, each term) and validation loss against the step."""
  train = [r for r in records if r['split'] == 'train']
  val = [r for r in records if r['split'] == 'validation']
  figure, ax = plt.subplots(figsize=(7, 4))
  if train:
    steps = [r['step'] for r in train]
    ax.plot(steps, [r['loss'] for r in train], label='train loss', color='tab:blue')
    for term, style in (('loss_kp', ':'), ('loss_jacobian', '--')):
      if term in train[0]:
        ax.plot(
          steps,
          [r[term] for r in train],
          style,
          color='tab:blue',
          alpha=0.6,
          label=f'train {term[5:]}',
        )
  if val:
    ax.plot(
      [r['step'] for r in val], [r['loss'] for r in val], 'o-', color='tab:red', label='val loss'
    )
    ax.plot(
      [r['step'] for r in val],
      [r['distance'] for r in val],
      's--',
      color='tab:green',
      label='val distance',
    )
  ax.set_yscale('log')
  ax.set_xlabel('step')
  ax.set_title(f'{title}: losses')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)


def keypoints_grid(shown: dict, path: str, *, title: str, count: int = 8) -> None:
  """Validation images with the student's (o), teacher's (x) and true (+) keypoints."""
  images = np.asarray(shown['image'])[:count]
  size = images.shape[1]
  figure, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.6), squeeze=False)
  for i, ax in enumerate(axes[0]):
    ax.imshow(np.clip(images[i], 0, 1))
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    ax.axis('off')
    if 'gt_kp' in shown:
      draw_keypoints(ax, shown['gt_kp'][i], size=size, marker='+', label='truth')
    if 'teacher_kp' in shown:
      draw_keypoints(ax, shown['teacher_kp'][i], size=size, marker='x', label='teacher')
    draw_keypoints(ax, shown['student_kp'][i], size=size, marker='o', label='student')
  axes[0][0].legend(fontsize=6, loc='lower left')
  figure.suptitle(f'{title}: validation keypoints (o student, x teacher, + truth)', fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)
