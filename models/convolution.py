"""Convolutions in PyTorch's geometry, written in the forms XLA:CPU runs fastest.

Every function computes exactly what its `lax.conv_general_dilated` spelling
computes (tests/test_convolution.py checks value and gradient against it);
only the form differs, chosen per shape from measurements on a 2-core EPYC
with `models.compiler`'s options (docs/performance.md, `python benchmark.py`
"ablations"):

- dense conv with a wide kernel on few channels (k >= 5, C <= 16: EdgeSegNet's
  7x7 stem): a *row-shifted matrix product*. The k column shifts of the input
  are stacked along channels (k*C), one matmul maps them to all k kernel rows
  at once (k*O outputs), and k shifted row slices are summed.
- dense conv with a tiny reduction (k > 1, k*k*C <= 128: RGB stems, 3x3 convs
  on a handful of channels): *im2col + matmul*.
- everything else: XLA's own convolution.
- forced per layer (`layers.Conv(form=...)`), from timings at FOMM generator's
  256x256 (docs/animation.md): its 7x7 RGB stem runs XLA's convolution (row
  shifts there are 5-7x slower: the 64-channel-per-row product is 115 MB),
  its 7x7 64 -> 3 output conv the *output-shifted matrix product*
  (`conv2d_out_shift`: C -> k*k*O in one matmul, then k*k shifted sums; 2x
  faster than XLA's convolution with 3 outputs).
- transposed conv: XLA's input-dilated convolution; at stride 1 of the
  flipped input with the kernel as stored, output flipped back, which saves
  copying the flipped kernel on every call.
- depthwise conv: shifted multiply-adds, which XLA fuses into one loop;
  `feature_group_count` convolutions run 11-66x slower on XLA:CPU.
- depthwise transposed conv: the *sub-pixel* (polyphase) form of those
  multiply-adds. Output pixel (y, x) only meets the kernel taps of its phase
  (y mod s, x mod s), so each phase is a few shifted multiply-adds of the
  undilated input: only the k*k useful products per input pixel are done.
- conv after a nearest upsampling (FOMM's up blocks), from 8x8 inputs up:
  the *sub-pixel* form again. Each output phase is a small conv of the
  input with the kernel taps that read the same input pixel summed (3x3
  after x2: four 2x2 convs, 16 instead of 36 multiply-adds per input pixel
  and channel pair); the upsampled map is never built. On small maps with
  many channels XLA runs those kernels badly (FOMM's 4x4, 1024-channel
  block: 2.5-10x slower than the written form, `benchmark.py` ablations), so
  the written form is kept there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from models import ops
from models.conv_matmul import conv2d_im2col, conv2d_out_shift, conv2d_row_shift
from models.conv_matmul import taps as _taps

Padding = int | tuple[int, int]

_DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')

# Thresholds of `conv_form`, from per-shape timings of every conv in the zoo.
_ROW_SHIFT_MIN_KERNEL = 5
_ROW_SHIFT_MAX_CHANNELS = 16
_IM2COL_MAX_REDUCTION = 128
_SUBPIXEL_MIN_PIXELS = 64


def _pair(padding: Padding) -> tuple[int, int]:
  return (padding, padding) if isinstance(padding, int) else tuple(padding)


def _pad(x: jax.Array, before: int, after: int) -> jax.Array:
  """Zero-pads H and W; negative amounts crop."""
  config = [(0, 0, 0), (before, after, 0), (before, after, 0), (0, 0, 0)]
  return lax.pad(x, jnp.zeros((), x.dtype), config)


def conv_form(kernel_shape: tuple[int, ...]) -> str:
  """Which form `conv2d` uses for a (k, k, C, O) kernel: 'direct', 'im2col' or 'row_shift'."""
  kernel_size, _, in_features, _ = kernel_shape
  if kernel_size >= _ROW_SHIFT_MIN_KERNEL and in_features <= _ROW_SHIFT_MAX_CHANNELS:
    return 'row_shift'
  if kernel_size > 1 and kernel_size * kernel_size * in_features <= _IM2COL_MAX_REDUCTION:
    return 'im2col'
  return 'direct'


def conv2d_direct(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """XLA's convolution of an already padded NHWC input with an HWIO kernel."""
  return lax.conv_general_dilated(
    x, kernel, (stride, stride), 'VALID', dimension_numbers=_DIMENSIONS
  )


