"""Post-training int8 quantisation of an exported file, calibrated on representative images.

Three levels (`LEVELS`), each calibrated on representative images where it
needs ranges: static int8 (int8 weights per channel and int8 activations:
ai-edge-quantizer's `static_wi8_ai8` for LiteRT, ONNX Runtime's
`quantize_static` (QDQ) for ONNX); the same with 16-bit activations; and
dynamic-range int8 weights with float activations. The keypoint head (its
two convs and the soft-argmax, `graph.float_scopes`) stays float32 at every
level: its softmax at temperature 0.1 turns small errors in the heatmaps
into keypoint moves. The exporter picks the level (`exporter.export`).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Sequence

import numpy as np

from torch_twins.export.graph import INPUT


def _tflite_scope_regex(scopes: Sequence[str]) -> str:
  """LiteRT tensor names spell a module path a.b.c as '..._a/..._b/..._c;N'."""
  paths = ['/[^/;]*_'.join(re.escape(part) for part in scope.split('.')) for scope in scopes]
  return '.*(' + '|'.join(f'_{path}(;|/|$)' for path in paths) + '|serving_default_.*_output).*'


def _quantize_tflite(
  float_path: str,
  out_path: str,
  calibration: Sequence[np.ndarray],
  scopes: Sequence[str],
  level: str,
) -> str:
  from ai_edge_quantizer import quantizer, recipe, recipe_manager

  log = io.StringIO()
  with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
    if level == 'weights_only':
      q = quantizer.Quantizer(float_path, recipe.dynamic_wi8_afp32())
      q.quantize().export_model(out_path, overwrite=True)
      return 'dynamic-range int8 weights (ai-edge-quantizer dynamic_wi8_afp32; float activations)'
    bits = 16 if level == 'int16_activations' else 8
    manager = recipe_manager.RecipeManager()
    manager.add_static_config(
      regex='.*',
      operation_name=recipe.TFLOperationName.ALL_SUPPORTED,
      activation_num_bits=bits,
      weight_num_bits=8,
    )
    manager.add_quantization_config(
      regex=_tflite_scope_regex(scopes),
      operation_name=recipe.TFLOperationName.ALL_SUPPORTED,
      algorithm_key=recipe.AlgorithmName.NO_QUANTIZE,
    )
    q = quantizer.Quantizer(float_path, manager.get_quantization_recipe())
    ranges = q.calibrate({'serving_default': [{INPUT: image} for image in calibration]})
    q.quantize(ranges).export_model(out_path, overwrite=True)
  head = 'keypoint head in float32'
  if bits == 8:
    return f'static int8 (ai-edge-quantizer static_wi8_ai8; {head})'
  return f'static int8 weights, int16 activations (ai-edge-quantizer static_wi8_ai16; {head})'


def _quantize_onnx(
  float_path: str,
  out_path: str,
  calibration: Sequence[np.ndarray],
  scopes: Sequence[str],
  level: str,
) -> str:
  import onnx
  from onnxruntime import quantization as q

  model = onnx.load(float_path)

  def in_scope(node) -> bool:
    found = [p.value for p in node.metadata_props if p.key == 'pkg.torch.onnx.name_scopes']
    return bool(found) and any(f"'{scope}'" in found[0] for scope in scopes)

  head = [node.name for node in model.graph.node if in_scope(node)]
  if level == 'weights_only':
    q.quantize_dynamic(float_path, out_path, weight_type=q.QuantType.QInt8, nodes_to_exclude=head)
    return 'dynamic-range int8 weights (onnxruntime quantize_dynamic; keypoint head in float32)'

  class Reader(q.CalibrationDataReader):
    def __init__(self):
      self.images = iter(calibration)

    def get_next(self):
      image = next(self.images, None)
      return None if image is None else {INPUT: image}

  bits = 16 if level == 'int16_activations' else 8
  q.quantize_static(
    float_path,
    out_path,
    Reader(),
    quant_format=q.QuantFormat.QDQ,
    per_channel=True,
    activation_type=q.QuantType.QInt16 if bits == 16 else q.QuantType.QInt8,
    weight_type=q.QuantType.QInt8,
    nodes_to_exclude=head,
  )
  how = 'onnxruntime quantize_static, QDQ, per channel; keypoint head in float32'
  if bits == 8:
    return f'static int8 ({how})'
  return f'static int8 weights, int16 activations ({how})'


# From the smallest, fastest file to the most faithful: the exporter takes the first whose
# keypoints stay within its tolerance of the fp32 file's.
LEVELS = ('int8', 'int16_activations', 'weights_only')


def quantize(
  fmt: str,
  float_path: str,
  out_path: str,
  calibration: Sequence[np.ndarray],
  float_scopes: Sequence[str],
  *,
  level: str = 'int8',
) -> str:
  """Writes the quantised version of `float_path` to `out_path`; returns how it was quantised.

  Args:
    fmt: 'tflite' or 'onnx'.
    calibration: representative images, each (1, H, W, 3) float32 in [0, 1].
    float_scopes: module paths kept in float (`graph.float_scopes`).
    level: one of LEVELS: static int8 weights and activations; static int8
      weights with 16-bit activations (for models whose activation ranges 8
      bits cannot hold); or int8 weights alone, activations in float.

  Raises:
    Exception: whatever the quantiser raises (e.g. an op without a kernel at that level).
  """
  convert = _quantize_tflite if fmt == 'tflite' else _quantize_onnx
  images = [np.asarray(c, np.float32) for c in calibration]
  return convert(float_path, out_path, images, float_scopes, level)
