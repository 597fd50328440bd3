"""The parameter-free ops against direct NumPy / lax computations of the same thing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from models import ops

_DN = ('NHWC', 'HWIO', 'NHWC')


def _random(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize('ratio', [2, 4])
def test_fold_then_unfold_is_identity(ratio):
  x = jnp.asarray(_random((2, 8, 16, 3)))
  folded = ops.fold(x, ratio)
  assert folded.shape == (2, 8 // ratio, 16 // ratio, 3 * ratio * ratio)
  np.testing.assert_array_equal(ops.unfold(folded, ratio), x)


def test_fold_channel_order_is_the_reference_one():
  x = _random((1, 4, 4, 2))
  folded = np.asarray(ops.fold(jnp.asarray(x), 2))
  for i in range(2):
    for j in range(2):
      block = folded[..., (i * 2 + j) * 2 : (i * 2 + j + 1) * 2]
      np.testing.assert_array_equal(block, x[:, i::2, j::2, :])


@pytest.mark.parametrize('ratio,kernel_size', [(2, 1), (2, 3), (4, 3)])
def test_conv_on_folded_image_equals_strided_conv_on_original(ratio, kernel_size):
  """The article's claim: folding then convolving is a strided convolution."""
  channels, out_features, size = 3, 5, 16
  x = _random((2, size, size, channels))
  w = _random((kernel_size, kernel_size, channels * ratio * ratio, out_features), seed=4)
  pad = kernel_size // 2
  on_folded = lax.conv_general_dilated(
    ops.fold(jnp.asarray(x), ratio),
    w,
    (1, 1),
    ((pad, pad), (pad, pad)),
    dimension_numbers=_DN,
    precision=lax.Precision.HIGHEST,
  )
  # The equivalent (k*r x k*r) kernel, stride r, padding r*pad on the original.
  big = np.zeros((kernel_size * ratio, kernel_size * ratio, channels, out_features), np.float32)
  for di in range(kernel_size):
    for dj in range(kernel_size):
      for i in range(ratio):
        for j in range(ratio):
          block = w[di, dj, (i * ratio + j) * channels : (i * ratio + j + 1) * channels]
          big[di * ratio + i, dj * ratio + j] = block
  on_original = lax.conv_general_dilated(
    jnp.asarray(x),
    big,
    (ratio, ratio),
    ((ratio * pad,) * 2, (ratio * pad,) * 2),
    dimension_numbers=_DN,
    precision=lax.Precision.HIGHEST,
  )
  np.testing.assert_allclose(on_folded, on_original, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('scale,size', [(0.25, 32), (0.5, 20), (1 / 3, 12)])
def test_anti_alias_downsample_equals_direct_numpy(scale, size):
  """FOMM's AntiAliasInterpolation2d, written out as FOMM writes it."""
  x = _random((2, size, size, 3))
  sigma = (1 / scale - 1) / 2
  k = 2 * round(sigma * 4) + 1
  ka = k // 2
  kb = ka - 1 if k % 2 == 0 else ka
  yy, xx = np.meshgrid(
    np.arange(k, dtype=np.float64), np.arange(k, dtype=np.float64), indexing='ij'
  )
  mean = (k - 1) / 2
  kernel = np.exp(-((yy - mean) ** 2) / (2 * sigma**2)) * np.exp(
    -((xx - mean) ** 2) / (2 * sigma**2)
  )
  kernel /= kernel.sum()
  padded = np.pad(x, ((0, 0), (ka, kb), (ka, kb), (0, 0)))
  out = np.zeros((2, size, size, 3))
  for i in range(size):
    for j in range(size):
      out[:, i, j] = np.einsum('bklc,kl->bc', padded[:, i : i + k, j : j + k], kernel)
  step = int(1 / scale)
  expected = out[:, ::step, ::step]
  np.testing.assert_allclose(
    ops.anti_alias_downsample(jnp.asarray(x), scale), expected, rtol=1e-5, atol=1e-5
  )


def test_anti_alias_at_scale_one_is_identity():
  x = jnp.asarray(_random((1, 8, 8, 3)))
  assert ops.anti_alias_downsample(x, 1.0) is x


def _torch_bilinear_reference(x, factor):
  """PyTorch's upsample_bilinear2d, align_corners=False, by its formula."""
  batch, height, width, channels = x.shape

  def weights(size):
    out = np.zeros((size * factor, size))
    for o in range(size * factor):
      src = max((o + 0.5) / factor - 0.5, 0.0)
      lo = min(int(np.floor(src)), size - 1)
      hi = min(lo + 1, size - 1)
      frac = src - lo
      out[o, lo] += 1 - frac
      out[o, hi] += frac
    return out

  return np.einsum('oh,bhwc,pw->bopc', weights(height), x, weights(width))


@pytest.mark.parametrize('factor', [2, 4])
def test_upsample_bilinear_matches_pytorch(factor):
  x = _random((2, 3, 5, 4))
  np.testing.assert_allclose(
    ops.upsample_bilinear(jnp.asarray(x), factor),
    _torch_bilinear_reference(x, factor),
    rtol=1e-5,
    atol=1e-5,
  )


def test_upsample_nearest_and_pools():
  x = _random((1, 4, 4, 2))
  up = np.asarray(ops.upsample_nearest(jnp.asarray(x), 2))
  np.testing.assert_array_equal(up, x.repeat(2, axis=1).repeat(2, axis=2))
  np.testing.assert_allclose(
    ops.avg_pool_2x2(jnp.asarray(x)), x.reshape(1, 2, 2, 2, 2, 2).mean(axis=(2, 4)), atol=1e-6
  )
  # 3x3 stride-2 pad-1 max pool: padded cells never win, even for negative inputs.
  negative = -np.abs(x) - 1
  pooled = np.asarray(ops.max_pool(jnp.asarray(negative), window=3, stride=2, padding=1))
  assert pooled.shape == (1, 2, 2, 2)
  np.testing.assert_array_equal(pooled[0, 0, 0], negative[0, :2, :2].max(axis=(0, 1)))
  np.testing.assert_array_equal(pooled[0, 1, 1], negative[0, 1:4, 1:4].max(axis=(0, 1)))


@pytest.mark.parametrize(
  ('shape', 'window', 'stride', 'padding'),
  [((2, 9, 7, 3), 3, 2, 1), ((1, 8, 8, 4), 2, 2, 0), ((1, 6, 10, 2), 3, 1, 1)],
)
def test_max_pool_inference_form_equals_reduce_window_in_value_and_gradient(
  shape, window, stride, padding
):
  x = jnp.asarray(_random(shape))
  pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))

  def reference(x):
    dims, strides = (1, window, window, 1), (1, stride, stride, 1)
    return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, pads)

  def pool(x):
    return ops.max_pool(x, window=window, stride=stride, padding=padding)

  def inference_pool(x):
    with ops.inference_forms():
      return pool(x)

  trained = str(jax.make_jaxpr(pool)(x))
  inferred = str(jax.make_jaxpr(inference_pool)(x))
  assert 'reduce_window_max' in trained and 'reduce_window' not in inferred
  np.testing.assert_array_equal(inference_pool(x), reference(x))
  np.testing.assert_array_equal(pool(x), reference(x))
  # Distinct values: no ties, so both route each gradient to the same cell.
  np.testing.assert_array_equal(
    jax.grad(lambda x: (inference_pool(x) ** 2).sum())(x),
    jax.grad(lambda x: (reference(x) ** 2).sum())(x),
  )


def test_coordinate_grid_is_fomms():
  grid = np.asarray(ops.coordinate_grid(3, 5))
  assert grid.shape == (3, 5, 2)
  np.testing.assert_allclose(grid[0, :, 0], [-1, -0.5, 0, 0.5, 1])  # x along columns
  np.testing.assert_allclose(grid[:, 0, 1], [-1, 0, 1])  # y along rows
