"""Creates any model of the zoo from its name and a ConfigDict of options."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections
from flax import nnx

from models import edgesegnet, fomm, l3unet, squeeze_unet
from models.base import KeypointModel


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A model's class, its default options and a one-line description."""

  cls: type[KeypointModel]
  default_config: Callable[[], ml_collections.ConfigDict]
  description: str


MODELS: dict[str, ModelSpec] = {
  'fomm_teacher': ModelSpec(
    fomm.FommKeypointDetector, fomm.default_config, "FOMM's KPDetector (teacher)"
  ),
  'squeeze_unet': ModelSpec(squeeze_unet.SqueezeUNet, squeeze_unet.default_config, 'Squeeze U-Net'),
  'squeeze_unet_dsc': ModelSpec(
    squeeze_unet.SqueezeUNet, squeeze_unet.dsc_config, 'Squeeze U-Net with dep_sep_conv'
  ),
  'squeeze_unet_noskip': ModelSpec(
    squeeze_unet.SqueezeUNet, squeeze_unet.noskip_config, 'Squeeze U-Net without skips'
  ),
  'squeeze_encdec': ModelSpec(
    squeeze_unet.SqueezeUNet, squeeze_unet.encdec_config, 'Squeeze Encoder Decoder'
  ),
  'l3unet': ModelSpec(l3unet.L3UNet, l3unet.default_config, 'L3U-Net'),
  'edgesegnet': ModelSpec(edgesegnet.EdgeSegNet, edgesegnet.default_config, 'EdgeSegNet'),
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def _spec(name: str) -> ModelSpec:
  if name not in MODELS:
    raise ValueError(f'unknown model {name!r}; valid models: {", ".join(MODEL_NAMES)}.')
  return MODELS[name]


def default_config(name: str) -> ml_collections.ConfigDict:
  """The default options of model `name`."""
  return _spec(name).default_config()


def model_config(
  name: str, overrides: Mapping[str, Any] | ml_collections.ConfigDict | None = None
) -> ml_collections.ConfigDict:
  """The default options of `name` updated with `overrides`, checked by key.

  Raises:
    ValueError: for an unknown model or an unknown option (naming the valid ones).
  """
  config = default_config(name)
  overrides = dict(overrides.items()) if overrides is not None else {}
  unknown = sorted(set(overrides) - set(config.keys()))
  if unknown:
    raise ValueError(
      f'unknown option(s) {", ".join(unknown)} for model {name!r}; '
      f'valid options: {", ".join(sorted(config.keys()))}.'
    )
  config.update(overrides)
  return config


def create_model(
  name: str,
  config: Mapping[str, Any] | ml_collections.ConfigDict | None = None,
  *,
  rngs: nnx.Rngs,
) -> KeypointModel:
  """Builds model `name` with its defaults overridden by `config`.

  Args:
    name: one of MODEL_NAMES.
    config: options to override (a subset of `default_config(name)`'s keys).
    rngs: random streams; `params` initialises weights, `dropout` drives dropout.

  Returns:
    The model, in training mode (call `.eval()` for inference).
  """
  spec = _spec(name)
  options = model_config(name, config)
  model = spec.cls(**options, rngs=rngs)
  model.name = name
  return model
