"""ImageNet VGG19 weights for FOMM's perceptual loss, read from a file the user gives.

They cannot be downloaded here, so `--config.loss.vgg19=PATH` names a
torchvision `vgg19` state dict (`torch.save(torchvision.models.vgg19(
weights='IMAGENET1K_V1').state_dict(), PATH)`, or torchvision's own cached
`vgg19-dcbb9e9d.pth`), read with `torch.load(..., weights_only=True)` so that
the file cannot run code. Only the `features.N.weight/bias` tensors up to
relu5_1 are used; the classifier is ignored.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from models.vgg19 import Vgg19Features


class Vgg19WeightsError(ValueError):
  """A VGG19 weights file that cannot be used; the message names it and the fix."""


_FIX = (
  "pass torchvision's ImageNet vgg19 state dict (torch.save(torchvision.models.vgg19("
  "weights='IMAGENET1K_V1').state_dict(), PATH)) as --config.loss.vgg19"
)


def load(path: str | os.PathLike) -> Vgg19Features:
  """The feature extractor with the file's weights.

  Raises:
    Vgg19WeightsError: a missing or unreadable file, or tensors missing or misshapen.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise Vgg19WeightsError(f'no VGG19 weights file at {path}; {_FIX}.')
  import pickle

  import torch

  try:
    state = torch.load(path, map_location='cpu', weights_only=True)
  except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
    reason = ' '.join(str(error).split())[:160]
    raise Vgg19WeightsError(f'{path} cannot be read as a state dict ({reason}); {_FIX}.') from error
  if not isinstance(state, dict):
    raise Vgg19WeightsError(f'{path} holds a {type(state).__name__}, not a state dict; {_FIX}.')
  model = Vgg19Features(rngs=nnx.Rngs(0))
  for index, conv in model.convs.items():
    for suffix, attribute, order in (('weight', 'kernel', (3, 2, 0, 1)), ('bias', 'bias', (0,))):
      key = f'features.{index}.{suffix}'
      variable = getattr(conv, attribute)
      tensor = state.get(key)
      if tensor is None:
        raise Vgg19WeightsError(f'{path} has no {key}: it is not a VGG19 state dict; {_FIX}.')
      expected = tuple(variable.shape[i] for i in order)  # torch's layout (OIHW for kernels)
      if tuple(tensor.shape) != expected:
        raise Vgg19WeightsError(
          f'{path}: {key} has shape {tuple(tensor.shape)}, VGG19 needs {expected}; {_FIX}.'
        )
      value = np.asarray(tensor.detach().cpu().numpy(), np.float32)
      # OIHW -> HWIO: the inverse of `order`.
      variable[...] = jnp.asarray(value.transpose(np.argsort(order)) if value.ndim == 4 else value)
  return model
