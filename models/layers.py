"""The parametrised layers every model is built from, in PyTorch's geometry.

Kernels are stored the JAX way (HWIO); `reference` ports map them to PyTorch's
OIHW. Initialisation follows PyTorch's defaults (kaiming-uniform with a=sqrt(5),
i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases), so students
start where the article's students started.

Each layer reports its calls to `record_layer_calls()` when one is active;
`models.summary` uses that to count parameters, mult-adds and pass size per
layer by torchinfo's rules. Outside that context the hook costs one
ContextVar read at trace time and nothing at run time.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models import convolution


@dataclasses.dataclass(frozen=True)
class LayerCall:
  """One call of a leaf layer: the layer and its input and output shapes."""

  layer: nnx.Module
  input_shape: tuple[int, ...]
  output_shape: tuple[int, ...]


_RECORDER: contextvars.ContextVar[list[LayerCall] | None] = contextvars.ContextVar(
  'layer_recorder', default=None
)


@contextlib.contextmanager
def record_layer_calls() -> Iterator[list[LayerCall]]:
  """Collects every leaf-layer call made inside the context, in call order."""
  calls: list[LayerCall] = []
  token = _RECORDER.set(calls)
  try:
    yield calls
  finally:
    _RECORDER.reset(token)


def record_shapes(layer: nnx.Module, input_shape: Sequence[int], output_shape: Sequence[int]):
  """Reports a call of `layer` by shapes: for layers run in another, equivalent form."""
  calls = _RECORDER.get()
  if calls is not None:
    calls.append(LayerCall(layer, tuple(input_shape), tuple(output_shape)))


def _record(layer: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
  record_shapes(layer, x.shape, y.shape)
  return y


_CHUNK = 1 << 16


@jax.jit
def _uniform_chunk(key: jax.Array, index: int) -> jax.Array:
  return jax.random.uniform(jax.random.fold_in(key, index), (_CHUNK,), jnp.float32)


def _torch_uniform(rngs: nnx.Rngs, shape: tuple[int, ...], fan_in: int) -> jax.Array:
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of `shape`, PyTorch's default conv init.

  XLA:CPU compiles a random-number kernel per output shape (~0.4 s each on a
  2-core machine), which made building a model take seconds. Every draw here
  uses one compiled fixed-size kernel instead and is shaped on the host; under
  tracing (e.g. `nnx.eval_shape`) the same arithmetic runs in jnp.
  """
  bound = np.float32(1.0 / math.sqrt(fan_in))
  key = rngs.params()
  size = math.prod(shape)
  chunks = [_uniform_chunk(key, i) for i in range(-(-size // _CHUNK))]
  if isinstance(key, jax.core.Tracer):
    unit = jnp.concatenate(chunks)[:size].reshape(shape)
    return (unit * np.float32(2) - np.float32(1)) * bound
  unit = np.concatenate([np.asarray(chunk) for chunk in chunks])[:size].reshape(shape)
  return jnp.asarray((unit * np.float32(2) - np.float32(1)) * bound)


def _kernel_and_bias(rngs, shape, fan_in, use_bias) -> tuple[nnx.Param, nnx.Param | None]:
  """PyTorch-initialised kernel of `shape` and a bias of its last dimension."""
  kernel = nnx.Param(_torch_uniform(rngs, shape, fan_in))
  bias = nnx.Param(_torch_uniform(rngs, (shape[-1],), fan_in)) if use_bias else None
  return kernel, bias


def _finish(layer: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
  """Adds the layer's bias (if any) and reports the call to the recorder."""
  if layer.bias is not None:
    y = y + layer.bias[...]
  return _record(layer, x, y)


class Conv(nnx.Module):
  """Conv2d with symmetric integer padding (PyTorch's), kernel (k, k, in, out)."""

  def __init__(
    self,
    in_features: int,
    out_features: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    use_bias: bool = True,
    form: str | None = None,
    rngs: nnx.Rngs,
  ):
    """`form`: force a `convolution.conv2d` form (default: chosen by the kernel's shape)."""
    shape = (kernel_size, kernel_size, in_features, out_features)
    fan_in = in_features * kernel_size * kernel_size
    self.kernel, self.bias = _kernel_and_bias(rngs, shape, fan_in, use_bias)
    self.stride = stride
    self.padding = padding
    self.form = form

  def __call__(self, x: jax.Array) -> jax.Array:
    y = convolution.conv2d(
      x, self.kernel[...], stride=self.stride, padding=self.padding, form=self.form
    )
    return _finish(self, x, y)


def conv_after_upsample(conv: Conv, x: jax.Array, factor: int) -> jax.Array:
  """conv(upsample_nearest(x, factor)) for a stride-1 same-size conv, in the faster form.

  From 8x8 inputs up the upsampled map is never built
  (`convolution.conv2d_after_upsample`); the conv is recorded at the shapes
  the written form runs it.
  """
  if conv.stride != 1:
    raise ValueError('conv_after_upsample: the conv must have stride 1.')
  if factor == 1:
    return conv(x)
  y = convolution.conv2d_after_upsample(x, conv.kernel[...], factor=factor, padding=conv.padding)
  if conv.bias is not None:
    y = y + conv.bias[...]
  batch, height, width, channels = x.shape
  record_shapes(conv, (batch, height * factor, width * factor, channels), y.shape)
  return y


def shared_input_convs(convs: Sequence[Conv], x: jax.Array) -> jax.Array:
  """Runs convs of the same geometry on the same input as one conv; outputs side by side.

  Their kernels (and biases) are concatenated along outputs, so the input is
  read once and the matmul underneath is wider. Each conv is still reported
  to the layer recorder at its own output shape.
  """
  first = convs[0]
  geometry = (first.kernel.shape[:3], first.stride, first.padding)
  if any((c.kernel.shape[:3], c.stride, c.padding) != geometry for c in convs):
    raise ValueError(
      'shared_input_convs: the convs differ in kernel size, inputs, stride or padding.'
    )
  kernel = jnp.concatenate([c.kernel[...] for c in convs], axis=-1)
  bias = jnp.concatenate([_bias_or_zeros(c) for c in convs])
  y = convolution.conv2d(x, kernel, stride=first.stride, padding=first.padding) + bias
  for c in convs:
    record_shapes(c, x.shape, (*y.shape[:3], c.kernel.shape[-1]))
  return y


def composed_pointwise(first: Conv, second_kernel: jax.Array, second_bias: jax.Array):
  """(kernel (C, O), bias (O,)) of the 1x1 conv `first` followed by a linear map.

  second(first(x)) = x @ (K1 @ K2) + (b1 @ K2 + b2): both are per-pixel
  linear maps, so one matmul does them.
  """
  if first.kernel.shape[:2] != (1, 1) or first.stride != 1 or first.padding != 0:
    raise ValueError('composed_pointwise: the first conv must be 1x1, stride 1, no padding.')
  first_kernel = first.kernel[0, 0]
  return first_kernel @ second_kernel, _bias_or_zeros(first) @ second_kernel + second_bias


def _bias_or_zeros(conv: Conv) -> jax.Array:
  if conv.bias is not None:
    return conv.bias[...]
  return jnp.zeros((conv.kernel.shape[-1],), conv.kernel.dtype)


def pointwise_pair(first: Conv, second: Conv, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(first(x), second(first(x))) for two 1x1 convs, as one matmul.

  The kernel [K1, K1 @ K2] gives both outputs side by side; each conv is still
  reported to the layer recorder at the shapes it would run at.
  """
  if second.kernel.shape[:2] != (1, 1) or second.stride != 1 or second.padding != 0:
    raise ValueError('pointwise_pair: the second conv must be 1x1, stride 1, no padding.')
  second_bias = _bias_or_zeros(second)
  composed_kernel, composed_bias = composed_pointwise(first, second.kernel[0, 0], second_bias)
  kernel = jnp.concatenate([first.kernel[0, 0], composed_kernel], axis=-1)
  bias = jnp.concatenate([_bias_or_zeros(first), composed_bias])
  y = convolution.conv2d(x, kernel[None, None]) + bias
  width = first.kernel.shape[-1]
  outputs = y[..., :width], y[..., width:]
  record_shapes(first, x.shape, outputs[0].shape)
  record_shapes(second, outputs[0].shape, outputs[1].shape)
  return outputs


class ConvTranspose(nnx.Module):
  """ConvTranspose2d with PyTorch's padding and output_padding.

  kernel[i, j, c_in, c_out] is PyTorch's weight[c_in, c_out, i, j].
  """

  def __init__(
    self,
    in_features: int,
    out_features: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    use_bias: bool = True,
    rngs: nnx.Rngs,
  ):
    # PyTorch takes fan_in from dim 1 of its (in, out, k, k) weight: out * k * k.
    shape = (kernel_size, kernel_size, in_features, out_features)
    fan_in = out_features * kernel_size * kernel_size
    self.kernel, self.bias = _kernel_and_bias(rngs, shape, fan_in, use_bias)
    self.stride = stride
    self.padding = padding
    self.output_padding = output_padding

  def __call__(self, x: jax.Array) -> jax.Array:
    y = convolution.conv_transpose2d(
      x,
      self.kernel[...],
      stride=self.stride,
      padding=self.padding,
      output_padding=self.output_padding,
    )
    return _finish(self, x, y)


class _Depthwise(nnx.Module):
  """Kernel (k, k, C) and bias of a conv with groups = channels (PyTorch fan_in: k * k)."""

  def __init__(
    self,
    features: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    use_bias: bool = True,
    rngs: nnx.Rngs,
  ):
    shape = (kernel_size, kernel_size, features)
    self.kernel, self.bias = _kernel_and_bias(rngs, shape, kernel_size * kernel_size, use_bias)
    self.stride = stride
    self.padding = padding
    self.output_padding = output_padding


class DepthwiseConv(_Depthwise):
  """Conv2d with groups = channels, run as shifted multiply-adds."""

  def __call__(self, x: jax.Array) -> jax.Array:
    y = convolution.depthwise_conv2d(x, self.kernel[...], stride=self.stride, padding=self.padding)
    return _finish(self, x, y)


class DepthwiseConvTranspose(_Depthwise):
  """ConvTranspose2d with groups = channels."""

  def __call__(self, x: jax.Array) -> jax.Array:
    y = convolution.depthwise_conv_transpose2d(
      x,
      self.kernel[...],
      stride=self.stride,
      padding=self.padding,
      output_padding=self.output_padding,
    )
    return _finish(self, x, y)


class DepthwiseSeparable(nnx.Module):
  """A depthwise k x k conv (transposed if asked) followed by a pointwise 1x1 conv."""

  def __init__(
    self,
    in_features: int,
    out_features: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    transposed: bool = False,
    rngs: nnx.Rngs,
  ):
    if transposed:
      self.depthwise = DepthwiseConvTranspose(
        in_features,
        kernel_size,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        rngs=rngs,
      )
    else:
      self.depthwise = DepthwiseConv(
        in_features, kernel_size, stride=stride, padding=padding, rngs=rngs
      )
    self.pointwise = Conv(in_features, out_features, 1, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.pointwise(self.depthwise(x))


def conv(
  in_features: int,
  out_features: int,
  kernel_size: int,
  *,
  stride: int = 1,
  padding: int = 0,
  separable: bool = False,
  rngs: nnx.Rngs,
) -> Conv | DepthwiseSeparable:
  """A standard conv, or its depthwise separable counterpart when it is not 1x1."""
  if separable and kernel_size > 1:
    return DepthwiseSeparable(
      in_features, out_features, kernel_size, stride=stride, padding=padding, rngs=rngs
    )
  return Conv(in_features, out_features, kernel_size, stride=stride, padding=padding, rngs=rngs)


def conv_transpose(
  in_features: int,
  out_features: int,
  kernel_size: int,
  *,
  stride: int = 1,
  padding: int = 0,
  output_padding: int = 0,
  separable: bool = False,
  rngs: nnx.Rngs,
) -> ConvTranspose | DepthwiseSeparable:
  """A transposed conv, or a depthwise transposed conv plus a pointwise conv."""
  if separable:
    return DepthwiseSeparable(
      in_features,
      out_features,
      kernel_size,
      stride=stride,
      padding=padding,
      output_padding=output_padding,
      transposed=True,
      rngs=rngs,
    )
  return ConvTranspose(
    in_features,
    out_features,
    kernel_size,
    stride=stride,
    padding=padding,
    output_padding=output_padding,
    rngs=rngs,
  )


class BatchNorm(nnx.BatchNorm):
  """BatchNorm2d with PyTorch's defaults (eps 1e-5, momentum 0.1 = Flax's 0.9)."""

  def __init__(self, features: int, *, affine: bool = True, rngs: nnx.Rngs):
    super().__init__(
      features, momentum=0.9, epsilon=1e-5, use_scale=affine, use_bias=affine, rngs=rngs
    )

  def __call__(self, x: jax.Array, **kwargs) -> jax.Array:
    return _record(self, x, super().__call__(x, **kwargs))


def batch_norms(model: nnx.Module) -> list[tuple[str, BatchNorm]]:
  """Every BatchNorm of `model`, with its path ('decoder/1/fire/squeeze/norm')."""
  return [
    ('/'.join(map(str, path)), module)
    for path, module in nnx.iter_graph(model)
    if isinstance(module, BatchNorm)
  ]
