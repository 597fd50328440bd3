"""grid_sample's forms timed on XLA:CPU at FOMM's sizes (the numbers in docs/performance.md).

  python -m bench.grid_sample [--runs=20]

The gather form (`models.ops.grid_sample`) against a one-hot matrix product
(each output pixel's four weights scattered into an (H'W', HW) matrix) and a
separable form (rows, then columns, as two one-hot weight matrices). All three
give the same values; each is jitted, called until ready, median of `runs`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from bench import timing
from models import ops
from tools import cli

_RUNS = flags.DEFINE_integer('runs', 20, 'timed calls per form and case')
# (what, input shape NHWC, grid size): the generator's feature warp, dense motion's
# sparse warps (K + 1 = 11 copies of the 64x64 image), an image by a 64x64 grid.
CASES = (
  ('features 64x64x256, 64x64 grid', (1, 64, 64, 256), 64),
  ('image 64x64x3 x 11, 64x64 grids', (11, 64, 64, 3), 64),
  ('image 256x256x3, 64x64 grid', (1, 256, 256, 3), 64),
)
# One-hot matrices above this many floats are not built (256x256 images: 1 GiB each).
_MAX_MATRIX = 1 << 26


def _axis_weights(coordinate: jax.Array, size: int) -> jax.Array:
  """(B, P, size) bilinear weights along one axis; out-of-image neighbours get none."""
  position = ((coordinate + 1.0) * size - 1.0) / 2.0
  low = jnp.floor(position)
  fraction = position - low
  low = low.astype(jnp.int32)
  return jax.nn.one_hot(low, size) * (1 - fraction)[..., None] + (
    jax.nn.one_hot(low + 1, size) * fraction[..., None]
  )


def one_hot_form(x: jax.Array, grid: jax.Array) -> jax.Array:
  batch, height, width, channels = x.shape
  wy = _axis_weights(grid[..., 1].reshape(batch, -1), height)
  wx = _axis_weights(grid[..., 0].reshape(batch, -1), width)
  matrix = (wy[..., :, None] * wx[..., None, :]).reshape(batch, -1, height * width)
  out = jnp.einsum('bpq,bqc->bpc', matrix, x.reshape(batch, -1, channels))
  return out.reshape(*grid.shape[:3], channels)


def separable_form(x: jax.Array, grid: jax.Array) -> jax.Array:
  batch, height, width, channels = x.shape
  wy = _axis_weights(grid[..., 1].reshape(batch, -1), height)
  wx = _axis_weights(grid[..., 0].reshape(batch, -1), width)
  rows = jnp.einsum('bpw,bhwc->bphc', wx, x)
  out = jnp.einsum('bph,bphc->bpc', wy, rows)
  return out.reshape(*grid.shape[:3], channels)


FORMS = {'gather': ops.grid_sample, 'one-hot matmul': one_hot_form, 'separable': separable_form}


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  rng = np.random.default_rng(0)
  print(f'{timing.cpu_model()}, {jax.device_count()} XLA:CPU device(s), median of {_RUNS.value}')
  for what, shape, size in CASES:
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    grid = jnp.asarray(rng.uniform(-1.2, 1.2, (shape[0], size, size, 2)), jnp.float32)
    reference = None
    for name, form in FORMS.items():
      if name == 'one-hot matmul' and shape[0] * size * size * shape[1] * shape[2] > _MAX_MATRIX:
        print(f'  {what:34s} {name:15s} not run (its matrix would exceed 256 MiB)')
        continue
      fn = jax.jit(form)
      out = fn(x, grid).block_until_ready()
      reference = out if reference is None else reference
      assert np.allclose(out, reference, atol=1e-4), (what, name)
      median = timing.time_fn(
        lambda fn=fn, x=x, grid=grid: fn(x, grid).block_until_ready(), _RUNS.value
      )
      print(f'  {what:34s} {name:15s} {1e3 * median["median_s"]:9.3f} ms')


if __name__ == '__main__':
  cli.run(main)
