"""Creates the PyTorch twin of any model of the zoo from the same options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

import models
from torch_twins import edgesegnet, fomm, l3unet, squeeze_unet

TWINS: dict[str, type[nn.Module]] = {
  'fomm_teacher': fomm.KPDetector,
  'squeeze_unet': squeeze_unet.SqueezeUNet,
  'squeeze_unet_dsc': squeeze_unet.SqueezeUNet,
  'squeeze_unet_noskip': squeeze_unet.SqueezeUNet,
  'squeeze_encdec': squeeze_unet.SqueezeUNet,
  'l3unet': l3unet.L3UNet,
  'edgesegnet': edgesegnet.EdgeSegNet,
}


def create_twin(name: str, config: Mapping[str, Any] | None = None) -> nn.Module:
  """The PyTorch twin of model `name` with the same options as `models.create_model`."""
  options = models.model_config(name, config)
  return TWINS[name](**options.to_dict())
