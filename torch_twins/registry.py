"""Creates the PyTorch twin of any model of the zoo from the same options."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

import models


def twin_class(name: str) -> type[nn.Module]:
  """The twin's class, from the import path in the model's spec."""
  module, _, cls = models.spec(name).twin.partition(':')
  return getattr(importlib.import_module(module), cls)


def create_twin(name: str, config: Mapping[str, Any] | None = None) -> nn.Module:
  """The PyTorch twin of model `name` with the same options as `models.create_model`."""
  options = models.model_config(name, config)
  return twin_class(name)(**options.to_dict())
