"""The deployment runtimes timed beside JAX: ONNX Runtime and LiteRT (XNNPACK) on the same weights.

Each model is exported once per benchmark (`torch_twins.export`: the twin
with the Flax model's weights, NHWC input) into a folder the thread-count
workers share, then loaded with as many threads as the worker has cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from flax import nnx

from torch_twins.export import formats, graph

RUNTIMES = {'onnxruntime': 'onnx', 'litert': 'tflite'}


def exported(
  model: nnx.Module,
  name: str,
  options: Mapping[str, Any],
  images: np.ndarray,
  *,
  threads: int,
  folder: str,
  runtimes: tuple[str, ...] = tuple(RUNTIMES),
) -> tuple[dict[str, Callable[[], Any]], dict[str, np.ndarray], dict[str, str]]:
  """(timed calls, their keypoints on `images`, runtimes that failed -> why) for `runtimes`."""
  calls, kp, failed = {}, {}, {}
  module = None
  for runtime in runtimes:
    fmt = RUNTIMES[runtime]
    path = os.path.join(folder, f'{name}_b{len(images)}.{fmt}')
    try:
      if not os.path.exists(path):  # the other thread counts' worker may have written it
        module = module or graph.deployable(model, name, options)
        formats.convert(module, images, fmt, path + '.partial')
        os.replace(path + '.partial', path)
      run = formats.load_runtime(path, threads)
    except formats.ExportError as error:
      failed[runtime] = str(error)
      continue
    kp[runtime] = run(images)['kp']
    calls[runtime] = lambda run=run: run(images)
  return calls, kp, failed
