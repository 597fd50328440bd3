"""Dense convolutions written as matrix products: im2col, row-shifted and output-shifted.

The forms `models.convolution.conv2d` picks among (its docstring says when
each wins); each takes an already padded NHWC input and an HWIO kernel and
computes what `lax.conv_general_dilated` computes (tests/test_convolution.py).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax


def taps(x: jax.Array, kernel_size: int, stride: int, axis: int) -> list[jax.Array]:
  """The k strided windows of (already padded) `x` along `axis` (1 = H, 2 = W)."""
  size = (x.shape[axis] - kernel_size) // stride + 1
  windows = []
  for i in range(kernel_size):
    start = [0] * x.ndim
    limit = list(x.shape)
    strides = [1] * x.ndim
    start[axis], limit[axis], strides[axis] = i, i + (size - 1) * stride + 1, stride
    windows.append(lax.slice(x, start, limit, strides))
  return windows


def conv2d_im2col(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """All k*k taps stacked along channels, then one matmul (padded input)."""
  kernel_size, _, in_features, out_features = kernel.shape
  rows = taps(x, kernel_size, stride, axis=1)
  patches = jnp.concatenate(
    [tap for row in rows for tap in taps(row, kernel_size, stride, axis=2)], axis=-1
  )
  batch, out_h, out_w, _ = patches.shape
  flat = patches.reshape(batch * out_h * out_w, kernel_size * kernel_size * in_features)
  y = flat @ kernel.reshape(-1, out_features)
  return y.reshape(batch, out_h, out_w, out_features)


def conv2d_row_shift(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """Column shifts stacked along channels, one matmul to every kernel row, row shifts summed."""
  kernel_size, _, in_features, out_features = kernel.shape
  columns = jnp.concatenate(taps(x, kernel_size, stride, axis=2), axis=-1)  # (B, H, Wo, k*C)
  batch, height, out_w, _ = columns.shape
  # (j, c) -> (i, o): kernel[i, j, c, o] rearranged so one matmul serves all rows i.
  weights = kernel.transpose(1, 2, 0, 3).reshape(kernel_size * in_features, -1)
  per_row = (columns.reshape(-1, kernel_size * in_features) @ weights).reshape(
    batch, height, out_w, kernel_size, out_features
  )
  out_h = (height - kernel_size) // stride + 1
  out = None
  for i in range(kernel_size):
    term = lax.slice(
      per_row,
      (0, i, 0, i, 0),
      (batch, i + (out_h - 1) * stride + 1, out_w, i + 1, out_features),
      (1, stride, 1, 1, 1),
    )[:, :, :, 0]
    out = term if out is None else out + term
  return out


def conv2d_out_shift(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """One matmul from each input pixel to every tap's outputs (C -> k*k*O), then the k*k
  shifted slices summed: for wide kernels onto a few outputs (FOMM generator's 7x7 final
  conv, 64 -> 3 at 256x256), where XLA's convolution runs its 3-wide output badly.

  Its gradients are XLA's convolution's: differentiating the k*k slices pads each
  one back to the (B, H, W, k, k, O) map and sums them, 9% of FOMM's training step
  at 64x64 (186 ms of 1.98 s, the profile in docs/performance.md)."""
  return _out_shift(stride, x, kernel)


def _direct(stride: int, x: jax.Array, kernel: jax.Array) -> jax.Array:
  return lax.conv_general_dilated(
    x, kernel, (stride, stride), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _out_shift(stride: int, x: jax.Array, kernel: jax.Array) -> jax.Array:
  kernel_size, _, in_features, out_features = kernel.shape
  batch, height, width, _ = x.shape
  weights = kernel.transpose(2, 0, 1, 3).reshape(in_features, -1)
  per_tap = (x.reshape(-1, in_features) @ weights).reshape(
    batch, height, width, kernel_size, kernel_size, out_features
  )
  out_h = (height - kernel_size) // stride + 1
  out_w = (width - kernel_size) // stride + 1
  out = None
  for i in range(kernel_size):
    for j in range(kernel_size):
      term = lax.slice(
        per_tap,
        (0, i, j, i, j, 0),
        (batch, i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, i + 1, j + 1,
         out_features),
        (1, stride, stride, 1, 1, 1),
      )[:, :, :, 0, 0]  # fmt: skip
      out = term if out is None else out + term
  return out


def _out_shift_forward(stride, x, kernel):
  return _out_shift(stride, x, kernel), (x, kernel)


def _out_shift_backward(stride, inputs, cotangent):
  return jax.vjp(functools.partial(_direct, stride), *inputs)[1](cotangent)


_out_shift.defvjp(_out_shift_forward, _out_shift_backward)
