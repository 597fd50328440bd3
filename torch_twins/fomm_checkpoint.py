"""Converts FOMM's PyTorch keypoint detector checkpoint into the Flax teacher.

Command line: `python -m tools.convert_fomm --checkpoint=vox-cpk.pth.tar
--out=checkpoints/fomm_vox`. The result is a checkpoint folder (step 0) in the
project's one format (`train.checkpoints`), which `config.teacher.checkpoint`
and `restore_model` read.

Accepts FOMM's full checkpoint (the state dict under `kp_detector`) or a bare
state dict, with or without a `module.` prefix or `num_batches_tracked`. The
teacher's configuration (keypoints, widths, blocks, jacobian maps, anti-alias
scale) is read off the tensor shapes; flags such as --num_kp check it. Every
key and shape is validated before anything is written. The file is loaded
with `weights_only=True`: a checkpoint never runs code.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np

NAME = 'fomm_teacher'
_DOWN = 'predictor.encoder.down_blocks.{}.conv.weight'
# Options that the tensors cannot tell; FOMM's vox-256 values by default.
_NOT_IN_TENSORS = ('temperature', 'pad')


# torch.save's two formats: a zip archive, or (before PyTorch 1.6) a pickle that starts
# with this magic number.
_LEGACY_MAGIC = b'\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19'


class ConversionError(ValueError):
  """A checkpoint that cannot become the teacher; the message says why and what to do."""


def _is_torch_file(path: str) -> bool:
  with open(path, 'rb') as file:
    return file.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC or zipfile.is_zipfile(path)


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads the keypoint detector's tensors from a FOMM-style checkpoint file.

  Returns:
    name -> float32 array, without `module.` prefixes or `num_batches_tracked`.
  """
  import torch

  if not os.path.isfile(path):
    raise ConversionError(f"{path}: no such file; pass FOMM's checkpoint, e.g. vox-cpk.pth.tar.")
  fix = "pass FOMM's vox-cpk.pth.tar, downloaded again if it was cut short."
  if not _is_torch_file(path):  # random bytes, a truncated zip, another format
    raise ConversionError(
      f'{path}: not a readable PyTorch checkpoint (truncated, or another format: neither a '
      f'zip archive nor a legacy torch.save file); {fix}'
    )
  try:
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
  except pickle.UnpicklingError as error:
    # weights_only refuses both: a pickle naming a global (a function it would call) other
    # than torch's own is one that runs code; a cut-off torch name (a truncated legacy
    # file) or any other refusal is a damaged pickle.
    found = str(error).partition('Unsupported global:')[2].split(' was not')[0].strip()
    if found and not found.removeprefix('GLOBAL ').startswith('torch.'):
      raise ConversionError(
        f'{path}: refused to load: it holds objects other than tensors and plain containers, '
        f'which could run code ({found}). Re-save only the state dict.'
      ) from error
    raise ConversionError(
      f'{path}: not a readable PyTorch checkpoint (its pickle is damaged'
      f'{f", naming {found}" if found else ""}); {fix}'
    ) from error
  except (RuntimeError, EOFError, KeyError, zipfile.BadZipFile, OSError, ValueError) as error:
    raise ConversionError(
      f'{path}: not a readable PyTorch checkpoint (damaged inside: '
      f'{type(error).__name__}: {str(error).splitlines()[0][:200]}); {fix}'
    ) from error
  if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get('kp_detector'), Mapping):
    checkpoint = checkpoint['kp_detector']
  if not isinstance(checkpoint, Mapping) or not all(
    isinstance(v, torch.Tensor) for v in checkpoint.values()
  ):
    keys = list(checkpoint)[:10] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
    raise ConversionError(
      f"{path}: expected FOMM's checkpoint (a dict with a `kp_detector` state dict) or a bare "
      f'state dict of tensors; found {keys}.'
    )
  state = {}
  for key, value in checkpoint.items():
    key = key.removeprefix('module.')
    if not key.endswith('num_batches_tracked'):
      state[key] = value.detach().cpu().float().numpy()
  return state


def _scale_from_gaussian(kernel: np.ndarray) -> float:
  """The anti-alias scale 1/n whose Gaussian FOMM would have built."""
  from models import ops

  for inverse in range(2, 33):
    vector = ops.anti_alias_kernel_1d(1.0 / inverse)
    if vector.size == kernel.shape[-1]:
      expected = np.outer(vector, vector)
      if np.allclose(kernel[0, 0], expected, atol=1e-6):
        return 1.0 / inverse
  raise ConversionError(
    f'down.weight {kernel.shape} is not the Gaussian of any anti-alias scale 1/n (n = 2..32).'
  )