_FORMS = {
  'direct': conv2d_direct,
  'im2col': conv2d_im2col,
  'row_shift': conv2d_row_shift,
  'out_shift': conv2d_out_shift,
}


def conv2d(
  x: jax.Array, kernel: jax.Array, *, stride: int = 1, padding: Padding = 0, form: str | None = None
) -> jax.Array:
  """PyTorch's Conv2d (no bias) on NHWC with an HWIO kernel, in the fastest form.

  Args:
    x: (B, H, W, C) input.
    kernel: (k, k, C, O).
    stride: the same stride along both spatial axes.
    padding: zeros on each side of H and W, an int or (before, after).
    form: force 'direct', 'im2col', 'row_shift' or 'out_shift' (default: `conv_form`'s
      choice; 'out_shift' is only ever chosen by a layer, `layers.Conv(form=...)`).

  Returns:
    (B, Ho, Wo, O) with Ho = (H + before + after - k) // stride + 1.
  """
  if x.shape[-1] != kernel.shape[2]:
    raise ValueError(f'conv2d: input has {x.shape[-1]} channels, kernel expects {kernel.shape[2]}.')
  x = _pad(x, *_pair(padding))
  form = form or conv_form(kernel.shape)
  return _FORMS[form](x, kernel, stride)


def _upsampled_taps(factor: int, kernel_size: int, padding: int):
  """How a conv after a nearest x`factor` upsampling reads the original input, along one axis.

  Output y = factor * i + a reads upsampled pixel y + t - padding, i.e. input
  pixel i + (a + t - padding) // factor, for tap t. Phase a thus reads a
  short window of input pixels starting at i + low_a. Returns the smallest
  low_a, the window length and, per phase, (low_a - smallest, a (window, k)
  0/1 matrix summing the taps that land on the same input pixel).
  """
  offsets = [[(a + t - padding) // factor for t in range(kernel_size)] for a in range(factor)]
  low = min(min(phase) for phase in offsets)
  window = max(max(phase) - min(phase) + 1 for phase in offsets)
  phases = []
  for phase in offsets:
    merge = np.zeros((window, kernel_size), np.float32)
    merge[np.asarray(phase) - min(phase), np.arange(kernel_size)] = 1
    phases.append((min(phase) - low, merge))
  return low, window, phases


def _merge_taps(kernel: jax.Array, merge: np.ndarray, axis: int) -> jax.Array:
  """Sums kernel taps along `axis` into window rows by a 0/1 (window, k) matrix.

  Written as sums of slices: XLA runs a contraction over 3 taps of a large
  kernel far slower than the adds.
  """
  rows = []
  for row in merge:
    taps = [lax.index_in_dim(kernel, int(t), axis, keepdims=True) for t in np.flatnonzero(row)]
    if not taps:  # a phase whose window is shorter than the longest
      taps = [jnp.zeros_like(lax.index_in_dim(kernel, 0, axis, keepdims=True))]
    rows.append(sum(taps[1:], taps[0]))
  return jnp.concatenate(rows, axis=axis)


def conv2d_after_upsample(
  x: jax.Array, kernel: jax.Array, *, factor: int, padding: int, form: str | None = None
) -> jax.Array:
  """conv2d(upsample_nearest(x, factor), kernel, padding=padding), for a same-size conv.

  The 'subpixel' form never builds the upsampled map: output phase (a, b)
  (pixels y mod factor = a, x mod factor = b) is a conv of the original input
  with the taps that land on the same input pixel summed, so a 3x3 conv after
  x2 upsampling becomes four 2x2 convs at the input's size (16 instead of 36
  multiply-adds per input pixel and output channel). They run as one conv
  with the four phase kernels side by side; each phase's output is the slice
  that starts where its window does, and the phases are interleaved. The
  'upsample' form is the written one; it wins on small maps
  (`upsampled_conv_form`).
  """
  kernel_size = kernel.shape[0]
  if 2 * padding != kernel_size - 1:
    raise ValueError(
      f'conv2d_after_upsample: needs a same-size conv (padding (k - 1) / 2), got k={kernel_size}, '
      f'padding={padding}.'
    )
  form = form or upsampled_conv_form(x.shape)
  if form == 'upsample':
    return conv2d(ops.upsample_nearest(x, factor), kernel, padding=padding)
  low, window, phases = _upsampled_taps(factor, kernel_size, padding)
  kernels = [
    _merge_taps(_merge_taps(kernel, rows, axis=0), cols, axis=1)
    for _, rows in phases
    for _, cols in phases
  ]  # phase (a, b) at a * factor + b
  reach = max(start for start, _ in phases)
  out = conv2d(x, jnp.concatenate(kernels, axis=-1), padding=(-low, reach + window - 1 + low))
  batch, height, width, _ = x.shape
  features = kernel.shape[-1]
  parts = []
  for row_start, _ in phases:
    for col_start, _ in phases:
      channel = len(parts) * features
      parts.append(
        lax.slice(
          out,
          (0, row_start, col_start, channel),
          (batch, row_start + height, col_start + width, channel + features),
        )
      )
  return ops.unfold(jnp.concatenate(parts, axis=-1), factor)


def upsampled_conv_form(input_shape: tuple[int, ...]) -> str:
  """'subpixel' from 8x8 inputs up, else 'upsample' (measured: benchmark.py ablations)."""
  return 'subpixel' if input_shape[1] * input_shape[2] >= _SUBPIXEL_MIN_PIXELS else 'upsample'


def _phases(kernel_size: int, stride: int, padding: int) -> tuple[int, list[list[tuple[int, int]]]]:
  """The sub-pixel decomposition of a 1-D transposed conv.

  PyTorch's transposed conv adds x[a] * w[i] to output y = a * stride -
  padding + i. For output phase r = y mod stride only the taps i = t, t +
  stride, ... with t = (r + padding) mod stride contribute, each reading input
  a = q + offset for output y = q * stride + r. Returns the smallest offset
  `low` and, per phase, the (window position, tap) pairs of a stride-1
  correlation over the input shifted by `low`.
  """
  phases = []
  for r in range(stride):
    t = (r + padding) % stride
    base = (r + padding - t) // stride
    phases.append([(base - m, t + m * stride) for m in range(len(range(t, kernel_size, stride)))])
  low = min((offset for phase in phases for offset, _ in phase), default=0)
  return low, [[(offset - low, tap) for offset, tap in phase] for phase in phases]


def _check_output_padding(stride: int, output_padding: int) -> None:
  if not 0 <= output_padding < stride:
    raise ValueError(f'output_padding {output_padding} must be smaller than stride {stride}.')


def _transposed_geometry(size, kernel_size, stride, padding, output_padding):
  """Output size, per-phase taps, outputs per phase and the input padding of the sub-pixel form."""
  _check_output_padding(stride, output_padding)
  out_size = (size - 1) * stride - 2 * padding + kernel_size + output_padding
  low, phases = _phases(kernel_size, stride, padding)
  window = 1 + max((pos for phase in phases for pos, _ in phase), default=0)
  per_phase = -(-out_size // stride)
  # Input index q + low + pos for q < per_phase, pos < window must exist after padding.
  before = -low
  after = per_phase - 1 + window - 1 + low - (size - 1)
  return out_size, phases, per_phase, (before, after)


def conv_transpose2d(
  x: jax.Array, kernel: jax.Array, *, stride: int = 1, padding: int = 0, output_padding: int = 0
) -> jax.Array:
  """PyTorch's ConvTranspose2d (no bias), as XLA's input-dilated convolution.

  A transposed conv correlates the zero-dilated input with the spatially
  flipped kernel (XLA's convolution skips the dilation zeros itself). At
  stride 1, flipping the input and the output instead gives the same result
  without copying the (much larger) kernel on every call.

  Args:
    x: (B, H, W, C) input.
    kernel: (k, k, C, O); PyTorch's weight[c, o, i, j] is kernel[i, j, c, o].
    stride: upsampling stride.
    padding: PyTorch's `padding`.
    output_padding: PyTorch's `output_padding`.

  Returns:
    (B, (H - 1) * stride - 2 * padding + k + output_padding, ..., O).
  """
  kernel_size, _, in_features, _ = kernel.shape
  if x.shape[-1] != in_features:
    raise ValueError(f'conv_transpose2d: input has {x.shape[-1]} channels, kernel {in_features}.')
  _check_output_padding(stride, output_padding)
  before = kernel_size - 1 - padding
  if stride == 1:
    # Flip the (small) activations instead of the (large) kernel.
    y = lax.conv_general_dilated(
      x[:, ::-1, ::-1], kernel, (1, 1), ((before, before),) * 2, dimension_numbers=_DIMENSIONS
    )
    return y[:, ::-1, ::-1]
  # Strided: flip the kernel. (The flipped-input form with output_padding puts
  # the larger pad first, and XLA:CPU 0.10.2 then computes a wrong input
  # gradient, e.g. for kernel 5, stride 3, output_padding 2; tests cover it.)
  return lax.conv_general_dilated(
    x, kernel[::-1, ::-1], (1, 1), ((before, before + output_padding),) * 2,
    lhs_dilation=(stride, stride), dimension_numbers=_DIMENSIONS,
  )  # fmt: skip


def depthwise_conv2d(
  x: jax.Array, kernel: jax.Array, *, stride: int = 1, padding: Padding = 0
) -> jax.Array:
  """Depthwise 2-D convolution written as shifted multiply-adds.

  Equal to `lax.conv_general_dilated(..., feature_group_count=C)` with a
  (kh, kw, 1, C) kernel, but XLA:CPU runs grouped convolutions 11-66x slower
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
  x = _pad(x, *_pair(padding))
  out = None
  for i, row in enumerate(_taps(x, kh, stride, axis=1)):
    for j, tap in enumerate(_taps(row, kw, stride, axis=2)):
      term = tap * kernel[i, j]
      out = term if out is None else out + term
  return out


def depthwise_conv_transpose2d(
  x: jax.Array,
  kernel: jax.Array,
  *,
  stride: int = 1,
  padding: int = 0,
  output_padding: int = 0,
) -> jax.Array:
  """Depthwise transposed convolution (PyTorch ConvTranspose2d with groups=C).

  Sub-pixel form: each output phase is a few shifted multiply-adds of the
  undilated input, so only the k*k useful products per input pixel are done.

  Args:
    x: (B, H, W, C) input.
    kernel: (kh, kw, C); PyTorch's weight[c, 0, i, j] is kernel[i, j, c].
    stride: upsampling stride.
    padding: PyTorch's `padding`.
    output_padding: PyTorch's `output_padding`.

  Returns:
    (B, (H - 1) * stride - 2 * padding + kh + output_padding, ..., C).
  """
  kernel_size = kernel.shape[0]
  if x.shape[-1] != kernel.shape[-1]:
    raise ValueError(
      f'depthwise_conv_transpose2d: input has {x.shape[-1]} channels, kernel {kernel.shape[-1]}.'
    )
  out_h, phases, q_h, pads_h = _transposed_geometry(
    x.shape[1], kernel_size, stride, padding, output_padding
  )
  out_w, _, q_w, pads_w = _transposed_geometry(
    x.shape[2], kernel_size, stride, padding, output_padding
  )
  config = [(0, 0, 0), (*pads_h, 0), (*pads_w, 0), (0, 0, 0)]
  x = lax.pad(x, jnp.zeros((), x.dtype), config)
  batch, _, _, channels = x.shape
  outputs = []
  for phase_i in phases:
    for phase_j in phases:
      out = jnp.zeros((batch, q_h, q_w, channels), x.dtype)
      for pos_i, tap_i in phase_i:
        for pos_j, tap_j in phase_j:
          window = lax.slice(x, (0, pos_i, pos_j, 0), (batch, pos_i + q_h, pos_j + q_w, channels))
          out = out + window * kernel[tap_i, tap_j]
      outputs.append(out)
  # Phase-major channels are `ops.fold`'s order: unfold interleaves the phases.
  return ops.unfold(jnp.concatenate(outputs, axis=-1), stride)[:, :out_h, :out_w]
