"""Parameter-free array operations on NHWC tensors, with PyTorch's geometry.

Every function here is a pure function of arrays, so the layers in
`models.layers` and the tests can use them directly. Geometry (padding, output
sizes, interpolation) follows PyTorch, the framework of the article and of
FOMM, so that weights port one-to-one.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Padding = int | tuple[int, int]


def _pair(padding: Padding) -> tuple[int, int]:
  return (padding, padding) if isinstance(padding, int) else tuple(padding)


def depthwise_conv2d(
  x: jax.Array, kernel: jax.Array, *, stride: int = 1, padding: Padding = 0
) -> jax.Array:
  """Depthwise 2-D convolution written as shifted multiply-adds.

  Equal to `lax.conv_general_dilated(..., feature_group_count=C)` with a
  (kh, kw, 1, C) kernel, but XLA:CPU runs grouped convolutions 3-20x slower
  than this form, which it fuses into one elementwise loop.

  Args:
    x: (B, H, W, C) input.
    kernel: (kh, kw, C), one filter per channel.
    stride: the same stride along both spatial axes.
    padding: zeros added on each side of H and W, an int or (before, after).

  Returns:
    (B, Ho, Wo, C) with Ho = (H + before + after - kh) // stride + 1.
  """
  kh, kw, channels = kernel.shape
  if x.shape[-1] != channels:
    raise ValueError(f'depthwise_conv2d: input has {x.shape[-1]} channels, kernel {channels}.')
  before, after = _pair(padding)
  x = jnp.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
  batch, height, width, _ = x.shape
  out_h = (height - kh) // stride + 1
  out_w = (width - kw) // stride + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      tap = lax.slice(
        x,
        (0, i, j, 0),
        (batch, i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, channels),
        (1, stride, stride, 1),
      )
      term = tap * kernel[i, j]
      out = term if out is None else out + term
  return out


def transpose_padding(
  kernel_size: int, stride: int, padding: int, output_padding: int
) -> tuple[int, int, int]:
  """Turns PyTorch ConvTranspose2d geometry into (before, after, interior) zeros.

  A transposed convolution is a stride-1 convolution with the spatially
  flipped kernel over the input with (stride - 1) zeros between pixels and
  these borders; its output size is (H - 1) * stride - 2 * padding +
  kernel_size + output_padding, as in PyTorch.
  """
  if not 0 <= output_padding < stride:
    raise ValueError(f'output_padding {output_padding} must be smaller than stride {stride}.')
  before = kernel_size - 1 - padding
  return before, before + output_padding, stride - 1


def dilate_and_pad(x: jax.Array, before: int, after: int, interior: int) -> jax.Array:
  """Inserts `interior` zeros between pixels and pads H and W (negative crops)."""
  zero = jnp.zeros((), x.dtype)
  config = [(0, 0, 0), (before, after, interior), (before, after, interior), (0, 0, 0)]
  return lax.pad(x, zero, config)


def depthwise_conv_transpose2d(
  x: jax.Array,
  kernel: jax.Array,
  *,
  stride: int = 1,
  padding: int = 0,
  output_padding: int = 0,
) -> jax.Array:
  """Depthwise transposed convolution (PyTorch ConvTranspose2d with groups=C).

  Args:
    x: (B, H, W, C) input.
    kernel: (kh, kw, C); PyTorch's weight[c, 0, i, j] is kernel[i, j, c].
    stride: upsampling stride.
    padding: PyTorch's `padding`.
    output_padding: PyTorch's `output_padding`.

  Returns:
    (B, (H - 1) * stride - 2 * padding + kh + output_padding, ..., C).
  """
  before, after, interior = transpose_padding(kernel.shape[0], stride, padding, output_padding)
  x = dilate_and_pad(x, before, after, interior)
  return depthwise_conv2d(x, kernel[::-1, ::-1], stride=1, padding=0)


def max_pool(x: jax.Array, *, window: int, stride: int, padding: int = 0) -> jax.Array:
  """PyTorch MaxPool2d(window, stride, padding): padded cells never win."""
  pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
  return lax.reduce_window(
    x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1), pads
  )


def avg_pool_2x2(x: jax.Array) -> jax.Array:
  """PyTorch avg_pool2d(x, (2, 2)) on even sizes, as a reshape and a mean."""
  batch, height, width, channels = x.shape
  return x.reshape(batch, height // 2, 2, width // 2, 2, channels).mean(axis=(2, 4))


def upsample_nearest(x: jax.Array, factor: int) -> jax.Array:
  """PyTorch interpolate(scale_factor=factor, mode='nearest') for an integer factor."""
  if factor == 1:
    return x
  batch, height, width, channels = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (batch, height, factor, width, factor, channels))
  return x.reshape(batch, height * factor, width * factor, channels)


def upsample_bilinear(x: jax.Array, factor: int) -> jax.Array:
  """PyTorch interpolate(scale_factor=factor, mode='bilinear', align_corners=False).

  For upsampling, JAX's half-pixel-centre linear resize renormalises the
  weights at the border, which equals PyTorch clamping the source index.
  """
  if factor == 1:
    return x
  batch, height, width, channels = x.shape
  return jax.image.resize(x, (batch, height * factor, width * factor, channels), 'bilinear')


def fold(x: jax.Array, ratio: int) -> jax.Array:
  """L3U-Net's data folding: each ratio x ratio block of pixels moves into channels.

  Channel block (i * ratio + j) holds x[:, i::ratio, j::ratio, :], the order of
  the reference implementation, so a conv on the folded tensor equals a
  stride-`ratio` conv on the original (see tests).
  """
  batch, height, width, channels = x.shape
  if height % ratio or width % ratio:
    raise ValueError(f'fold: {height}x{width} is not divisible by the fold ratio {ratio}.')
  x = x.reshape(batch, height // ratio, ratio, width // ratio, ratio, channels)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(batch, height // ratio, width // ratio, ratio * ratio * channels)


def unfold(x: jax.Array, ratio: int) -> jax.Array:
  """The inverse of `fold` (depth to space)."""
  batch, height, width, folded = x.shape
  if folded % (ratio * ratio):
    raise ValueError(f'unfold: {folded} channels are not divisible by {ratio}*{ratio}.')
  channels = folded // (ratio * ratio)
  x = x.reshape(batch, height, width, ratio, ratio, channels)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(batch, height * ratio, width * ratio, channels)


def anti_alias_kernel_1d(scale: float) -> np.ndarray:
  """FOMM's Gaussian for downsampling by `scale`, as the normalised 1-D factor.

  FOMM builds a 2-D kernel exp(-(dy^2 + dx^2) / 2 sigma^2) normalised to sum
  1; it is the outer product of this vector with itself.
  """
  sigma = (1.0 / scale - 1.0) / 2.0
  size = 2 * round(sigma * 4) + 1
  positions = np.arange(size, dtype=np.float64) - (size - 1) / 2
  kernel = np.exp(-(positions**2) / (2 * sigma**2))
  return kernel / kernel.sum()


@functools.lru_cache(maxsize=32)
def anti_alias_matrix(size: int, scale: float) -> np.ndarray:
  """(ceil(size * scale), size) matrix: zero-pad, Gaussian filter, keep every 1/scale-th.

  Applied on both sides (rows and columns) it is FOMM's AntiAliasInterpolation2d;
  NumPy input pipelines use it directly.
  """
  kernel = anti_alias_kernel_1d(scale)
  half = len(kernel) // 2
  step = int(1 / scale)
  out_size = -(-size // step)
  matrix = np.zeros((out_size, size), np.float32)
  for o in range(out_size):
    for t, weight in enumerate(kernel):
      source = o * step + t - half
      if 0 <= source < size:
        matrix[o, source] = weight
  return matrix


def anti_alias_downsample(x: jax.Array, scale: float) -> jax.Array:
  """FOMM's AntiAliasInterpolation2d: Gaussian blur then subsample, on NHWC.

  FOMM pads by half the kernel with zeros, convolves each channel with a
  separable Gaussian (sigma = (1/scale - 1) / 2) and keeps every
  int(1/scale)-th pixel from the first. Because the kernel is separable and
  the subsampling fixed, that is two small matrix products per image, which
  XLA runs far faster than a 13x13 depthwise convolution.

  Args:
    x: (B, H, W, C) images.
    scale: output size / input size, with 1/scale an integer; 1 is the identity.

  Returns:
    (B, ceil(H * scale), ceil(W * scale), C).
  """
  if scale == 1.0:
    return x
  rows = jnp.asarray(anti_alias_matrix(x.shape[1], scale))
  cols = jnp.asarray(anti_alias_matrix(x.shape[2], scale))
  return jnp.einsum('oh,bhwc,pw->bopc', rows, x, cols, precision=lax.Precision.HIGHEST)


def coordinate_grid(height: int, width: int) -> jax.Array:
  """(H, W, 2) grid of (x, y) in [-1, 1], FOMM's make_coordinate_grid."""
  xs = 2.0 * jnp.arange(width, dtype=jnp.float32) / (width - 1) - 1.0
  ys = 2.0 * jnp.arange(height, dtype=jnp.float32) / (height - 1) - 1.0
  return jnp.stack(jnp.meshgrid(xs, ys, indexing='xy'), axis=-1)
