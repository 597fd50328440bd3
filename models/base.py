"""What every keypoint model of the zoo shares: input checks and the output dict."""

from __future__ import annotations

import abc

import jax
from flax import nnx

from models.keypoint_head import Deferred, KeypointHead


class KeypointModel(nnx.Module, abc.ABC):
  """A backbone followed by FOMM's keypoint head.

  Subclasses set `head`, `num_channels` and `default_input_size`, and implement
  `backbone` and `input_divisor`. Calling the model returns a dict with `kp`
  (B, K, 2), `jacobian` (B, K, 2, 2), `heatmap` (B, K, h, w) and
  `encoder_features` (B, h', w', C'), the encoder output used for attention
  transfer.
  """

  name: str = 'keypoint_model'
  head: KeypointHead
  num_channels: int
  default_input_size: int

  @abc.abstractmethod
  def backbone(self, x: jax.Array) -> tuple[jax.Array | Deferred, jax.Array]:
    """Returns (feature map for the head, encoder output).

    The feature map may be `Deferred`: its last 1x1 conv and upsampling left
    to the head, which runs them in the cheaper order.
    """

  @abc.abstractmethod
  def input_divisor(self) -> int:
    """Height and width must be positive multiples of this."""

  def check_input_shape(self, shape: tuple[int, ...]) -> None:
    """Raises ValueError, naming the model, the shape and the need, if unusable."""
    divisor = self.input_divisor()
    need = (
      f'(B, H, W, {self.num_channels}) float images with H and W positive multiples of '
      f'{divisor} (e.g. {self.default_input_size}x{self.default_input_size})'
    )
    if len(shape) != 4:
      raise ValueError(f'{self.name}: got an input of shape {tuple(shape)}; it needs {need}.')
    _, height, width, channels = shape
    if channels != self.num_channels:
      raise ValueError(
        f'{self.name}: got {channels} channels in input shape {tuple(shape)}; it needs {need}.'
      )
    if height <= 0 or width <= 0 or height % divisor or width % divisor:
      raise ValueError(
        f'{self.name}: cannot take a {height}x{width} input (shape {tuple(shape)}); '
        f'it needs {need}.'
      )

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    self.check_input_shape(x.shape)
    features, encoder_features = self.backbone(x)
    out = self.head(features)
    out['encoder_features'] = encoder_features
    return out
