"""One thread count's measurements, in a process pinned to that many cores.

The process is pinned with os.sched_setaffinity before JAX and PyTorch start:
XLA sizes its thread pool from the cores it may use, and no flag caps it, so
pinning is how JAX and PyTorch get the same cores.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from typing import Any

RUNTIME_PACKAGES = ('onnxruntime', 'ai-edge-litert')


def measure(
  threads: int,
  *,
  names: list[str],
  batch: int,
  runs: int,
  checkpoint: str | None,
  skip_figure1: bool,
  exported_dir: str,
  runtimes: tuple[str, ...],
  fomm: bool = False,
  fomm_only: bool = False,
  fomm_runs: int = 10,
) -> dict[str, Any]:
  """Pins this process to `threads` cores, then measures; returns one JSON-ready record."""
  cores = sorted(os.sched_getaffinity(0))[:threads]
  os.sched_setaffinity(0, cores)  # before JAX starts its thread pool
  import jax
  import jaxlib
  import torch

  from bench import ablations, timing
  from bench import models as timed

  record = {
    'threads': threads,
    'cores': cores,
    'peak_gflops': timing.peak_gflops(runs),
    'models': [],
    'figure1': [],
    'versions': {
      'jax': jax.__version__,
      'jaxlib': jaxlib.__version__,
      'torch': torch.__version__,
      **{package: importlib.metadata.version(package) for package in RUNTIME_PACKAGES},
    },
  }
  if fomm:
    from bench import fomm as fomm_bench

    print(f'  FOMM frame, {threads} thread(s)...', file=sys.stderr, flush=True)
    record['fomm'] = fomm_bench.bench_fomm(
      runs=fomm_runs,
      threads=threads,
      exported_dir=exported_dir,
      onnxruntime='onnxruntime' in runtimes,
    )
  if fomm_only:
    return record
  for name in names:
    print(f'  {name}, {threads} thread(s)...', file=sys.stderr, flush=True)
    record['models'].append(
      timed.bench_model(
        name,
        batch=batch,
        runs=runs,
        threads=threads,
        checkpoint=checkpoint,
        exported_dir=exported_dir,
        runtimes=runtimes,
      )
    )
  if not skip_figure1:
    record['figure1'] = timed.bench_figure1(batch=batch, runs=runs, threads=threads)
    record['ablations'] = ablations.run(batch=batch, runs=runs)
  return record
