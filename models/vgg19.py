"""VGG19's first five stages, as FOMM's perceptual loss reads them (its `Vgg19`).

The layers keep torchvision's `vgg19().features` indices (`features.0`,
`features.2`, ...), so an ImageNet state dict maps onto them by name
(`train.vgg19_weights`). Called on NHWC frames in [0, 1], it normalises them
with ImageNet's mean and std and returns the activations after relu1_1,
relu2_1, relu3_1, relu4_1 and relu5_1 (torchvision indices 1, 6, 11, 20, 29).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from models import ops
from models.layers import Conv

# torchvision's `features` up to relu5_1: conv widths, with 'M' for a 2x2 max pool.
LAYOUT = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512)
# The torchvision index of the ReLU that ends each of FOMM's five slices.
SLICE_ENDS = (1, 6, 11, 20, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Vgg19Features(nnx.Module):
  """The five ReLU outputs of FOMM's perceptual loss (weights from `train.vgg19_weights`)."""

  def __init__(self, *, rngs: nnx.Rngs):
    self.convs = nnx.Dict()  # torchvision index -> conv
    index, channels = 0, 3
    for item in LAYOUT:
      if item == 'M':
        index += 1
        continue
      self.convs[str(index)] = Conv(channels, item, 3, padding=1, rngs=rngs)
      channels, index = item, index + 2  # the conv and its ReLU

  def __call__(self, frames: jax.Array) -> list[jax.Array]:
    x = (frames - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    outputs, index = [], 0
    for item in LAYOUT:
      if item == 'M':
        x = ops.max_pool(x, window=2, stride=2)
        index += 1
        continue
      x = jax.nn.relu(self.convs[str(index)](x))
      if index + 1 in SLICE_ENDS:
        outputs.append(x)
      index += 2
    return outputs
