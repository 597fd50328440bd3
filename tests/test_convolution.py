"""Convolutions in their fast forms against lax and PyTorch's definitions: value and gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

import models
from models import compiler, convolution, layers

_DN = ('NHWC', 'HWIO', 'NHWC')


def _random(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _assert_same_value_and_gradient(fast, slow, *arrays, rtol=1e-4):
  """fast(*arrays) == slow(*arrays), and so are the gradients of a random projection.

  Each side jitted, as the models run them: one compilation each instead of one per
  operation (a conv form is dozens of slices and pads; 2 to 3 times less CPU).
  """
  expected = jax.jit(slow)(*arrays)
  np.testing.assert_allclose(jax.jit(fast)(*arrays), expected, rtol=rtol, atol=rtol)
  weights = jnp.asarray(_random(expected.shape, seed=9))
  argnums = tuple(range(len(arrays)))
  fast_grads = jax.jit(jax.grad(lambda *a: jnp.sum(weights * fast(*a)), argnums))(*arrays)
  slow_grads = jax.jit(jax.grad(lambda *a: jnp.sum(weights * slow(*a)), argnums))(*arrays)
  for fast_grad, slow_grad in zip(fast_grads, slow_grads, strict=True):
    np.testing.assert_allclose(fast_grad, slow_grad, rtol=10 * rtol, atol=10 * rtol)


def _grouped_conv(x, kernel, stride, padding):
  """The slow reference: lax conv with one group per channel."""
  channels = kernel.shape[-1]
  return lax.conv_general_dilated(
    x,
    kernel[:, :, None, :],
    (stride, stride),
    (padding, padding),
    dimension_numbers=_DN,
    feature_group_count=channels,
    precision=lax.Precision.HIGHEST,
  )


@pytest.mark.parametrize(
  'size,kernel_size,stride,padding',
  [(8, 3, 1, (1, 1)), (9, 3, 2, (1, 1)), (8, 4, 2, (1, 2)), (7, 1, 1, (0, 0)), (10, 5, 3, (2, 2))],
)
def test_depthwise_conv_equals_grouped_conv_in_value_and_gradient(
  size, kernel_size, stride, padding
):
  x = jnp.asarray(_random((2, size, size + 1, 5)))
  kernel = jnp.asarray(_random((kernel_size, kernel_size, 5), seed=1))

  def depthwise(x, k):
    return convolution.depthwise_conv2d(x, k, stride=stride, padding=padding)

  def grouped(x, k):
    return _grouped_conv(x, k, stride, padding)

  fast = jax.jit(depthwise)(x, kernel)  # jitted, as the models run it (one compilation)
  slow = jax.jit(grouped)(x, kernel)
  np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)

  weights = jnp.asarray(_random(slow.shape, seed=2))

  def loss(f):
    return lambda x, k: jnp.sum(weights * f(x, k))

  fast_grads = jax.jit(jax.grad(loss(depthwise), (0, 1)))(x, kernel)
  slow_grads = jax.jit(jax.grad(loss(grouped), (0, 1)))(x, kernel)
  for fast_grad, slow_grad in zip(fast_grads, slow_grads, strict=True):
    np.testing.assert_allclose(fast_grad, slow_grad, rtol=1e-4, atol=1e-4)


def _conv_transpose_reference(x, weight, stride, padding, output_padding):
  """PyTorch ConvTranspose2d by its definition: scatter each input pixel.

  weight is PyTorch's (in, out, k, k); x is NHWC.
  """
  batch, height, width, _ = x.shape
  _, out_features, k, _ = weight.shape
  full_h = (height - 1) * stride + k + output_padding
  full_w = (width - 1) * stride + k + output_padding
  y = np.zeros((batch, full_h, full_w, out_features), np.float64)
  for i in range(height):
    for j in range(width):
      contribution = np.einsum('bc,cokl->bklo', x[:, i, j, :], weight)
      y[:, i * stride : i * stride + k, j * stride : j * stride + k, :] += contribution
  return y[:, padding : full_h - padding, padding : full_w - padding, :]


# (stride, padding, output_padding, kernel size) of PyTorch ConvTranspose2d.
_TRANSPOSED_GEOMETRIES = [
  (1, 1, 0, 3),
  (1, 0, 0, 3),
  (1, 2, 0, 5),
  (2, 1, 1, 3),
  (2, 1, 0, 4),
  (2, 0, 0, 2),
  (3, 1, 2, 5),
  (2, 0, 1, 3),
  (3, 0, 0, 2),
]


@pytest.mark.parametrize('stride,padding,output_padding,kernel_size', _TRANSPOSED_GEOMETRIES)
def test_conv_transpose_layer_matches_pytorch_definition(
  stride, padding, output_padding, kernel_size
):
  layer = layers.ConvTranspose(
    4,
    6,
    kernel_size,
    stride=stride,
    padding=padding,
    output_padding=output_padding,
    rngs=nnx.Rngs(0),
  )
  x = _random((2, 5, 6, 4))
  torch_weight = np.asarray(layer.kernel[...]).transpose(2, 3, 0, 1)  # -> (in, out, k, k)
  expected = _conv_transpose_reference(x, torch_weight, stride, padding, output_padding)
  expected += np.asarray(layer.bias[...])
  np.testing.assert_allclose(layer(jnp.asarray(x)), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('stride,padding,output_padding', [(1, 1, 0), (2, 1, 1), (2, 1, 0)])
def test_depthwise_conv_transpose_matches_per_channel_definition(stride, padding, output_padding):
  x = _random((2, 4, 5, 3))
  kernel = _random((3, 3, 3), seed=3)
  got = convolution.depthwise_conv_transpose2d(
    jnp.asarray(x),
    jnp.asarray(kernel),
    stride=stride,
    padding=padding,
    output_padding=output_padding,
  )
  # A depthwise transposed conv is a full one whose weight is diagonal in channels.
  weight = np.zeros((3, 3, 3, 3), np.float32)
  for c in range(3):
    weight[c, c] = kernel[:, :, c]
  expected = _conv_transpose_reference(x, weight, stride, padding, output_padding)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('form', ['direct', 'im2col', 'row_shift', 'out_shift'])
@pytest.mark.parametrize(
  'size,in_features,kernel_size,stride,padding',
  [(8, 5, 3, 1, 1), (9, 4, 3, 2, 1), (16, 3, 7, 2, 3), (12, 6, 7, 1, 0), (10, 3, 5, 3, (1, 2))],
)
def test_every_conv_form_equals_lax_conv(form, size, in_features, kernel_size, stride, padding):
  x = jnp.asarray(_random((2, size, size + 1, in_features)))
  kernel = jnp.asarray(_random((kernel_size, kernel_size, in_features, 6), seed=1))
  pads = (padding, padding) if isinstance(padding, int) else padding

  def slow(x, k):
    return lax.conv_general_dilated(
      x, k, (stride, stride), (pads, pads), dimension_numbers=_DN, precision='highest'
    )

  def fast(x, k):
    return convolution.conv2d(x, k, stride=stride, padding=padding, form=form)

  with jax.default_matmul_precision('highest'):
    _assert_same_value_and_gradient(fast, slow, x, kernel)


def test_conv_form_rules():
  assert convolution.conv_form((7, 7, 3, 8)) == 'row_shift'  # wide kernel, few channels
  assert convolution.conv_form((7, 7, 35, 50)) == 'direct'  # the teacher's merged heads
  assert convolution.conv_form((3, 3, 3, 64)) == 'im2col'  # RGB stem: reduction 27
  assert convolution.conv_form((3, 3, 64, 128)) == 'direct'
  assert convolution.conv_form((1, 1, 3, 64)) == 'direct'


@pytest.mark.parametrize('form', ['upsample', 'subpixel'])
@pytest.mark.parametrize(
  'factor,kernel_size,size', [(2, 3, 8), (2, 3, 3), (2, 5, 6), (3, 3, 4), (2, 1, 5), (4, 3, 3)]
)
def test_conv_after_upsample_equals_conv_of_the_upsampled_map(form, factor, kernel_size, size):
  """FOMM's up block: nearest upsampling then a same-size conv, with or without the map."""
  x = jnp.asarray(_random((2, size, size + 1, 4)))
  kernel = jnp.asarray(_random((kernel_size, kernel_size, 4, 6), seed=1))
  padding = kernel_size // 2

  def slow(x, k):
    up = jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)
    pads = ((padding, padding),) * 2
    return lax.conv_general_dilated(up, k, (1, 1), pads, dimension_numbers=_DN, precision='highest')

  def fast(x, k):
    return convolution.conv2d_after_upsample(x, k, factor=factor, padding=padding, form=form)

  with jax.default_matmul_precision('highest'):
    _assert_same_value_and_gradient(fast, slow, x, kernel)


