"""The graph an exported file holds: a twin behind an NHWC image, keypoints and jacobians out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from flax import nnx
from torch import nn

import models
from torch_twins import create_twin, porting
from torch_twins.head import SoftArgmax

INPUT = 'image'
OUTPUTS = ('kp', 'jacobian')


class Deployable(nn.Module):
  """A twin that takes what the Flax models take and returns what a phone app needs.

  Input `image`: (N, H, W, 3) float32 in [0, 1], NHWC like the Flax models
  (the transpose to the twin's NCHW is part of the graph; converters fold
  it into their own layout). Outputs `kp` (N, K, 2) and `jacobian` (N, K, 2, 2).
  """

  def __init__(self, twin: nn.Module):
    super().__init__()
    self.twin = twin

  def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
    out = self.twin(image.permute(0, 3, 1, 2))
    return {name: out[name] for name in OUTPUTS}


class GeneratorDeployable(nn.Module):
  """FOMM's generator twin behind NHWC frames and flat keypoint tensors.

  Inputs: `source` (N, H, W, 3) float32 in [0, 1]; `kp_source`, `kp_driving`
  (N, K, 2); `jacobian_source`, `jacobian_driving` (N, K, 2, 2): the
  detector's outputs for the source frame and the driving frame. Output:
  `prediction` (N, H, W, 3), the source re-posed.
  """

  INPUTS = ('source', 'kp_source', 'jacobian_source', 'kp_driving', 'jacobian_driving')
  OUTPUTS = ('prediction',)

  def __init__(self, twin: nn.Module):
    super().__init__()
    self.twin = twin

  def forward(
    self,
    source: torch.Tensor,
    kp_source: torch.Tensor,
    jacobian_source: torch.Tensor,
    kp_driving: torch.Tensor,
    jacobian_driving: torch.Tensor,
  ) -> dict[str, torch.Tensor]:
    out = self.twin(
      source.permute(0, 3, 1, 2),
      kp_driving={'kp': kp_driving, 'jacobian': jacobian_driving},
      kp_source={'kp': kp_source, 'jacobian': jacobian_source},
    )
    return {'prediction': out['prediction'].permute(0, 2, 3, 1)}


def deployable(
  model: nnx.Module, name: str, options: Mapping[str, Any]
) -> Deployable | GeneratorDeployable:
  """The twin of Flax `model` (zoo name `name`, `options`) with its weights, in eval mode."""
  twin = create_twin(name, options).eval()
  porting.load_into_twin(model, name, twin)
  if models.spec(name).kind == 'generator':
    return GeneratorDeployable(twin).eval()
  return Deployable(twin).eval()


def float_scopes(module: Deployable) -> tuple[str, ...]:
  """Module paths that int8 export keeps in float: the keypoint convs and the soft-argmax.

  The heatmap logits are divided by the temperature (0.1) before a softmax
  over every pixel; 8 bits there would move the keypoints by whole pixels,
  while the head costs a few percent of the mult-adds.
  """
  return tuple(
    f'twin.{path}'
    for path, sub in module.twin.named_modules()
    if isinstance(sub, SoftArgmax) or path.rsplit('.', 1)[-1] in OUTPUTS
  )
