"""Exports trained students to LiteRT and ONNX (fp32 and int8) and reports size, accuracy, latency.

  python -m tools.deployment_report --workdirs=workdirs/edgeseg,workdirs/l3unet \
      --out=docs/deployment

For each workdir: four files (`bench.deployment`), each checked against the
Flax model, its val distance to the run's teacher, and its latency with its
own runtime on 1 and 2 pinned cores. Writes OUT/deployment.md (the table),
OUT/summary.json (the sidecars with latencies) and the files in OUT/files/.
int8 latencies on this x86 CPU are no proxy for a phone's int8 kernels.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags, logging

from tools import cli

_WORKDIRS = flags.DEFINE_list('workdirs', None, 'training workdirs to export', required=True)
_OUT = flags.DEFINE_string('out', 'benchmarks/deployment', 'folder for the table, JSON and files')
_THREADS = flags.DEFINE_list('threads', ['1', '2'], 'core counts to time on')
_RUNS = flags.DEFINE_integer('runs', 100, 'timed calls per file and core count', lower_bound=1)
_IMAGES = flags.DEFINE_integer('images', None, 'validation images (default: the whole split)')
_CALIBRATION = flags.DEFINE_integer('calibration', 100, 'int8 representative images')


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  cores = sorted(os.sched_getaffinity(0))
  try:
    thread_counts = [int(t) for t in _THREADS.value]
  except ValueError:
    thread_counts = [0]
  if not thread_counts or min(thread_counts) < 1 or max(thread_counts) > len(cores):
    sys.exit(f'error: --threads {",".join(_THREADS.value)}: this process may use {len(cores)}.')
  from bench import deployment
  from torch_twins.export import ExportError
  from train.checkpoints import CheckpointError

  folder = os.path.join(_OUT.value, 'files')
  os.makedirs(folder, exist_ok=True)
  rows = []
  for workdir in _WORKDIRS.value:
    print(f'exporting {workdir} (tflite, onnx; fp32, int8)...', flush=True)
    try:
      rows += deployment.export_run(
        workdir, folder, images=_IMAGES.value, calibration=_CALIBRATION.value
      )
    except (ExportError, CheckpointError) as error:
      sys.exit(f'error: {workdir}: {error}')
  files = {row['path']: row['input']['shape'][1] for row in rows}
  for count in thread_counts:
    print(f'timing {len(files)} files on {count} core(s)...', flush=True)
    stats = deployment.time_files(files, cores=cores[:count], runs=_RUNS.value)
    for row in rows:
      row.setdefault('latency', {})[str(count)] = stats[row['path']]
  text = deployment.table(rows, thread_counts)
  print(text)
  with open(os.path.join(_OUT.value, 'deployment.md'), 'w') as f:
    f.write(text + '\n')
  for row in rows:
    row['path'] = os.path.relpath(row['path'], _OUT.value)
  with open(os.path.join(_OUT.value, 'summary.json'), 'w') as f:
    json.dump(rows, f, indent=2)
  print(f'wrote {_OUT.value}/deployment.md, summary.json and files/')


if __name__ == '__main__':
  cli.run(main)
