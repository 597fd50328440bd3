"""A keypoint detector driving FOMM's generator: loading the pair and running frames through it.

`Animator(generator, detector)` is FOMM's demo.py (`make_animation`) and the
inner loop of its reconstruction.py with any detector of the zoo: the
teacher converted from `vox-cpk.pth.tar` or a distilled student. Frames
reach the generator at its size (256 for vox) and the detector at its own
(64: the students' input, and the teacher's with its spec's
`input_options`), through FOMM's anti-alias downsampling, as the training
pipeline feeds them (data.pipeline). Detection and generation are each one
jitted function of the models' state, compiled once per frame batch shape.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import models
from models import compiler, ops
from train import checkpoints


class AnimationError(ValueError):
  """A generator, detector or input that cannot animate; the message says which and the fix."""


def _kind(path: str | os.PathLike) -> str:
  reader = checkpoints.Reader(path)
  try:
    name, _, _ = reader.model_meta(reader.best_step())
  finally:
    reader.close()
  return name


def load_generator(path: str | os.PathLike) -> tuple[nnx.Module, dict]:
  """(FOMM's generator in eval mode, its meta) from a `convert_fomm --generator_out` folder.

  Raises:
    AnimationError: when the folder holds a keypoint detector instead.
    checkpoints.CheckpointError: missing or damaged folders.
  """
  name = _kind(path)
  if models.spec(name).kind != 'generator':
    raise AnimationError(
      f'{path} holds {name}, a keypoint detector, not a generator: pass the --generator_out '
      'folder of `python -m tools.convert_fomm` as the generator.'
    )
  return checkpoints.restore_model(path)


def load_detector(path: str | os.PathLike) -> tuple[nnx.Module, dict]:
  """(detector in eval mode, its meta) from a student's workdir or a converted teacher folder.

  The detector is built with its spec's `input_options` (FOMM's teacher: its own
  downsampling off), so it takes frames at its `default_input_size` as in training.

  Raises:
    AnimationError: when the folder holds a generator instead.
    checkpoints.CheckpointError: missing or damaged folders.
  """
  name = _kind(path)
  if models.spec(name).kind != 'keypoints':
    raise AnimationError(
      f'{path} holds {name}, not a keypoint detector: pass a student workdir or the --out '
      'folder of `python -m tools.convert_fomm` as the detector.'
    )
  return checkpoints.restore_model(path, options=models.spec(name).input_options)


# Module-level and keyed by the graph definition: animators of one generator (one per
# detector in a reconstruction run) share its compiled program.
@functools.partial(compiler.jit, static_argnums=(0, 3))
def _detect(graphdef: nnx.GraphDef, state: nnx.State, frames: jax.Array, scale: float) -> dict:
  detector = nnx.merge(graphdef, state)
  images = ops.anti_alias_downsample(frames.astype(jnp.float32) / 255.0, scale)
  out = detector(images)
  return {'kp': out['kp'], 'jacobian': out['jacobian']}


@functools.partial(compiler.jit, static_argnums=(0, 6))
def _generate(
  graphdef: nnx.GraphDef,
  state: nnx.State,
  source: jax.Array,
  kp_source: dict,
  kp_driving: dict,
  kp_initial: dict | None,
  adapt_movement_scale: bool,
) -> jax.Array:
  if kp_initial is not None:  # FOMM's relative animation; else absolute keypoints
    kp_driving = models.relative_keypoints(
      kp_source, kp_driving, kp_initial, adapt_movement_scale=adapt_movement_scale
    )
  generator = nnx.merge(graphdef, state)
  batch = kp_driving['kp'].shape[0]
  tile = functools.partial(jax.tree.map, lambda x: jnp.broadcast_to(x, (batch, *x.shape[1:])))
  image = source.astype(jnp.float32)[None] / 255.0
  out = generator(tile(image), tile(kp_source), kp_driving)
  return out['prediction']


def detect(detector: nnx.Module, frames: np.ndarray, *, batch: int = 64) -> np.ndarray:
  """(N, K, 2) keypoints of (N, S, S, 3) uint8 frames at the detector's input size S, in batches
  (the last padded, so the detector compiles once)."""
  graph = nnx.split(detector)
  found = []
  for start in range(0, len(frames), batch):
    chunk = frames[start : start + batch]
    padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)])
    found.append(np.asarray(_detect(*graph, padded, 1.0)['kp'])[: len(chunk)])
  return np.concatenate(found)


class Animator:
  """A detector driving FOMM's generator on uint8 frames at the generator's size.

  Args:
    generator: FOMM's generator (`load_generator`).
    detector: any keypoint model of the zoo (`load_detector`).
    size: the frame size the generator runs at (default its `default_input_size`:
      256 for vox); the detector's input size must divide it.
    batch: driving frames per call; the last batch is padded, so each function
      compiles once.

  Raises:
    AnimationError: keypoint counts that differ, or sizes that do not fit.
  """

  def __init__(
    self, generator: nnx.Module, detector: nnx.Module, *, size: int | None = None, batch: int = 8
  ):
    generator_kp = generator.dense_motion_network.num_kp
    if detector.head.num_kp != generator_kp:
      raise AnimationError(
        f'the detector ({detector.name}) finds {detector.head.num_kp} keypoints but the generator '
        f'is driven by {generator_kp}; pass a detector distilled from the same teacher.'
      )
    self.size = size or generator.default_input_size
    self.detector_size = detector.default_input_size
    try:
      generator.check_input_shape((1, self.size, self.size, generator.num_channels))
    except ValueError as error:
      raise AnimationError(f'{error} Pick another size.') from error
    if self.size % self.detector_size:
      raise AnimationError(
        f'frames of {self.size}x{self.size} cannot be downsampled by a whole factor to the '
        f"detector's {self.detector_size}x{self.detector_size}; pick a size that is a multiple "
        f'of {self.detector_size}.'
      )
    if batch < 1:
      raise AnimationError(f'the batch must be positive, got {batch}.')
    self.batch = batch
    self.num_kp = generator_kp
    self._scale = self.detector_size / self.size
    self._detector = nnx.split(detector)
    self._generator = nnx.split(generator)

  def _detect(self, frames: np.ndarray) -> dict[str, jax.Array]:
    return _detect(*self._detector, frames, self._scale)

  def _batches(self, frames: np.ndarray):
    """Batches of `self.batch` frames (the last padded with its last frame), with their counts."""
    for start in range(0, len(frames), self.batch):
      chunk = frames[start : start + self.batch]
      pad = self.batch - len(chunk)
      padded = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)]) if pad else chunk
      yield len(chunk), padded

  def drive(
    self,
    source: np.ndarray,
    driving: np.ndarray,
    *,
    relative: bool = True,
    adapt_movement_scale: bool = True,
    progress: Callable[[int], None] | None = None,
  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`source` re-posed by each frame of `driving`, FOMM's make_animation.

    Args:
      source: (size, size, 3) uint8.
      driving: (T, size, size, 3) uint8.
      relative: FOMM's relative motion (and jacobians) from the driving video's
        first frame, as demo.py's --relative; False drives by absolute keypoints
        (reconstruction.py).
      adapt_movement_scale: scale the relative motion by the faces' sizes (demo.py's
        --adapt_scale); only with `relative`.
      progress: called with the number of frames done after each batch.

    Returns:
      (predictions (T, size, size, 3) float32 in [0, 1], the driving frames'
      own keypoints {'kp': (T, K, 2), 'jacobian': (T, K, 2, 2)}).
    """
    self._check_frames(source[None], 'source image')
    self._check_frames(driving, 'driving video')
    kp_source = self._detect(source[None])
    kp_initial = self._detect(driving[:1]) if relative else None
    predictions, kps, done = [], [], 0
    for count, frames in self._batches(driving):
      kp_driving = self._detect(frames)
      prediction = _generate(
        *self._generator,
        source,
        kp_source,
        kp_driving,
        kp_initial,
        bool(adapt_movement_scale),
      )
      predictions.append(np.asarray(prediction)[:count])
      kps.append(jax.tree.map(lambda x, n=count: np.asarray(x)[:n], kp_driving))
      done += count
      if progress:
        progress(done)
    return np.concatenate(predictions), jax.tree.map(lambda *x: np.concatenate(x), *kps)

  def _check_frames(self, frames: np.ndarray, what: str) -> None:
    if frames.ndim != 4 or frames.shape[1:] != (self.size, self.size, 3) or not len(frames):
      raise AnimationError(
        f'the {what} has frames of shape {frames.shape[1:]} (count {len(frames)}); it needs at '
        f'least one ({self.size}, {self.size}, 3) frame.'
      )
