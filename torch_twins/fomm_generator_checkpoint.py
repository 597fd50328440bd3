"""FOMM's whole checkpoint: the keypoint detector and the generator, as two Flax folders.

FOMM's logger saves every network of a run in one dict (`kp_detector`,
`generator`, `discriminator`, their optimisers, `epoch`). The detector becomes
the teacher exactly as `fomm_checkpoint.convert` makes it; the `generator`
state dict (with its dense motion network) becomes `fomm_generator`, its
configuration read off the tensor shapes. Both are built and checked before
either folder is written. The file is loaded with `weights_only=True`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np

from torch_twins.fomm_checkpoint import (
  ConversionError,
  build_teacher,
  check_output,
  load_state_dict,
  save_converted,
)

NAME = 'fomm_generator'
_MOTION = 'dense_motion_network.'
_MOTION_DOWN = _MOTION + 'hourglass.encoder.down_blocks.{}.conv.weight'
_DOWN = 'down_blocks.{}.conv.weight'
_BOTTLENECK = 'bottleneck.r{}.conv1.weight'


def load_generator_state_dict(path: str) -> dict[str, np.ndarray] | None:
  """The `generator` state dict of FOMM's checkpoint at `path` (float32, no `module.`), or None.

  Call after `fomm_checkpoint.load_state_dict(path)` succeeded: that one
  explains unreadable or unsafe files.
  """
  import torch

  try:
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as error:  # the same file loaded a moment ago; report it in one line
    raise ConversionError(f'{path}: cannot be read again ({type(error).__name__}).') from error
  generator = checkpoint.get('generator') if isinstance(checkpoint, Mapping) else None
  if not isinstance(generator, Mapping):
    return None
  return {
    key.removeprefix('module.'): value.detach().cpu().float().numpy()
    for key, value in generator.items()
    if isinstance(value, torch.Tensor) and not key.endswith('num_batches_tracked')
  }


def _count(state: Mapping[str, np.ndarray], pattern: str) -> int:
  count = 0
  while pattern.format(count) in state:
    count += 1
  return count


def _max_features(widths: list[int], block_expansion: int, default: int) -> int:
  """The default when it gives these widths (max_features that never binds cannot be read)."""
  if all(w == min(default, block_expansion * 2 ** (i + 1)) for i, w in enumerate(widths)):
    return default
  return max(widths)


def infer_generator_config(
  state: Mapping[str, np.ndarray], *, num_kp: int | None = None
) -> ml_collections.ConfigDict:
  """The generator configuration these tensors imply (`kp_variance`, `align_corners`: defaults).

  Args:
    state: the `generator` state dict.
    num_kp: the detector's keypoint count, checked against the generator's.

  Raises:
    ConversionError: when the tensors are not FOMM's generator or disagree with `num_kp`.
  """
  import models
  from torch_twins.fomm_checkpoint import _scale_from_gaussian

  required = ['first.conv.weight', 'final.weight', _MOTION + 'mask.weight', _MOTION_DOWN.format(0)]
  missing = [key for key in required if key not in state]
  if missing:
    raise ConversionError(
      f"the checkpoint's generator is not FOMM's OcclusionAwareGenerator with a dense motion "
      f'network: missing {", ".join(missing)} (found {len(state)} tensors, e.g. '
      f'{", ".join(list(state)[:5])}).'
    )
  config = models.default_config(NAME)
  first = state['first.conv.weight']
  block_expansion = first.shape[0]
  down = [state[_DOWN.format(i)].shape[0] for i in range(_count(state, _DOWN))]
  motion = [state[_MOTION_DOWN.format(i)].shape[0] for i in range(_count(state, _MOTION_DOWN))]
  motion_expansion = motion[0] // 2
  down_key = _MOTION + 'down.weight'
  config.update(
    {
      'num_kp': state[_MOTION + 'mask.weight'].shape[0] - 1,
      'num_channels': first.shape[1],
      'block_expansion': block_expansion,
      'max_features': _max_features(down, block_expansion, config.max_features),
      'num_down_blocks': len(down),
      'num_bottleneck_blocks': _count(state, _BOTTLENECK),
      'estimate_occlusion_map': _MOTION + 'occlusion.weight' in state,
      'dense_motion_block_expansion': motion_expansion,
      'dense_motion_max_features': _max_features(
        motion, motion_expansion, config.dense_motion_max_features
      ),
      'dense_motion_num_blocks': len(motion),
      'dense_motion_scale_factor': (
        _scale_from_gaussian(state[down_key]) if down_key in state else 1.0
      ),
    }
  )
  if num_kp is not None and config.num_kp != num_kp:
    raise ConversionError(
      f'the generator drives {config.num_kp} keypoints but the detector finds {num_kp}.'
    )
  return config


def build_generator(
  state: Mapping[str, np.ndarray], checkpoint: str, *, num_kp: int | None = None
) -> tuple[Any, ml_collections.ConfigDict, int]:
  """(Flax generator holding `state`, its configuration, its parameter count); writes nothing."""
  from flax import nnx

  import models
  from torch_twins import porting

  config = infer_generator_config(state, num_kp=num_kp)
  generator = models.create_model(NAME, config, rngs=nnx.Rngs(0))
  try:
    porting.torch_to_flax(state, generator, NAME)
  except porting.PortingError as error:
    raise ConversionError(f'{checkpoint} (generator): {error}') from error
  params = sum(
    v.size for k, v in state.items() if not k.endswith('down.weight') and 'running' not in k
  )
  return generator, config, params


def convert_with_generator(
  checkpoint: str, out: str, generator_out: str, **known: Any
) -> dict[str, tuple[ml_collections.ConfigDict, int]]:
  """Converts FOMM's detector into `out` and its generator into `generator_out`.

  Returns:
    {'fomm_teacher': (config, params), 'fomm_generator': (config, params)}.

  Raises:
    ConversionError: for any problem, with nothing written; or, for a checkpoint
      without a `generator`, after writing the detector alone (the message says so).
  """
  for path, flag in ((out, '--out'), (generator_out, '--generator_out')):
    check_output(path, flag)
  if os.path.abspath(out) == os.path.abspath(generator_out):
    raise ConversionError('--out and --generator_out must be two different folders.')
  teacher, teacher_config, teacher_params = build_teacher(
    load_state_dict(checkpoint), checkpoint, **known
  )
  state = load_generator_state_dict(checkpoint)
  built = None
  if state is not None:
    built = build_generator(state, checkpoint, num_kp=teacher_config.num_kp)
  save_converted(out, teacher, 'fomm_teacher', teacher_config, checkpoint)
  if built is None:
    raise ConversionError(
      f'{checkpoint} holds no `generator` state dict (a bare detector or a detector-only '
      f'checkpoint): wrote the detector alone to {out}; nothing at {generator_out}.'
    )
  generator, config, params = built
  save_converted(generator_out, generator, NAME, config, checkpoint)
  return {'fomm_teacher': (teacher_config, teacher_params), NAME: (config, params)}
