"""Pictures of a FOMM training run: its curves, and a validation clip re-posed."""

from __future__ import annotations

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from data.show import draw_keypoints  # noqa: E402


def curves(records: list[dict], path: str) -> None:
  """Train loss terms (left), validation reconstruction L1 and landmark error (right)."""
  train = [r for r in records if r['split'] == 'train']
  val = [r for r in records if r['split'] == 'validation']
  figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
  if train:
    steps = [r['step'] for r in train]
    for term in ['loss', *sorted(k for k in train[0] if k.startswith('loss_'))]:
      left.plot(steps, [r[term] for r in train], label=term, alpha=0.9 if term == 'loss' else 0.6)
  left.set_yscale('log')
  left.set_title('FOMM training: loss terms (weighted)')
  if val:
    steps = [r['step'] for r in val]
    right.plot(steps, [r['reconstruction_l1'] for r in val], 'o-', label='reconstruction L1')
    right.plot(steps, [r['landmark_error'] for r in val], 's--', label='landmark regression error')
  right.set_title('validation clips')
  for ax in (left, right):
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)


def reconstruction(shown: dict, path: str, *, count: int = 8) -> None:
  """The source, then driving frames (with the detector's keypoints) above their re-posed source."""
  driving, prediction = np.asarray(shown['driving']), np.asarray(shown['prediction'])
  picked = np.linspace(0, len(driving) - 1, min(count, len(driving))).round().astype(int)
  size = driving.shape[1]
  figure, axes = plt.subplots(2, len(picked) + 1, figsize=(1.6 * (len(picked) + 1), 3.4))
  axes[0][0].imshow(np.clip(shown['source'], 0, 1))
  axes[0][0].set_title('source', fontsize=7)
  for column, i in enumerate(picked, start=1):
    axes[0][column].imshow(np.clip(driving[i], 0, 1))
    axes[0][column].set_xlim(-0.5, size - 0.5)
    axes[0][column].set_ylim(size - 0.5, -0.5)
    draw_keypoints(axes[0][column], shown['kp'][i], size=size, marker='o', label='keypoints')
    axes[1][column].imshow(np.clip(prediction[i], 0, 1))
    axes[0][column].set_title(f'driving {i}', fontsize=7)
  for ax in axes.flat:
    ax.axis('off')
  figure.suptitle(
    'validation clip: driving frames (top) and the source re-posed (bottom)', fontsize=8
  )
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)


def sheet(rows: list[tuple[str, np.ndarray | None, np.ndarray]], columns: list[str], path: str,
          title: str) -> None:  # fmt: skip
  """A grid of frames: per row (label, source frame or None, frames (N, S, S, 3) in [0, 1])."""
  figure, axes = plt.subplots(
    len(rows), len(columns) + 1, figsize=(1.25 * (len(columns) + 1) + 1.4, 1.3 * len(rows)),
    squeeze=False,
  )  # fmt: skip
  for axis_row, (label, source, frames) in zip(axes, rows, strict=True):
    if source is not None:
      axis_row[0].imshow(np.clip(source, 0, 1))
    axis_row[0].text(-0.1, 0.5, label, transform=axis_row[0].transAxes, ha='right', va='center',
                     fontsize=7)  # fmt: skip
    for axis, frame in zip(axis_row[1:], frames, strict=True):
      axis.imshow(np.clip(frame, 0, 1))
  for axis, name in zip(axes[0], ['source', *columns], strict=True):
    axis.set_title(name, fontsize=7)
  for axis in axes.flat:
    axis.axis('off')
  figure.suptitle(title, fontsize=8)
  width, height = figure.get_size_inches()
  # Room for the row labels on the left and for the title above the column names.
  figure.tight_layout(rect=(1.1 / width, 0, 1, 1 - 0.25 / height))
  figure.savefig(path, dpi=90)
  plt.close(figure)
