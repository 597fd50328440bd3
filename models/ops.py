"""Parameter-free array operations on NHWC tensors, with PyTorch's geometry.

Every function here is a pure function of arrays, so the layers in
`models.layers` and the tests can use them directly. Geometry (padding, output
sizes, interpolation) follows PyTorch, the framework of the article and of
FOMM, so that weights port one-to-one. Convolutions live in
`models.convolution`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Set while an inference function is traced (`inference_forms`): ops may then
# pick forms that are faster forward but whose gradients are slower.
_INFERENCE: contextvars.ContextVar[bool] = contextvars.ContextVar('inference', default=False)


@contextlib.contextmanager
def inference_forms():
  """Within this block, traced ops take their inference forms (read at trace time)."""
  token = _INFERENCE.set(True)
  try:
    yield
  finally:
    _INFERENCE.reset(token)


def max_pool(x: jax.Array, *, window: int, stride: int, padding: int = 0) -> jax.Array:
  """PyTorch MaxPool2d(window, stride, padding): padded cells never win.

  Under `inference_forms`, the maximum of window x window strided slices:
  XLA:CPU fuses them into one loop, about 3x faster than its reduce-window
  for the students' 3x3/2 pools (docs/performance.md). Training keeps
  `lax.reduce_window`: the whole distillation step measured 10% slower with
  the slices' gradient. Both forms give the same values.
  """
  pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
  if not _INFERENCE.get():
    dims, strides = (1, window, window, 1), (1, stride, stride, 1)
    return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, pads)
  batch, height, width, channels = x.shape
  x = jnp.pad(x, pads, constant_values=-jnp.inf)
  out_height = (height + 2 * padding - window) // stride + 1
  out_width = (width + 2 * padding - window) // stride + 1
  pooled = None
  for i in range(window):
    for j in range(window):
      cells = lax.slice(
        x,
        (0, i, j, 0),
        (batch, i + (out_height - 1) * stride + 1, j + (out_width - 1) * stride + 1, channels),
        (1, stride, stride, 1),
      )
      pooled = cells if pooled is None else jnp.maximum(pooled, cells)
  return pooled


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
