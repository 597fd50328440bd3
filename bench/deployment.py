"""Trained students exported to LiteRT and ONNX, fp32 and int8: size, parity, val distance, latency.

For each training workdir: its best checkpoint exported four times
(`torch_twins.export`: tflite and onnx, fp32 and static int8 calibrated on
training images), each file checked against the Flax model and scored on
validation images against the run's teacher; then every file timed with its
own runtime pinned to 1 and to 2 cores, in alternating blocks.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bench import timing
from torch_twins.export import FORMATS, export, load_runtime
from train import export_inputs
from train.checkpoints import restore_model


def export_run(
  workdir: str, folder: str, *, images: int | None, calibration: int
) -> list[dict[str, Any]]:
  """The four files of `workdir`'s best checkpoint in `folder`; their sidecars."""
  import models

  model, meta = restore_model(workdir)
  name = meta['model']
  options = models.model_config(name, meta['options'])
  inputs = export_inputs.workdir_inputs(meta['experiment'], images, calibration)
  rows = []
  for fmt in FORMATS:
    for int8 in (False, True):
      path = os.path.join(folder, f'{name}{"_int8" if int8 else ""}.{fmt}')
      sidecar = export(
        model,
        name,
        options,
        fmt=fmt,
        out=path,
        images=inputs.images,
        images_source=inputs.images_source,
        weights={'source': os.path.abspath(workdir), 'step': meta.get('step')},
        int8=int8,
        calibration=inputs.calibration,
        calibration_source=inputs.calibration_source,
        teacher_kp=inputs.reference_kp,
        overwrite=True,
      )
      rows.append({'path': path, **sidecar})
  return rows


def time_files(
  files: dict[str, int], *, cores: list[int], runs: int
) -> dict[str, dict[str, float]]:
  """Median latency of each file (path -> input size) on one image, pinned to `cores`."""
  os.sched_setaffinity(0, cores)
  calls = {}
  for path, size in files.items():
    runtime = load_runtime(path, len(cores))  # its thread pool starts on the pinned cores
    image = np.random.default_rng(0).uniform(size=(1, size, size, 3)).astype(np.float32)
    calls[path] = lambda runtime=runtime, image=image: runtime(image)
  return timing.time_interleaved(calls, runs)


def table(rows: list[dict[str, Any]], thread_counts: list[int]) -> str:
  """One line per student and format: fp32 and int8 side by side."""
  threads = ' | '.join(f'{p} {t}T (ms)' for p in ('fp32', 'int8') for t in thread_counts)
  lines = [
    '| model | format | fp32 size (KB) | int8 size (KB) | fp32 file vs Flax (max abs) '
    f'| val distance: Flax | fp32 file | int8 file | {threads} |',
    '|---|---|---:|---:|---:|---:|---:|---:|' + '---:|' * 2 * len(thread_counts),
  ]
  pairs: dict[tuple[str, str], dict[bool, dict]] = {}
  for row in rows:
    pairs.setdefault((row['model'], row['format']), {})[row['precision'] == 'int8'] = row
  for (model, fmt), pair in pairs.items():
    fp32, int8 = pair[False], pair[True]
    parity = max(fp32['parity']['max_abs_difference_to_flax'].values())
    distance = int8.get('val_distance', {})
    latencies = ' | '.join(
      f'{1e3 * row["latency"][str(t)]["median_s"]:.2f}'
      for row in (fp32, int8)
      for t in thread_counts
    )
    lines.append(
      f'| {model} | {fmt} | {fp32["size_bytes"] / 1024:,.0f} | {int8["size_bytes"] / 1024:,.0f} '
      f'| {parity:.1e} | {distance.get("flax", float("nan")):.4f} '
      f'| {distance.get("float32_file", float("nan")):.4f} '
      f'| {distance.get("int8_file", float("nan")):.4f} | {latencies} |'
    )
  return '\n'.join(lines)
