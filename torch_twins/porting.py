"""Weights between a Flax model and its PyTorch twin, by per-layer rules.

A Flax leaf layer at path `a.b.0.conv` is the PyTorch module `a.b.0.conv`
(both trees use the same names), except for the prefix renames in the
model's spec (FOMM's heads sit at the top level: `head.kp` is `kp`). Each layer type has
one rule that converts its tensors both ways: convs (HWIO <-> OIHW),
transposed convs (HWIO <-> IOHW), depthwise convs (HWC <-> C1HW) and
BatchNorm with its running statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from flax import nnx

import models
from models import layers

_Convert = Callable[[np.ndarray], np.ndarray]
# (torch suffix, flax attribute, flax -> torch, torch -> flax)
_Rule = tuple[str, str, _Convert, _Convert]


def _same(x: np.ndarray) -> np.ndarray:
  return x


_BIAS: _Rule = ('bias', 'bias', _same, _same)
_RULES: dict[type, tuple[_Rule, ...]] = {
  layers.Conv: (
    ('weight', 'kernel', lambda k: k.transpose(3, 2, 0, 1), lambda w: w.transpose(2, 3, 1, 0)),
    _BIAS,
  ),
  layers.ConvTranspose: (
    ('weight', 'kernel', lambda k: k.transpose(2, 3, 0, 1), lambda w: w.transpose(2, 3, 0, 1)),
    _BIAS,
  ),
  layers.DepthwiseConv: (
    (
      'weight',
      'kernel',
      lambda k: k.transpose(2, 0, 1)[:, None],
      lambda w: w[:, 0].transpose(1, 2, 0),
    ),
    _BIAS,
  ),
  layers.BatchNorm: (
    ('weight', 'scale', _same, _same),
    _BIAS,
    ('running_mean', 'mean', _same, _same),
    ('running_var', 'var', _same, _same),
  ),
}
_RULES[layers.DepthwiseConvTranspose] = _RULES[layers.DepthwiseConv]

# Bookkeeping PyTorch stores and Flax has no use for.
_IGNORED_SUFFIXES = ('num_batches_tracked',)


class PortingError(ValueError):
  """Weights that do not fit: lists every missing, unexpected and mis-shaped tensor."""

  def __init__(self, what: str, missing=(), unexpected=(), mis_shaped=()):
    parts = []
    if missing:
      parts.append(f'missing {len(missing)}: {", ".join(sorted(missing))}')
    if unexpected:
      parts.append(f'unexpected {len(unexpected)}: {", ".join(sorted(unexpected))}')
    if mis_shaped:
      parts.append(f'mis-shaped {len(mis_shaped)}: {", ".join(sorted(mis_shaped))}')
    super().__init__(f'{what} do not fit: ' + '; '.join(parts))
    self.missing, self.unexpected, self.mis_shaped = missing, unexpected, mis_shaped


def _torch_prefix(path: str, name: str) -> str:
  for old, new in models.spec(name).torch_renames:
    if path.startswith(old):
      path = new + path[len(old) :]
  return path


def _leaf_layers(model: nnx.Module, name: str) -> dict[str, nnx.Module]:
  """Torch module name -> Flax leaf layer, for every layer with a porting rule."""
  return {
    _torch_prefix('.'.join(str(p) for p in path), name): node
    for path, node in nnx.iter_graph(model)
    if type(node) in _RULES
  }


def _entries(model: nnx.Module, name: str):
  """Yields (torch key, layer, flax attribute, rule) for every tensor of the model."""
  for prefix, layer in _leaf_layers(model, name).items():
    for suffix, attribute, to_torch, to_flax in _RULES[type(layer)]:
      if getattr(layer, attribute, None) is not None:
        yield f'{prefix}.{suffix}', layer, attribute, to_torch, to_flax


def flax_to_torch(model: nnx.Module, name: str) -> dict[str, np.ndarray]:
  """The twin's state dict (as float32 NumPy arrays) for the Flax `model`.

  Derived buffers (FOMM's `down.weight`) and `num_batches_tracked` are not
  included; `load_into_twin` keeps the twin's own.
  """
  return {
    key: np.ascontiguousarray(to_torch(np.asarray(getattr(layer, attribute)[...])))
    for key, layer, attribute, to_torch, _ in _entries(model, name)
  }


def torch_to_flax(state_dict: Mapping[str, np.ndarray], model: nnx.Module, name: str) -> None:
  """Writes a PyTorch state dict (arrays or tensors) into the Flax `model`, in place.

  Every key and shape is checked before anything is written.

  Raises:
    PortingError: listing every missing, unexpected and mis-shaped tensor.
  """
  state = {k: np.asarray(v) for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIXES)}
  derived = models.spec(name).torch_derived_buffers
  writes, missing, mis_shaped = [], [], []
  for key, layer, attribute, _, to_flax in _entries(model, name):
    if key not in state:
      missing.append(key)
      continue
    value = to_flax(state[key]).astype(np.float32)
    expected = getattr(layer, attribute).shape
    if value.shape != expected:
      torch_shape = tuple(state[key].shape)
      mis_shaped.append(f'{key} {torch_shape} (expected {_torch_shape(layer, attribute)})')
      continue
    writes.append((layer, attribute, value))
  consumed = {key for key, *_ in _entries(model, name)}
  unexpected = sorted(set(state) - consumed - derived)
  if missing or unexpected or mis_shaped:
    raise PortingError(f'weights for {name}', missing, unexpected, mis_shaped)
  for layer, attribute, value in writes:
    getattr(layer, attribute)[...] = value


def _torch_shape(layer: nnx.Module, attribute: str) -> tuple[int, ...]:
  for _, flax_attribute, to_torch, _ in _RULES[type(layer)]:
    if flax_attribute == attribute:
      return to_torch(np.zeros(getattr(layer, attribute).shape, np.float32)).shape
  raise KeyError(attribute)


def load_into_twin(model: nnx.Module, name: str, twin) -> None:
  """Copies the Flax `model`'s weights and BatchNorm statistics into the PyTorch `twin`."""
  import torch  # the twins need torch; this module's Flax side does not

  converted = flax_to_torch(model, name)
  own = twin.state_dict()
  derived = models.spec(name).torch_derived_buffers
  kept = {k for k in own if k.endswith(_IGNORED_SUFFIXES) or k in derived}
  missing = sorted(set(own) - set(converted) - kept)
  unexpected = sorted(set(converted) - set(own))
  mis_shaped = [
    f'{k} {v.shape} (expected {tuple(own[k].shape)})'
    for k, v in converted.items()
    if k in own and tuple(own[k].shape) != v.shape
  ]
  if missing or unexpected or mis_shaped:
    raise PortingError(f'the twin of {name} and its Flax weights', missing, unexpected, mis_shaped)
  state = {k: torch.tensor(v) for k, v in converted.items()}
  state.update({k: own[k] for k in kept})
  twin.load_state_dict(state, strict=True)
