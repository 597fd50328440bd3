"""Where one model's inference call spends its time, in XLA and in ONNX Runtime.

  python -m tools.profile_model --model=squeeze_encdec --threads=1
  python -m tools.profile_model --model=edgesegnet --threads=2 --calls=300

Pins the process to --threads cores, compiles the model as the benchmark
does (`models.compiler.InferenceFunction`), traces --calls calls with
`jax.profiler`, exports the same weights to ONNX and profiles as many ONNX
Runtime calls with its own profiler, then prints per kind of kernel
(convolutions and matmuls, concatenations, pooling, layout, the rest) how
many kernels a call runs and their microseconds (`bench.profiles`), and the
call's wall time; and the operators of the same weights' .tflite (LiteRT's
Python API has no operator profiler). Stop other work on the machine first: the figures are
means under profiling, for finding where time goes, not latencies to quote.
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import flags

from tools import cli

_MODEL = flags.DEFINE_string('model', 'squeeze_encdec', 'model to profile')
_THREADS = flags.DEFINE_integer('threads', 1, 'cores to pin to', lower_bound=1)
_CALLS = flags.DEFINE_integer('calls', 200, 'profiled calls per framework', lower_bound=1)
_BATCH = flags.DEFINE_integer('batch', 1, 'batch size', lower_bound=1)
_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'training workdir to profile (read only)')
_WARMUP = 20


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  import models

  if _MODEL.value not in models.MODEL_NAMES:
    sys.exit(f'error: unknown --model {_MODEL.value}; valid: {", ".join(models.MODEL_NAMES)}.')
  available = sorted(os.sched_getaffinity(0))
  if _THREADS.value > len(available):
    sys.exit(f'error: --threads={_THREADS.value}, but this process may use {len(available)} cores.')
  cores = available[: _THREADS.value]
  os.sched_setaffinity(0, cores)  # before XLA sizes its thread pool

  import jax
  import numpy as np

  from bench import profiles
  from bench.weights import load_weights
  from models import compiler
  from torch_twins.export import formats, graph

  try:
    model, options = load_weights(_MODEL.value, _CHECKPOINT.value)
  except ValueError as error:
    sys.exit(f'error: {error}')
  size = model.default_input_size
  images = np.random.default_rng(0).uniform(size=(_BATCH.value, size, size, 3)).astype(np.float32)

  print(
    f'{_MODEL.value}, batch {_BATCH.value}, {_THREADS.value} thread(s) (cores {cores}), '
    f'{_CALLS.value} calls each',
    file=sys.stderr,
  )
  infer = compiler.InferenceFunction(model, images.shape)
  device_images = jax.device_put(images)
  call = lambda: jax.block_until_ready(infer(device_images))  # noqa: E731
  for _ in range(_WARMUP):
    call()
  xla = profiles.profile_xla(call, _CALLS.value)

  deployable = graph.deployable(model, _MODEL.value, options)
  with tempfile.TemporaryDirectory() as folder:
    onnx, tflite = (os.path.join(folder, f'{_MODEL.value}.{fmt}') for fmt in ('onnx', 'tflite'))
    try:
      formats.convert(deployable, images, 'onnx', onnx)
      formats.convert(deployable, images, 'tflite', tflite)
    except formats.ExportError as error:
      sys.exit(f'error: {_MODEL.value}: {error}')
    session = formats.OnnxRuntime(onnx, _THREADS.value, profile=os.path.join(folder, 'ort'))
    for _ in range(_WARMUP + _CALLS.value):
      session(images)
    ort = profiles.ort_breakdown(session.end_profiling(), _CALLS.value)
    litert = profiles.litert_operators(tflite)

  print(profiles.table({'XLA': xla, 'ORT': ort}))
  for name, breakdown in (('XLA', xla), ('ORT', ort)):
    outside = breakdown.wall_us - breakdown.busy_us
    print(
      f'{name}: {breakdown.kernels:.0f} kernels per call; '
      f'wall {breakdown.wall_us:.0f} us, kernels {breakdown.busy_us:.0f} us '
      f'({outside / max(breakdown.kernels, 1):+.1f} us per kernel outside kernels); slowest:'
    )
    print(profiles.slowest(breakdown))
  listed = ', '.join(f'{count} {name}' for name, count in litert.items())
  print(f'LiteRT: {sum(litert.values())} operators in the .tflite ({listed})')


if __name__ == '__main__':
  cli.run(main)
