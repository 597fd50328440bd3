"""Profiles of an inference call: XLA's kernels and ONNX Runtime's nodes, grouped by kind."""

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bench import profiles
from models import compiler
from tests import commands
from torch_twins.export import formats


@pytest.mark.parametrize(
  'name, kind, family',
  [
    ('conv_general_dilated.40', 'conv & matmul', 'conv_general_dilated'),
    ('dot.3', 'conv & matmul', 'dot'),
    ('convert_bitcast_fusion', 'elementwise & other', 'convert_bitcast_fusion'),
    ('ynn_fusion', 'conv & matmul', 'ynn_fusion'),
    ('concatenate_bitcast_fusion.2', 'concatenate', 'concatenate_bitcast_fusion'),
    ('slice_maximum_fusion.1', 'max pool', 'slice_maximum_fusion'),
    ('wrapped_reduce-window', 'max pool', 'wrapped_reduce-window'),
    ('pad_slice_fusion.7', 'layout', 'pad_slice_fusion'),
    ('add_maximum_fusion.11', 'elementwise & other', 'add_maximum_fusion'),
  ],
)
def test_xla_kernel_names_are_grouped(name, kind, family):
  assert profiles.xla_kind(name) == kind
  assert profiles.xla_family(name) == family


def test_xla_profile_counts_each_kernel_once_per_call():
  kernel = jnp.ones((3, 3, 4, 8), jnp.float32)

  def forward(x):
    y = jax.lax.conv_general_dilated(
      x, kernel, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')
    )
    return jnp.concatenate([jax.nn.relu(y), y * 2.0], axis=-1)

  x = jnp.ones((1, 8, 8, 4), jnp.float32)
  compiled = compiler.jit(forward).lower(x).compile()
  call = lambda: jax.block_until_ready(compiled(x))  # noqa: E731
  call()
  breakdown = profiles.profile_xla(call, calls=5)
  assert breakdown.families['conv_general_dilated'][0] == 1.0  # one convolution per call
  assert breakdown.kinds['conv & matmul'][0] == 1.0
  assert breakdown.busy_us > 0 and breakdown.wall_us > 0


def _conv_concat_onnx(path):
  """image (1, 4, 8, 8) -> Conv 3x3 -> Concat with itself along channels."""
  weight = helper.make_tensor('w', TensorProto.FLOAT, [8, 4, 3, 3], np.ones(288, np.float32))
  graph = helper.make_graph(
    [
      helper.make_node('Conv', ['image', 'w'], ['y'], pads=[1, 1, 1, 1]),
      helper.make_node('Concat', ['y', 'y'], ['out'], axis=1),
    ],
    'conv_concat',
    [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 4, 8, 8])],
    [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, 16, 8, 8])],
    [weight],
  )
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
  model.ir_version = 8
  onnx.save(model, path)


def test_ort_profile_drops_warmup_and_counts_nodes_per_call(tmp_path):
  import onnxruntime as ort

  path = str(tmp_path / 'm.onnx')
  _conv_concat_onnx(path)
  options = ort.SessionOptions()
  options.enable_profiling = True
  options.profile_file_prefix = str(tmp_path / 'prof')
  session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
  image = np.ones((1, 4, 8, 8), np.float32)
  for _ in range(7):  # 3 warm-up, 4 profiled
    session.run(None, {'image': image})
  trace = session.end_profiling()
  breakdown = profiles.ort_breakdown(trace, calls=4)
  assert breakdown.kinds['concatenate'][0] == 1.0
  assert breakdown.kinds['conv & matmul'][0] == 1.0
  assert 0 < breakdown.busy_us <= breakdown.wall_us
  with pytest.raises(ValueError, match='7 runs profiled, expected at least 8'):
    profiles.ort_breakdown(trace, calls=8)


def test_onnx_runtime_wrapper_profiles_on_request(tmp_path):
  path = str(tmp_path / 'm.onnx')
  _conv_concat_onnx(path)
  runtime = formats.OnnxRuntime(path, 1, profile=str(tmp_path / 'prof'))
  runtime.session.run(None, {'image': np.ones((1, 4, 8, 8), np.float32)})
  breakdown = profiles.ort_breakdown(runtime.end_profiling(), calls=1)
  assert breakdown.families['Conv'][0] == breakdown.families['Concat'][0] == 1.0
  assert set(breakdown.families) - {'Conv', 'Concat'} <= {'ReorderInput', 'ReorderOutput'}


def test_table_sets_frameworks_side_by_side():
  one = profiles.Breakdown(10.0, {'conv & matmul': (2.0, 6.0)}, {'dot': (2.0, 6.0)})
  two = profiles.Breakdown(20.0, {'concatenate': (1.0, 3.0)}, {'Concat': (1.0, 3.0)})
  text = profiles.table({'XLA': one, 'ORT': two})
  assert '| conv & matmul | 2 | 6 | 0 | 0 |' in text
  assert '| all kernels | 2 | 6 | 1 | 3 |' in text
  assert '| call (wall) | - | 10 | - | 20 |' in text
  assert 'x dot' in profiles.slowest(one)


def test_profile_command_rejects_a_bad_model():
  line = commands.last_error_line(commands.run('-m', 'tools.profile_model', '--model=resnet'))
  assert line.startswith('error: unknown --model resnet; valid:')


@pytest.mark.slow
def test_profile_command_sets_xla_beside_onnx_runtime():
  result = commands.run('-m', 'tools.profile_model', '--model=squeeze_encdec', '--calls=5')
  assert result.returncode == 0, result.stderr[-3000:]
  assert '| kind | XLA kernels | XLA (us) | ORT kernels | ORT (us) |' in result.stdout
  assert 'x conv_general_dilated' in result.stdout and 'x Conv' in result.stdout
  assert 'CONV_2D' in result.stdout.splitlines()[-1]  # the .tflite's operators
