"""Post-training int8 quantisation of an exported file, calibrated on representative images.

Static int8 (int8 weights per channel and int8 activations from calibrated
ranges): ai-edge-quantizer's `static_wi8_ai8` recipe for LiteRT, ONNX
Runtime's `quantize_static` (QDQ) for ONNX. The keypoint head (its two
convs and the soft-argmax, `graph.float_scopes`) stays float32 in both. If
static quantisation fails, weights-only dynamic-range int8 is used instead,
and the returned description says so.
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
  float_path: str, out_path: str, calibration: Sequence[np.ndarray], scopes: Sequence[str]
) -> str:
  from ai_edge_quantizer import quantizer, recipe, recipe_manager

  log = io.StringIO()
  try:
    manager = recipe_manager.RecipeManager()
    manager.add_static_config(
      regex='.*',
      operation_name=recipe.TFLOperationName.ALL_SUPPORTED,
      activation_num_bits=8,
      weight_num_bits=8,
    )
    manager.add_quantization_config(
      regex=_tflite_scope_regex(scopes),
      operation_name=recipe.TFLOperationName.ALL_SUPPORTED,
      algorithm_key=recipe.AlgorithmName.NO_QUANTIZE,
    )
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
      q = quantizer.Quantizer(float_path, manager.get_quantization_recipe())
      ranges = q.calibrate({'serving_default': [{INPUT: image} for image in calibration]})
      q.quantize(ranges).export_model(out_path, overwrite=True)
    return 'static int8 (ai-edge-quantizer static_wi8_ai8; keypoint head in float32)'
  except Exception as error:  # e.g. an op without an int8 kernel
    reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
      q = quantizer.Quantizer(float_path, recipe.dynamic_wi8_afp32())
      q.quantize().export_model(out_path, overwrite=True)
    return f'dynamic-range int8 weights (static int8 failed: {reason})'


def _quantize_onnx(
  float_path: str, out_path: str, calibration: Sequence[np.ndarray], scopes: Sequence[str]
) -> str:
  import onnx
  from onnxruntime import quantization as q

  model = onnx.load(float_path)

  def in_scope(node) -> bool:
    found = [p.value for p in node.metadata_props if p.key == 'pkg.torch.onnx.name_scopes']
    return bool(found) and any(f"'{scope}'" in found[0] for scope in scopes)

  head = [node.name for node in model.graph.node if in_scope(node)]

  class Reader(q.CalibrationDataReader):
    def __init__(self):
      self.images = iter(calibration)

    def get_next(self):
      image = next(self.images, None)
      return None if image is None else {INPUT: image}

  try:
    q.quantize_static(
      float_path,
      out_path,
      Reader(),
      quant_format=q.QuantFormat.QDQ,
      per_channel=True,
      activation_type=q.QuantType.QInt8,
      weight_type=q.QuantType.QInt8,
      nodes_to_exclude=head,
    )
    return 'static int8 (onnxruntime quantize_static, QDQ, per channel; keypoint head in float32)'
  except Exception as error:
    reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    q.quantize_dynamic(float_path, out_path, weight_type=q.QuantType.QInt8, nodes_to_exclude=head)
    return f'dynamic-range int8 weights (static int8 failed: {reason})'


def quantize(
  fmt: str,
  float_path: str,
  out_path: str,
  calibration: Sequence[np.ndarray],
  float_scopes: Sequence[str],
) -> str:
  """Writes the int8 version of `float_path` to `out_path`; returns how it was quantised.

  Args:
    fmt: 'tflite' or 'onnx'.
    calibration: representative images, each (1, H, W, 3) float32 in [0, 1].
    float_scopes: module paths kept in float (`graph.float_scopes`).
  """
  convert = _quantize_tflite if fmt == 'tflite' else _quantize_onnx
  return convert(
    float_path, out_path, [np.asarray(c, np.float32) for c in calibration], float_scopes
  )
