"""Converting a `Deployable` to .tflite or .onnx, and running the files with their own runtimes.

LiteRT: litert-torch (torch.export, then the LiteRT converter; no
TensorFlow), run by `ai_edge_litert`'s Interpreter with its default XNNPACK
delegate. ONNX: torch.onnx's dynamo exporter with the weights inside the
file, run by ONNX Runtime with every graph optimisation. Both runtimes
return float32 outputs by name; an int8 file's quantised input and outputs
are converted with the scales the file holds.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

import numpy as np
import torch

from torch_twins.export.graph import INPUT, OUTPUTS

FORMATS = ('tflite', 'onnx')


class ExportError(ValueError):
  """A model that does not convert, or a file that does not compute what the model does."""


def _first_line(error: Exception) -> str:
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[0][:300] if lines else type(error).__name__


def _failing_op(error: Exception) -> str:
  """The operation a converter names in its message ('mhlo.convolution', 'aten::...')."""
  text = str(error)
  patterns = (r"operation '([^']+)'", r'(aten[.:]{1,2}[\w.]+)', r"op '([^']+)'", r"'([\w.]+)' op")
  for pattern in patterns:
    found = re.search(pattern, text)
    if found:
      return found.group(1)
  return 'unknown op'


@contextlib.contextmanager
def _jax_x64_for_litert():
  """litert-torch lowers some ops through JAX with 64-bit integers, and turns JAX's 64-bit
  mode on for the whole process when imported. On while it converts; as it was afterwards
  (left on, every later Flax computation in the process would run in float64)."""
  import jax

  enabled = jax.config.jax_enable_x64
  try:
    jax.config.update('jax_enable_x64', True)
    yield
  finally:
    jax.config.update('jax_enable_x64', enabled)


def convert(
  module: torch.nn.Module, example: np.ndarray | dict[str, np.ndarray], fmt: str, path: str
) -> None:
  """Writes `module` traced at `example`'s shape (static) to `path` in format `fmt`.

  `example`: the image, or for modules with several inputs (FOMM's generator,
  `graph.GeneratorDeployable`) a dict of them by name; the outputs are the
  module's `OUTPUTS` (the keypoints for a `Deployable`).

  Raises:
    ExportError: the converter failed; the message names the operation.
  """
  examples = example if isinstance(example, dict) else {INPUT: example}
  kwargs = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in examples.items()}
  outputs = list(getattr(module, 'OUTPUTS', OUTPUTS))
  log = io.StringIO()
  try:
    with contextlib.redirect_stdout(log), torch.no_grad():
      if fmt == 'tflite':
        with _jax_x64_for_litert():
          import litert_torch

          litert_torch.convert(module, sample_kwargs=kwargs).export(path)
      elif fmt == 'onnx':
        torch.onnx.export(
          module,
          (),
          path,
          kwargs=kwargs,
          input_names=list(kwargs),
          output_names=outputs,
          dynamo=True,
          external_data=False,
          verbose=False,
        )
      else:
        raise ExportError(f'unknown format {fmt!r}; use one of {", ".join(FORMATS)}.')
  except ExportError:
    raise
  except Exception as error:
    raise ExportError(
      f'{fmt} conversion failed at {_failing_op(error)}: {_first_line(error)}'
    ) from error


class LiteRTRuntime:
  """A .tflite file in `ai_edge_litert`'s Interpreter (XNNPACK), `threads` threads."""

  def __init__(self, path: str, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter

    self.interpreter = Interpreter(model_path=path, num_threads=threads)
    self.runner = self.interpreter.get_signature_runner()
    inputs = self.runner.get_input_details()
    self.input = inputs.get(INPUT) or next(iter(inputs.values()))  # the generator: `source`
    self.outputs = self.runner.get_output_details()

  def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
    image = np.asarray(image, np.float32)
    if self.input['dtype'] != np.float32:  # an int8 file takes quantised pixels
      scale, zero = self.input['quantization']
      info = np.iinfo(self.input['dtype'])
      image = np.clip(np.round(image / scale + zero), info.min, info.max)
      image = image.astype(self.input['dtype'])
    out = self.runner(**{INPUT: image})
    return {name: _dequantize(out[name], self.outputs[name]['quantization']) for name in OUTPUTS}

  def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output by name, for a float32 file with several named inputs (FOMM's generator)."""
    out = self.runner(**{k: np.asarray(v, np.float32) for k, v in inputs.items()})
    return {name: np.asarray(value) for name, value in out.items()}


def _dequantize(value: np.ndarray, quantization: tuple[float, int]) -> np.ndarray:
  if value.dtype == np.float32:
    return value
  scale, zero = quantization
  return (value.astype(np.float32) - zero) * scale


class OnnxRuntime:
  """A .onnx file in an ONNX Runtime CPU session: every graph optimisation, `threads` threads."""

  def __init__(self, path: str, threads: int | None = None, *, profile: str | None = None):
    """`profile`: a file prefix for ONNX Runtime's per-node profile (`end_profiling`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if profile:
      options.enable_profiling = True
      options.profile_file_prefix = profile
    if threads:
      options.intra_op_num_threads = threads
      options.inter_op_num_threads = 1
    self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])

  def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
    values = self.session.run(list(OUTPUTS), {INPUT: np.asarray(image, np.float32)})
    return dict(zip(OUTPUTS, values, strict=True))

  def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output by name, for a file with several named inputs (FOMM's generator)."""
    names = [o.name for o in self.session.get_outputs()]
    feed = {k: np.asarray(v, np.float32) for k, v in inputs.items()}
    return dict(zip(names, self.session.run(names, feed), strict=True))

  def end_profiling(self) -> str:
    """Stops profiling; the path of the JSON trace written so far."""
    return self.session.end_profiling()


def load_runtime(path: str, threads: int | None = None) -> LiteRTRuntime | OnnxRuntime:
  """Runs the exported file at `path` (by its extension) with its own runtime."""
  extension = os.path.splitext(path)[1].lstrip('.')
  if extension == 'tflite':
    return LiteRTRuntime(path, threads)
  if extension == 'onnx':
    return OnnxRuntime(path, threads)
  raise ExportError(f'{path}: not a .tflite or .onnx file.')
