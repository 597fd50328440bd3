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


def _unnormalize(coordinate: jax.Array, size: int, align_corners: bool) -> jax.Array:
  """torch's grid_sample map from [-1, 1] to a pixel index (grid_sampler_compute_source_index)."""
  if align_corners:
    return (coordinate + 1.0) / 2.0 * (size - 1)
  return ((coordinate + 1.0) * size - 1.0) / 2.0


def _reflect(coordinate: jax.Array, size: int, align_corners: bool) -> jax.Array:
  """torch's reflect_coordinates then clip_coordinates: folds a pixel index into the image."""
  low, high = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
  span = high - low
  if span <= 0:
    return jnp.zeros_like(coordinate)
  distance = jnp.abs(coordinate - low)
  flips = jnp.floor(distance / span)
  extra = distance - flips * span
  reflected = jnp.where(flips % 2 == 0, low + extra, high - extra)
  return jnp.clip(reflected, 0, size - 1)


def grid_sample(
  x: jax.Array, grid: jax.Array, *, align_corners: bool = False, padding_mode: str = 'zeros'
) -> jax.Array:
  """PyTorch's F.grid_sample(mode='bilinear') on NHWC input, padding 'zeros' or 'reflection'.

  Each output pixel reads its four neighbours with one gather over the
  flattened image; with padding 'zeros' neighbours outside the image weigh
  zero, with 'reflection' (FOMM's random TPS transforms) positions are first
  mirrored into the image at its edges.
  On XLA:CPU the gather is 19-140x faster than a one-hot matrix product or
  a separable (rows, then columns) form at FOMM's sizes; docs/performance.md
  has the numbers and the command (`python -m bench.grid_sample`).

  Args:
    x: (B, H, W, C) input.
    grid: (B, H', W', 2) sampling positions in [-1, 1], x (width) first, as torch's.
    align_corners: torch's option; False (torch's default since 1.3) maps -1
      and 1 to the outer edges of the corner pixels, True to their centres.
    padding_mode: 'zeros' or 'reflection', torch's names.

  Returns:
    (B, H', W', C).
  """
  if padding_mode not in ('zeros', 'reflection'):
    raise ValueError(f"grid_sample: padding_mode={padding_mode!r}; valid: 'zeros', 'reflection'.")
  batch, height, width, channels = x.shape
  _, out_height, out_width, _ = grid.shape
  ix = _unnormalize(grid[..., 0], width, align_corners).reshape(batch, -1)
  iy = _unnormalize(grid[..., 1], height, align_corners).reshape(batch, -1)
  if padding_mode == 'reflection':
    ix, iy = _reflect(ix, width, align_corners), _reflect(iy, height, align_corners)
  x0, y0 = jnp.floor(ix), jnp.floor(iy)
  indices, weights = [], []
  for dy in (0, 1):
    for dx in (0, 1):
      cx, cy = x0 + dx, y0 + dy
      # torch's weights: the area of the opposite sub-rectangle.
      weight = (1.0 - jnp.abs(ix - cx)) * (1.0 - jnp.abs(iy - cy))
      inside = (cx >= 0) & (cx <= width - 1) & (cy >= 0) & (cy <= height - 1)
      weights.append(jnp.where(inside, weight, 0.0))
      column = jnp.clip(cx, 0, width - 1).astype(jnp.int32)
      row = jnp.clip(cy, 0, height - 1).astype(jnp.int32)
      indices.append(row * width + column)
  index = jnp.concatenate(indices, axis=1)  # (B, 4P): one gather for the four neighbours
  values = jnp.take_along_axis(x.reshape(batch, height * width, channels), index[..., None], 1)
  values = values.reshape(batch, 4, -1, channels)
  out = jnp.einsum('bkpc,bkp->bpc', values, jnp.stack(weights, axis=1))
  return out.reshape(batch, out_height, out_width, channels)


@functools.lru_cache(maxsize=32)
def bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
  """(out_size, in_size) weights of torch's bilinear resize (align_corners=False) on one axis."""
  scale = in_size / out_size
  matrix = np.zeros((out_size, in_size), np.float32)
  for o in range(out_size):
    # torch clamps negative source positions to 0 and the upper neighbour to the last pixel.
    source = max((o + 0.5) * scale - 0.5, 0.0)
    low = min(int(np.floor(source)), in_size - 1)
    high = min(low + 1, in_size - 1)
    fraction = source - low
    matrix[o, low] += 1.0 - fraction
    matrix[o, high] += fraction
  return matrix


def resize_bilinear(x: jax.Array, height: int, width: int) -> jax.Array:
  """PyTorch's F.interpolate(size=(height, width), mode='bilinear'), align_corners False.

  Exact for shrinking too, where jax.image.resize would anti-alias; two
  small matrix products, like `anti_alias_downsample`.
  """
  if x.shape[1:3] == (height, width):
    return x
  rows = jnp.asarray(bilinear_matrix(height, x.shape[1]))
  cols = jnp.asarray(bilinear_matrix(width, x.shape[2]))
  return jnp.einsum('oh,bhwc,pw->bopc', rows, x, cols, precision=lax.Precision.HIGHEST)


def kp_to_gaussian(kp: jax.Array, height: int, width: int, variance: float) -> jax.Array:
  """FOMM's kp2gaussian: exp(-|z - kp|^2 / (2 variance)) on the [-1, 1] grid.

  Args:
    kp: (B, K, 2) keypoints, x first.
    height, width: the map's size.
    variance: FOMM's `kp_variance` (0.01).

  Returns:
    (B, H, W, K).
  """
  grid = coordinate_grid(height, width)
  difference = grid[None, :, :, None, :] - kp[:, None, None, :, :]
  return jnp.exp(-0.5 * (difference**2).sum(-1) / variance)