def infer_config(state: Mapping[str, np.ndarray], **known: Any) -> ml_collections.ConfigDict:
  """The teacher configuration that these tensors imply.

  Args:
    state: the detector's state dict.
    **known: options the tensors cannot tell (temperature, pad) or that the
      caller wants checked (any other option); None means "infer".

  Raises:
    ConversionError: when the tensors are not a keypoint detector or disagree
      with a checked option.
  """
  import models

  required = ['kp.weight', 'jacobian.weight', _DOWN.format(0)]
  missing = [key for key in required if key not in state]
  if missing:
    raise ConversionError(
      f'not a FOMM keypoint detector: missing {", ".join(missing)} '
      f'(found {len(state)} tensors, e.g. {", ".join(list(state)[:5])}).'
    )
  num_blocks = 0
  while _DOWN.format(num_blocks) in state:
    num_blocks += 1
  widths = [state[_DOWN.format(i)].shape[0] for i in range(num_blocks)]
  first = state[_DOWN.format(0)]
  kp, jacobian = state['kp.weight'], state['jacobian.weight']
  num_kp = kp.shape[0]
  jacobian_maps = jacobian.shape[0] // 4
  config = models.default_config(NAME)
  config.update(
    {
      'num_kp': num_kp,
      'num_channels': first.shape[1],
      'block_expansion': widths[0] // 2,
      'max_features': max(widths),
      'num_blocks': num_blocks,
      'single_jacobian_map': jacobian_maps == 1 and num_kp != 1,
      'head_kernel_size': kp.shape[-1],
      'scale_factor': _scale_from_gaussian(state['down.weight']) if 'down.weight' in state else 1.0,
    }
  )
  for key, value in known.items():
    if value is None:
      continue
    if key not in config:
      raise ConversionError(f'unknown teacher option {key}; valid: {", ".join(config)}.')
    if key in _NOT_IN_TENSORS:
      config[key] = value
    elif config[key] != value:
      raise ConversionError(
        f'the checkpoint has {key}={config[key]}, but {key}={value} was asked for.'
      )
  return config


def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as file:
    for block in iter(lambda: file.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def convert(checkpoint: str, out: str, **known: Any) -> tuple[ml_collections.ConfigDict, int]:
  """Converts `checkpoint` into a saved Flax teacher at `out`.

  Returns:
    The teacher's configuration and its parameter count.

  Raises:
    ConversionError: for any problem, before anything is written.
  """
  check_output(out, '--out')
  state = load_state_dict(checkpoint)
  teacher, config, params = build_teacher(state, checkpoint, **known)
  save_converted(out, teacher, NAME, config, checkpoint)
  return config, params


def check_output(out: str, flag: str) -> None:
  """A new output folder whose parent can be written: checked before the file is read."""
  from train import workdir

  if os.path.exists(out):
    raise ConversionError(f'{out} already exists; choose another {flag} or delete it first.')
  try:
    workdir.check_folder(os.path.dirname(os.path.abspath(out)), 'the output folder',
                         f'pass another {flag}')  # fmt: skip
  except workdir.WorkdirError as error:
    raise ConversionError(str(error)) from error


def build_teacher(
  state: Mapping[str, np.ndarray], checkpoint: str, **known: Any
) -> tuple[Any, ml_collections.ConfigDict, int]:
  """(Flax teacher holding `state`, its configuration, its parameter count); writes nothing.

  Raises:
    ConversionError: when the tensors do not make a teacher.
  """
  from flax import nnx

  import models
  from torch_twins import porting

  config = infer_config(state, **known)
  teacher = models.create_model(NAME, config, rngs=nnx.Rngs(0))
  try:
    porting.torch_to_flax(state, teacher, NAME)
  except porting.PortingError as error:
    raise ConversionError(f'{checkpoint}: {error}') from error
  params = sum(v.size for k, v in state.items() if not k.startswith('down.') and 'running' not in k)
  return teacher, config, params


def save_converted(out: str, model: Any, name: str, config: Any, checkpoint: str) -> None:
  """Writes a model converted from FOMM's `checkpoint` as a step-0 folder, with provenance."""
  from train import checkpoints

  checkpoints.save_model(
    out,
    model,
    name=name,
    options=config,
    source=os.path.abspath(checkpoint),
    converted_by='tools.convert_fomm',
    provenance={
      'kind': 'converted_fomm',
      'source': os.path.abspath(checkpoint),
      'sha256': file_sha256(checkpoint),
    },
  )
