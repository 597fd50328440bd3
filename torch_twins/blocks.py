"""Fire, both transposed fires and depthwise separable convs in PyTorch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvTranspose2d(nn.ConvTranspose2d):
  """nn.ConvTranspose2d that applies its padding outside the op.

  Same parameters, same output. It runs the unpadded transposed conv and
  crops, because LiteRT's converter cannot legalise a transposed conv with
  padding or output padding ('mhlo.convolution' with input dilation), and
  this form keeps the twins exportable as they are.
  """

  def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
    y = F.conv_transpose2d(x, self.weight, self.bias, self.stride, 0, 0, self.groups, self.dilation)
    crops = []
    for axis in range(2):
      start = self.padding[axis]
      size = y.shape[2 + axis] - 2 * start + self.output_padding[axis]
      crops.append((start, start + size))
    (top, bottom), (left, right) = crops
    return y[:, :, top:bottom, left:right]


class DepthwiseSeparable(nn.Module):
  """Depthwise k x k conv (transposed if asked), then a pointwise 1x1 conv."""

  def __init__(
    self,
    in_features: int,
    out_features: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    transposed: bool = False,
  ):
    super().__init__()
    if transposed:
      self.depthwise = ConvTranspose2d(
        in_features,
        in_features,
        kernel_size,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=in_features,
      )
    else:
      self.depthwise = nn.Conv2d(
        in_features, in_features, kernel_size, stride=stride, padding=padding, groups=in_features
      )
    self.pointwise = nn.Conv2d(in_features, out_features, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.pointwise(self.depthwise(x))


def conv(in_features, out_features, kernel_size, stride=1, padding=0, separable=False):
  if separable and kernel_size > 1:
    return DepthwiseSeparable(in_features, out_features, kernel_size, stride, padding)
  return nn.Conv2d(in_features, out_features, kernel_size, stride=stride, padding=padding)


def conv_transpose(
  in_features, out_features, kernel_size, stride=1, padding=0, output_padding=0, separable=False
):
  if separable:
    return DepthwiseSeparable(
      in_features, out_features, kernel_size, stride, padding, output_padding, transposed=True
    )
  return ConvTranspose2d(
    in_features,
    out_features,
    kernel_size,
    stride=stride,
    padding=padding,
    output_padding=output_padding,
  )


class Squeeze(nn.Module):
  def __init__(self, in_features: int, features: int):
    super().__init__()
    self.conv = nn.Conv2d(in_features, features, 1)
    self.norm = nn.BatchNorm2d(features)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.norm(torch.relu(self.conv(x)))


class Expand(nn.Module):
  def __init__(self, in_features: int, features: int, separable: bool):
    super().__init__()
    self.expand1x1 = nn.Conv2d(in_features, features, 1)
    self.expand3x3 = conv(in_features, features, 3, padding=1, separable=separable)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.relu(self.expand1x1(x)), torch.relu(self.expand3x3(x))], dim=1)


class Fire(nn.Module):
  def __init__(self, in_features: int, squeeze: int, expand: int, separable: bool = False):
    super().__init__()
    self.squeeze = Squeeze(in_features, squeeze)
    self.expand = Expand(squeeze, expand, separable)
    self.out_features = 2 * expand

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.expand(self.squeeze(x))


class TransposedFire(nn.Module):
  def __init__(self, in_features, squeeze, expand, stride, skip_features=0, separable=False):
    super().__init__()
    self.upsample = conv_transpose(
      in_features, expand, 3, stride, padding=1, output_padding=stride - 1, separable=separable
    )
    self.fire = Fire(expand + skip_features, squeeze, expand, separable)
    self.out_features = self.fire.out_features

  def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
    y = self.upsample(x)
    if skip is not None:
      y = torch.cat([y, skip], dim=1)
    return self.fire(y)


class FireDeconv(nn.Module):
  def __init__(self, in_features, squeeze, expand, stride, skip_features=0, separable=False):
    super().__init__()
    self.squeeze = Squeeze(in_features, squeeze)
    self.deconv = conv_transpose(
      squeeze, squeeze, 4 if stride == 2 else 3, stride, padding=1, separable=separable
    )
    self.expand = Expand(squeeze + skip_features, expand, separable)
    self.out_features = 2 * expand

  def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
    y = torch.relu(self.deconv(self.squeeze(x)))
    if skip is not None:
      y = torch.cat([y, skip], dim=1)
    return self.expand(y)
