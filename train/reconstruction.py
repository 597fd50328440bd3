"""FOMM's reconstruction protocol (reconstruction.py) for several detectors on the same videos.

For each test video the first frame is the source and every frame, the first
included, drives it by its absolute keypoints (no relative motion); the
score is the mean L1 distance between the generated and the real frame over
pixels in [0, 1], averaged over all frames of all videos as FOMM's
`np.mean(loss_list)`. Run with the teacher first and students after, the
same frames give each student's cost in animation quality (its L1 beside
the teacher's) and how far its keypoints are from the teacher's.

FOMM's papers also report AKD and AED, which need face-alignment's landmark
network and OpenFace's identity embedding on the generated and real frames;
neither can be had here. `frame_metrics` is their hook: each is a function of
(generated, real) float frames (B, H, W, 3) returning one value per frame,
averaged like L1 and reported beside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from flax import nnx

from data import frames, videos
from train.animation import Animator

# (generated, real) frames (B, H, W, 3) in [0, 1] -> (B,) values.
FrameMetric = Callable[[np.ndarray, np.ndarray], np.ndarray]


def split_videos(
  root: str | os.PathLike, split: str = 'test', *, max_videos: int | None = None
) -> dict[str, str]:
  """Video id -> path (file or frame folder) of ROOT/split in data.frames' layout, by name.

  Raises:
    frames.FramesError: a missing split folder or one with no video.
  """
  root = os.fspath(root)
  listed, _ = frames.list_videos(root, split)
  paths = {
    video: source if isinstance(source, str) else os.path.join(root, split, video)
    for video, source in listed.items()
  }
  return dict(list(paths.items())[:max_videos])


def reconstruct(
  generator: nnx.Module,
  detectors: Sequence[nnx.Module],
  video_paths: Mapping[str, str | np.ndarray],
  *,
  size: int | None = None,
  batch: int = 8,
  max_frames: int | None = None,
  frame_metrics: Mapping[str, FrameMetric] | None = None,
  progress: Callable[[int], None] | None = None,
) -> list[dict]:
  """FOMM's reconstruction L1 of each detector driving `generator`, on the same frames.

  Args:
    generator: FOMM's generator.
    detectors: keypoint detectors, the reference (the teacher) first.
    video_paths: video id -> video file or frame folder (`split_videos`), or the video's
      frames themselves (uint8 (T, H, W, 3) at the generator's size).
    size: the frame size (default: the generator's).
    batch: frames per generator call.
    max_frames: the first frames of each video only.
    frame_metrics: extra per-frame metrics (e.g. AKD, AED), name -> function.
    progress: called with the number of frames done (over all detectors) after each batch.

  Returns:
    One dict per detector: `l1` (mean over all frames), `kp_distance` (mean
    Euclidean distance of its keypoints to the first detector's on the same
    frames, in normalised coordinates: 0 for the first), `per_video` L1,
    `frames`, and the mean of each of `frame_metrics`.

  Raises:
    train.animation.AnimationError, data.videos.VideoError: in one line.
  """
  animators = [Animator(generator, d, size=size, batch=batch) for d in detectors]
  frame_metrics = dict(frame_metrics or {})
  sums = [dict.fromkeys(['l1', 'kp_distance', *frame_metrics], 0.0) for _ in detectors]
  per_video = [{} for _ in detectors]
  count, done = 0, 0
  for video, path in video_paths.items():
    if isinstance(path, np.ndarray):  # frames already read (uint8, at the generator's size)
      clip = path[:max_frames]
    else:
      clip = videos.read_video(path, animators[0].size, max_frames=max_frames)
    real = clip.astype(np.float32) / 255.0
    reference = None
    for k, animator in enumerate(animators):
      # The source's keypoints are its own, the driving frames' absolute ones.
      generated, kp = animator.drive(clip[0], clip, relative=False, adapt_movement_scale=False)
      reference = kp['kp'] if reference is None else reference
      l1 = np.abs(generated - real).mean((1, 2, 3))
      sums[k]['l1'] += float(l1.sum())
      sums[k]['kp_distance'] += float(np.linalg.norm(kp['kp'] - reference, axis=-1).mean(-1).sum())
      for name, metric in frame_metrics.items():
        sums[k][name] += float(np.sum(metric(generated, real)))
      per_video[k][video] = float(l1.mean())
      done += len(clip)
      if progress:
        progress(done)
    count += len(clip)
  return [
    {**{key: value / count for key, value in total.items()}, 'per_video': scores, 'frames': count}
    for total, scores in zip(sums, per_video, strict=True)
  ]


def markdown_table(names: Sequence[str], results: Sequence[dict]) -> str:
  """Markdown: one row per detector, L1, keypoint distance to the first and any extra metric."""
  # The `frame_metrics` means: the other float entries (names and paths are strings).
  extra = [
    key
    for key, value in results[0].items()
    if isinstance(value, float) and key not in ('l1', 'kp_distance')
  ]
  header = ['detector', 'L1', f'keypoint distance to {names[0]}', *extra]
  lines = ['| ' + ' | '.join(header) + ' |', '|---|' + '---:|' * (len(header) - 1)]
  for name, result in zip(names, results, strict=True):
    cells = [f'{result["l1"]:.4f}', f'{result["kp_distance"]:.4f}']
    cells += [f'{result[key]:.4f}' for key in extra]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)
