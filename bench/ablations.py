"""What each hand-written form buys over the straightforward XLA one, at the zoo's shapes.

Each ablation is a data row: what is computed, the two forms' names and
functions, and the shapes of its inputs. `run` checks that the two forms
agree, then times each compiled alone (median of `runs` calls).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from bench import timing
from models import compiler, convolution, layers, ops
from models.keypoint_head import Deferred, KeypointHead

B = 'batch'  # in an input shape: the benchmark's --batch
_DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')


@dataclasses.dataclass(frozen=True)
class Ablation:
  """One ablation: `before_fn` and `after_fn` compute the same thing from `inputs`.

  Attributes:
    what: the computation and its shapes.
    before: the straightforward form.
    after: the hand-written form the models use.
    before_fn, after_fn: the two forms, functions of the input arrays.
    inputs: the input shapes (B: the batch size), drawn from a standard normal.
    uniform: draw the inputs from U[0, 1) instead.
  """

  what: str
  before: str
  after: str
  before_fn: Callable[..., Any]
  after_fn: Callable[..., Any]
  inputs: tuple[tuple[int | str, ...], ...]
  uniform: bool = False

  def arrays(self, rng: np.random.Generator, batch: int) -> list[jax.Array]:
    shapes = [tuple(batch if d == B else d for d in shape) for shape in self.inputs]
    draw = rng.uniform if self.uniform else rng.standard_normal
    return [jnp.asarray(draw(size=shape), jnp.float32) for shape in shapes]


def _grouped(x, k, stride=1, padding=1):
  """A depthwise conv as XLA writes it: feature_group_count = channels."""
  return lax.conv_general_dilated(
    x, k[:, :, None, :], (stride, stride), ((padding, padding),) * 2,
    dimension_numbers=_DIMENSIONS, feature_group_count=x.shape[-1],
  )  # fmt: skip


def _depthwise(channels: int, size: int) -> Ablation:
  return Ablation(
    f'depthwise 3x3, {channels} channels, {size}x{size}',
    'feature_group_count conv',
    'shifted multiply-adds',
    _grouped,
    lambda x, k: convolution.depthwise_conv2d(x, k, padding=1),
    ((B, size, size, channels), (3, 3, channels)),
  )


def _anti_alias() -> Ablation:
  g = ops.anti_alias_kernel_1d(0.25)
  gaussian = jnp.asarray(np.outer(g, g)[:, :, None] * np.ones((1, 1, 3)), jnp.float32)
  return Ablation(
    'anti-alias 256 -> 64, 3 channels',
    '13x13 grouped conv, stride 4',
    'two matrix products',
    lambda x: _grouped(x, gaussian, stride=4, padding=6),
    lambda x: ops.anti_alias_downsample(x, 0.25),
    ((B, 256, 256, 3),),
    uniform=True,
  )


def _up_block(what: str, after: str, size: int, features: tuple[int, int]) -> Ablation:
  return Ablation(
    f'FOMM up block, nearest x2 + 3x3, {what}',
    'upsample, then conv',
    after,
    lambda x, k: convolution.conv2d_after_upsample(x, k, factor=2, padding=1, form='upsample'),
    lambda x, k: convolution.conv2d_after_upsample(x, k, factor=2, padding=1, form='subpixel'),
    ((B, size, size, features[0]), (3, 3, *features)),
  )


def _conv_form(
  what: str, form: str, x_shape: tuple, k_shape: tuple, stride: int, padding: int
) -> Ablation:
  """A conv form picked by `convolution.conv_form`, beside XLA's conv."""
  return Ablation(
    what,
    'XLA conv',
    form.replace('_', '-') + ' matmul',
    lambda x, k: convolution.conv2d(x, k, stride=stride, padding=padding, form='direct'),
    lambda x, k: convolution.conv2d(x, k, stride=stride, padding=padding, form=form),
    ((B, *x_shape), k_shape),
  )


def _flipped_kernel(x, k):
  return lax.conv_general_dilated(
    x, k[::-1, ::-1], (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DIMENSIONS
  )


def _zero_inserted_depthwise(x, k):
  x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (1, 2, 1), (1, 2, 1), (0, 0, 0)])
  return convolution.depthwise_conv2d(x, k[::-1, ::-1])


def _slices_max_pool(x):
  with ops.inference_forms():  # traced here, so the compiled function keeps this form
    return ops.max_pool(x, window=3, stride=2, padding=1)


def _outputs(out):
  return out['kp'], out['jacobian']