def test_conv_after_upsample_form_rule_checks_and_record():
  assert convolution.upsampled_conv_form((1, 4, 4, 1024)) == 'upsample'  # FOMM's 4x4 block
  assert convolution.upsampled_conv_form((1, 8, 8, 512)) == 'subpixel'
  with pytest.raises(ValueError, match='same-size conv'):
    convolution.conv2d_after_upsample(
      jnp.zeros((1, 8, 8, 4)), jnp.zeros((3, 3, 4, 5)), factor=2, padding=0
    )
  conv = layers.Conv(4, 5, 3, padding=1, rngs=nnx.Rngs(0))
  x = jnp.asarray(_random((1, 8, 8, 4)))
  with layers.record_layer_calls() as calls:
    got = layers.conv_after_upsample(conv, x, 2)
  assert [(c.layer, c.input_shape, c.output_shape) for c in calls] == [
    (conv, (1, 16, 16, 4), (1, 16, 16, 5))
  ]
  up = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  np.testing.assert_allclose(got, conv(up), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='stride 1'):
    layers.conv_after_upsample(layers.Conv(4, 5, 3, stride=2, padding=1, rngs=nnx.Rngs(0)), x, 2)


def test_conv_rejects_mismatched_channels():
  with pytest.raises(ValueError, match='input has 4 channels, kernel expects 3'):
    convolution.conv2d(jnp.zeros((1, 8, 8, 4)), jnp.zeros((3, 3, 3, 5)))


