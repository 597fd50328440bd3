"""Clips of one synthetic face moving smoothly, for FOMM's unsupervised training (NumPy only).

A clip is one `faces.sample_face` draw (identity, colours, background,
clutter, hair, light, contrast, blur and noise level, no occluder) whose pose
and expression follow smooth trajectories over its frames: head rotation,
translation, scale, a little anisotropic scale and shear, eye opening (both
eyes together), gaze, brow raise, smile and mouth opening. Every frame is
rendered by `faces.render` with its own pixel noise and keeps its exact
landmarks and jacobians (`faces.landmarks`), for evaluation only: FOMM learns
from the motion alone.

A trajectory is a sum of two sinusoids of random frequency (in cycles per
frame) and phase, scaled into a random window of the quantity's range in
`faces`, so it never leaves that range. Frequencies are per frame, not per
clip, and no draw depends on the clip's length: the first n frames of a
longer clip are the clip of n frames. Clip (seed, split, index) is a pure
function of those numbers.
"""

from __future__ import annotations

import numpy as np

from data import faces

# Appended to (seed, split, index), so that clip i is not the face of image i of
# `synthetic_faces` (which seeds its generator with those three numbers alone).
_STREAM = 1

# Moving quantity -> (share of its half-range that the motion sweeps, frequency range
# in cycles per frame). A rotation swings by 0.6 x 0.5 = +-0.3 rad, a translation by
# 0.7 x 0.28 = +-0.2; pose moves over 20-50 frames, expression faster, the mouth
# fastest (a talking mouth: a period of 7-17 frames). Ranges are `faces.POSE_RANGES`
# and `faces.EXPRESSION_RANGES`.
POSE_MOTION = {
    'angle': (0.6, (0.02, 0.05)), 'scale': (0.5, (0.02, 0.05)),
    'aspect': (0.3, (0.02, 0.05)), 'shear': (0.3, (0.02, 0.05)),
    'tx': (0.7, (0.02, 0.05)), 'ty': (0.7, (0.02, 0.05)),
}  # fmt: skip
EXPRESSION_MOTION = {
    'open': (0.8, (0.03, 0.08)), 'gaze_x': (0.8, (0.03, 0.08)), 'gaze_y': (0.8, (0.03, 0.08)),
    'raise': (0.8, (0.03, 0.08)), 'smile': (0.8, (0.03, 0.08)), 'mouth_open': (1.0, (0.06, 0.15)),
}  # fmt: skip
# The mouth dwells near open and near closed (a soft square wave), as in speech.
_MOUTH_GAIN = 2.0


def _signal(rng: np.random.Generator, frames: int, cycles: tuple[float, float]) -> np.ndarray:
  """(frames,) in [-1, 1]: two sinusoids whose weights sum to 1."""
  frequency = rng.uniform(*cycles, 2)
  phase = rng.uniform(0, 2 * np.pi, 2)
  weight = rng.uniform(0.5, 1.0)
  waves = np.sin(2 * np.pi * frequency * np.arange(frames)[:, None] + phase)
  return waves @ np.array([weight, 1 - weight])


def _trajectory(
  rng: np.random.Generator, frames: int, name: str, bounds: tuple[float, float], motion
) -> np.ndarray:
  """A smooth path inside `bounds` sweeping `sweep` of its half-range around a random centre."""
  sweep, cycles = motion
  offset = rng.uniform(-(1 - sweep), 1 - sweep)
  signal = _signal(rng, frames, cycles)
  if name == 'mouth_open':
    signal = np.tanh(_MOUTH_GAIN * signal) / np.tanh(_MOUTH_GAIN)
  middle, half = (bounds[0] + bounds[1]) / 2, (bounds[1] - bounds[0]) / 2
  return middle + half * (offset + sweep * signal)


def sample_clip(rng: np.random.Generator, frames: int) -> list[faces.Face]:
  """One face and scene, posed along smooth pose and expression paths: a Face per frame."""
  face = faces.sample_face(rng, occlusion_rate=0.0)
  pose = np.stack(
    [
      _trajectory(rng, frames, name, bounds, POSE_MOTION[name])
      for name, bounds in faces.POSE_RANGES.items()
    ],
    axis=1,
  )
  ranges = dict(faces.EXPRESSION_RANGES, open=faces.EXPRESSION_RANGES['open_l'])
  paths = {
    name: _trajectory(rng, frames, name, ranges[name], motion)
    for name, motion in EXPRESSION_MOTION.items()
  }
  paths['open_l'] = paths['open_r'] = paths.pop('open')  # the eyes blink together
  clip = []
  for i in range(frames):
    shape = dict(face.shape, **{name: float(path[i]) for name, path in paths.items()})
    clip.append(faces.posed(face, shape, pose[i]))
  return clip


def make_clip(seed: int, split: int, index: int, frames: int, size: int) -> dict[str, np.ndarray]:
  """The clip (seed, split, index): frames and their true landmarks (evaluation only).

  Returns:
    `video` (frames, size, size, 3) uint8, `kp` (frames, 10, 2) and `jacobian`
    (frames, 10, 2, 2) float32 in FOMM's [-1, 1] coordinates, `visible`
    (frames, 10) bool (inside the image: clips have no occluder).
  """
  rng = np.random.default_rng([seed, split, index, _STREAM])
  clip = sample_clip(rng, frames)
  video = np.stack([faces.render(face, size, rng) for face in clip])  # noise drawn per frame
  kp, jacobian = (np.stack(parts) for parts in zip(*map(faces.landmarks, clip), strict=True))
  visible = np.stack([faces.visibility(face, k) for face, k in zip(clip, kp, strict=True)])
  return {'video': video, 'kp': kp, 'jacobian': jacobian, 'visible': visible}