def ablations() -> tuple[Ablation, ...]:
  """Every ablation, in the order of OUT/ablations.md (builds the few layers they use)."""
  rngs = nnx.Rngs(0)
  projection, head = layers.Conv(88, 35, 1, rngs=rngs), KeypointHead(35, rngs=rngs)
  first, second = layers.Conv(88, 88, 1, rngs=rngs), layers.Conv(88, 88, 1, rngs=rngs)
  return (
    # Depthwise 3x3 at the sizes the DSC student runs it (64 and 16 channels x 32 and 16 px).
    _depthwise(64, 32),
    _depthwise(16, 16),
    _depthwise(128, 8),
    # FOMM's anti-alias downsampling of a 256x256 frame: 13x13 grouped conv vs two matmuls.
    _anti_alias(),
    # The teacher's two 7x7 heads on its 64x64x35 hourglass output.
    Ablation(
      'teacher heads 7x7, 35 -> 10 + 40, 64x64',
      'two convs',
      'one conv, kernels concatenated',
      lambda x, a, b: (convolution.conv2d(x, a), convolution.conv2d(x, b)),
      lambda x, a, b: jnp.split(convolution.conv2d(x, jnp.concatenate([a, b], axis=-1)), [10], -1),
      ((B, 64, 64, 35), (7, 7, 35, 10), (7, 7, 35, 40)),
    ),
    # FOMM's up blocks (nearest x2, then a 3x3 conv): the largest, where the sub-pixel form
    # is used, and a small wide one, where it is not (`convolution.upsampled_conv_form`).
    _up_block('128 -> 32, 32x32 -> 64x64', 'sub-pixel: four 2x2 convs at 32x32', 32, (128, 32)),
    _up_block('1024 -> 256, 4x4 -> 8x8', 'sub-pixel (not used below 8x8)', 4, (1024, 256)),
    # EdgeSegNet's tail: the 1x1 projection and head convs after or before the x4 upsampling.
    Ablation(
      'EdgeSegNet tail, 16x16x88 -> x4 -> 1x1 to 35 -> head 1x1 to 10 + 40',
      'upsample, then 1x1 convs at 64x64',
      '1x1 convs composed, at 16x16, then upsample',
      lambda x: _outputs(head(projection(ops.upsample_bilinear(x, 4)))),
      lambda x: _outputs(head(Deferred(x, projection, upsample=4))),
      ((B, 16, 16, 88),),
    ),
    Ablation(
      'EdgeSegNet refine module 1x1s, 88 -> 88 -> 88, 16x16',
      'two convs, one after the other',
      'one matmul to [K1, K1 @ K2]',
      lambda x: (first(x), second(first(x))),
      lambda x: layers.pointwise_pair(first, second, x),
      ((B, 16, 16, 88),),
    ),
    # Conv forms picked by convolution.conv_form, on shapes of the zoo.
    _conv_form(
      'EdgeSegNet stem 7x7/2, 3 -> 8, 64x64', 'row_shift', (64, 64, 3), (7, 7, 3, 8), 2, 3
    ),
    _conv_form(
      '3x3, 8 -> 32, 16x16 (Squeeze encoder-decoder)', 'im2col', (16, 16, 8), (3, 3, 8, 32), 1, 1
    ),
    # Squeeze U-Net's first up block: a 3x3 transposed conv, 512 -> 192 channels at 4x4.
    Ablation(
      'transposed 3x3/1, 512 -> 192, 4x4',
      'conv with the kernel flipped per call',
      'flipped activations, kernel as stored',
      _flipped_kernel,
      lambda x, k: convolution.conv_transpose2d(x, k, stride=1, padding=1),
      ((B, 4, 4, 512), (3, 3, 512, 192)),
    ),
    # The students' 3x3/2 max pool (inference form: `ops.inference_forms`).
    Ablation(
      'max pool 3x3/2, 64 channels, 32x32 -> 16x16',
      'lax.reduce_window (training form)',
      'maximum of 9 strided slices (inference form)',
      lambda x: ops.max_pool(x, window=3, stride=2, padding=1),
      _slices_max_pool,
      ((B, 32, 32, 64),),
    ),
    Ablation(
      'depthwise transposed 3x3/2, 128 channels, 8x8 -> 16x16',
      'shifted MACs over zero-inserted input',
      'sub-pixel shifted MACs',
      _zero_inserted_depthwise,
      lambda x, k: convolution.depthwise_conv_transpose2d(
        x, k, stride=2, padding=1, output_padding=1
      ),
      ((B, 8, 8, 128), (3, 3, 128)),
    ),
  )


def check_agree(row: Ablation, arrays: list[jax.Array]) -> float:
  """The largest difference between the two forms' outputs; raises if they disagree."""
  expected = jax.tree.leaves(row.before_fn(*arrays))
  got = jax.tree.leaves(row.after_fn(*arrays))
  worst = 0.0
  for e, g in zip(expected, got, strict=True):
    error = float(np.abs(np.asarray(g) - np.asarray(e)).max())
    if error > 1e-4 * (float(np.abs(np.asarray(e)).max()) + 1):
      raise RuntimeError(f'ablation {row.what!r}: the two forms disagree by {error}.')
    worst = max(worst, error)
  return worst


def _timed(fn: Callable[..., Any], arrays: list[jax.Array], runs: int) -> float:
  compiled = compiler.jit(fn).lower(*arrays).compile()
  return timing.time_fn(lambda: jax.block_until_ready(compiled(*arrays)), runs)['median_s']


def run(*, batch: int, runs: int, rows: tuple[Ablation, ...] | None = None) -> list[dict[str, Any]]:
  """Each row's two forms, checked to agree (else the timing means nothing), then timed."""
  rng = np.random.default_rng(0)
  results = []
  for row in ablations() if rows is None else rows:
    arrays = row.arrays(rng, batch)
    check_agree(row, arrays)
    results.append(
      {
        'what': row.what,
        'before': row.before,
        'after': row.after,
        'before_s': _timed(row.before_fn, arrays, runs),
        'after_s': _timed(row.after_fn, arrays, runs),
      }
    )
  return results