@pytest.mark.parametrize('stride,padding,output_padding,kernel_size', _TRANSPOSED_GEOMETRIES)
def test_conv_transpose_matches_pytorch_definition_and_lax_gradient(
  stride, padding, output_padding, kernel_size
):
  x = _random((2, 5, 6, 4))
  kernel = _random((kernel_size, kernel_size, 4, 6), seed=1)
  expected = _conv_transpose_reference(
    x, kernel.transpose(2, 3, 0, 1), stride, padding, output_padding
  )
  got = convolution.conv_transpose2d(
    jnp.asarray(x), jnp.asarray(kernel), stride=stride, padding=padding,
    output_padding=output_padding,
  )  # fmt: skip
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)

  # Gradients against the zero-inserted lax form of the same conv.
  before = kernel_size - 1 - padding

  def slow(x, k):
    return lax.conv_general_dilated(
      x, k[::-1, ::-1], (1, 1), ((before, before + output_padding),) * 2,
      lhs_dilation=(stride, stride), dimension_numbers=_DN, precision='highest',
    )  # fmt: skip

  def fast(x, k):
    return convolution.conv_transpose2d(
      x, k, stride=stride, padding=padding, output_padding=output_padding
    )

  with jax.default_matmul_precision('highest'):
    _assert_same_value_and_gradient(fast, slow, jnp.asarray(x), jnp.asarray(kernel))


def test_transposed_geometry_is_checked():
  with pytest.raises(ValueError, match='output_padding 2 must be smaller than stride 2'):
    convolution.conv_transpose2d(
      jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 3, 3)), stride=2, output_padding=2
    )


def test_shared_input_convs_equal_separate_convs_and_are_each_recorded():
  rngs = nnx.Rngs(0)
  a = layers.Conv(5, 3, 3, padding=1, rngs=rngs)
  b = layers.Conv(5, 7, 3, padding=1, rngs=rngs)
  x = jnp.asarray(_random((2, 8, 8, 5)))
  with layers.record_layer_calls() as calls:
    got = layers.shared_input_convs([a, b], x)
  got_a, got_b = got[..., :3], got[..., 3:]
  assert [call.layer for call in calls] == [a, b]
  assert [call.output_shape for call in calls] == [(2, 8, 8, 3), (2, 8, 8, 7)]
  np.testing.assert_allclose(got_a, a(x), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got_b, b(x), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='differ in kernel size'):
    layers.shared_input_convs([a, layers.Conv(5, 3, 1, rngs=rngs)], x)


def test_pointwise_pair_equals_the_two_convs_and_records_both():
  rngs = nnx.Rngs(0)
  first, second = layers.Conv(5, 6, 1, rngs=rngs), layers.Conv(6, 4, 1, rngs=rngs)
  x = jnp.asarray(_random((2, 8, 8, 5)))
  with layers.record_layer_calls() as calls:
    got_first, got_second = layers.pointwise_pair(first, second, x)
  assert [(c.layer, c.input_shape, c.output_shape) for c in calls] == [
    (first, (2, 8, 8, 5), (2, 8, 8, 6)),
    (second, (2, 8, 8, 6), (2, 8, 8, 4)),
  ]
  np.testing.assert_allclose(got_first, first(x), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got_second, second(first(x)), rtol=1e-5, atol=1e-5)
  unbiased = layers.Conv(6, 4, 1, use_bias=False, rngs=rngs)
  np.testing.assert_allclose(
    layers.pointwise_pair(first, unbiased, x)[1], unbiased(first(x)), rtol=1e-5, atol=1e-5
  )
  with pytest.raises(ValueError, match='second conv must be 1x1'):
    layers.pointwise_pair(first, layers.Conv(6, 4, 3, padding=1, rngs=rngs), x)
  with pytest.raises(ValueError, match='first conv must be 1x1'):
    layers.pointwise_pair(layers.Conv(5, 6, 3, padding=1, rngs=rngs), second, x)


def test_inference_function_equals_the_model_and_checks_its_input():
  model = models.create_model('l3unet', rngs=nnx.Rngs(0))
  model.eval()
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(1, 64, 64, 3)).astype(np.float32))
  expected = model(x)
  infer = compiler.InferenceFunction(model, x.shape)
  got = infer(x)
  assert set(got) == {'kp', 'jacobian'}
  np.testing.assert_allclose(got['kp'], expected['kp'], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got['jacobian'], expected['jacobian'], rtol=1e-5, atol=1e-5)
  defaults = compiler.InferenceFunction(model, x.shape, xla_defaults=True)
  np.testing.assert_allclose(defaults(x)['kp'], expected['kp'], rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match=r'compiled for images of shape \(1, 64, 64, 3\)'):
    infer(jnp.zeros((2, 64, 64, 3)))


def test_project_options_route_convolutions_to_xla_and_keep_dots_on_ynnpack():
  """The one XLA option models.compiler sets: convolutions leave YNNPACK."""
  x, k = jnp.zeros((1, 16, 16, 32)), jnp.zeros((3, 3, 32, 16))

  def fn(x, k):
    y = lax.conv_general_dilated(x, k, (1, 1), 'SAME', dimension_numbers=_DN)
    return y.reshape(256, 16) @ k.reshape(288, 16).T

  def entry(compiled_text):
    return compiled_text[compiled_text.index('ENTRY') :]

  defaults = entry(jax.jit(fn).lower(x, k).compile().as_text())
  ours = entry(compiler.jit(fn).lower(x, k).compile().as_text())
  assert compiler.compiler_options() == compiler.CPU_OPTIONS
  assert ' convolution(' not in defaults  # jaxlib's default: YNNPACK takes the conv
  assert ' convolution(' in ours and '__ynn_fusion' in ours
