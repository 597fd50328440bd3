"""XLA-compiled CPU inference beside PyTorch, ONNX Runtime and LiteRT on the same weights.

  python benchmark.py                                  # every model, 1 and 2 threads
  python benchmark.py --models=edgesegnet --runs=500 --threads=1
  python benchmark.py --checkpoint=workdirs/edgeseg    # time trained weights (read only)
  python benchmark.py --runs=3 --models=squeeze_unet --out=/tmp/bench   # quick

  python benchmark.py --fomm_only --fomm_runs=10      # where a FOMM frame's time goes

Writes OUT/table3.md, OUT/figure1.md, OUT/ablations.md, OUT/results.json and
OUT/figure1.png.

Each thread count runs in its own process pinned to that many cores
(`bench.worker`), so JAX and PyTorch get the same cores. JAX: the model
compiled ahead of time under the project's XLA options (and under XLA's
default ones, OUT/ablations.md); PyTorch: its twin with the same weights, the
better of NCHW and channels_last (`bench.models`); ONNX Runtime and LiteRT
(XNNPACK): the twin exported with the same weights, as many threads as
cores (`bench.runtimes`; --no_runtimes skips them). Median of --runs calls, the
frameworks timed in alternating blocks. The hand-written forms of
`bench.ablations` are timed beside the straightforward XLA ones. --fomm adds
OUT/fomm.md: FOMM's detector, dense motion network and generator at 256x256
in each framework, and the frame with the teacher or a student as detector
(`bench.fomm`); --fomm_only times only that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl import flags

import models
from tools import cli

_MODELS = flags.DEFINE_string('models', ','.join(models.MODEL_NAMES), 'comma-separated models')
_BATCH = flags.DEFINE_integer('batch', 1, 'batch size', lower_bound=1)
_THREADS = flags.DEFINE_string('threads', '1,2', 'comma-separated core counts')
_RUNS = flags.DEFINE_integer('runs', 200, 'timed calls per measurement', lower_bound=1)
_CHECKPOINT = flags.DEFINE_string(
  'checkpoint', None, 'training workdir or checkpoint folder to time (read only; one model)'
)
_OUT = flags.DEFINE_string('out', 'benchmarks', 'folder for the tables, plot and JSON')
_SKIP_FIGURE1 = flags.DEFINE_bool('skip_figure1', False, 'skip Figure 1 and the ablations')
_RUNTIMES = flags.DEFINE_multi_enum(
  'runtimes',
  ['onnxruntime', 'litert'],
  ['onnxruntime', 'litert'],
  'deployment runtimes timed beside JAX and PyTorch (repeat the flag for several)',
)
_NO_RUNTIMES = flags.DEFINE_bool('no_runtimes', False, 'time JAX and PyTorch only')
_FOMM = flags.DEFINE_bool(
  'fomm', False, "also time a FOMM frame's parts at 256x256 (OUT/fomm.md; bench.fomm)"
)
_FOMM_ONLY = flags.DEFINE_bool('fomm_only', False, 'time the FOMM frame only (implies --fomm)')
_FOMM_RUNS = flags.DEFINE_integer(
  'fomm_runs', 10, 'timed calls per FOMM measurement (a frame is ~1 s)', lower_bound=1
)
# Internal: set on the worker processes this command starts. Defined under another
# module name, so that --help leaves it out (--helpfull lists it).
_THREADS_WORKER = flags.DEFINE_integer(
  'threads_worker', 0, 'internal: measure pinned to this many cores', module_name='bench.worker'
)
_EXPORTED_DIR = flags.DEFINE_string(
  'exported_dir',
  None,
  'internal: where the workers share exported files',
  module_name='bench.worker',
)


def _check_flags() -> list[int]:
  """The thread counts; exits with one error line for any flag that cannot work."""
  names = _MODELS.value.split(',')
  unknown = [m for m in names if m not in models.MODEL_NAMES]
  if unknown:
    sys.exit(
      f'error: unknown model(s) {", ".join(unknown)}; valid: {", ".join(models.MODEL_NAMES)}'
    )
  if _CHECKPOINT.value and len(names) > 1:
    sys.exit('error: --checkpoint times one model: pass --models=NAME too.')
  if _CHECKPOINT.value:
    from bench.weights import load_weights

    try:  # once here, so a bad checkpoint is one line, not a worker's traceback
      load_weights(_MODELS.value, _CHECKPOINT.value)
    except ValueError as error:  # includes train.checkpoints.CheckpointError
      sys.exit(f'error: {error}')
  available = len(os.sched_getaffinity(0))
  try:
    threads = [int(t) for t in _THREADS.value.split(',')]
  except ValueError:
    threads = [0]
  if max(threads) > available or min(threads) < 1:
    sys.exit(f'error: --threads {_THREADS.value}: this process may use {available} core(s).')
  return threads


def _runtimes() -> tuple[str, ...]:
  return () if _NO_RUNTIMES.value else tuple(dict.fromkeys(_RUNTIMES.value))


def _worker_command(count: int, exported_dir: str) -> list[str]:
  """This command for one thread count, from the parsed flags (not the raw argv)."""
  command = [
    sys.executable,
    os.path.abspath(__file__),
    f'--models={_MODELS.value}',
    f'--batch={_BATCH.value}',
    f'--runs={_RUNS.value}',
    '--skip_figure1' if _SKIP_FIGURE1.value else '--noskip_figure1',
    f'--threads_worker={count}',
    f'--exported_dir={exported_dir}',
    '--fomm' if _FOMM.value else '--nofomm',
    '--fomm_only' if _FOMM_ONLY.value else '--nofomm_only',
    f'--fomm_runs={_FOMM_RUNS.value}',
    *(f'--runtimes={runtime}' for runtime in _runtimes()),
    '--no_runtimes' if not _runtimes() else '--nono_runtimes',
  ]
  if _CHECKPOINT.value:
    command.append(f'--checkpoint={os.path.abspath(_CHECKPOINT.value)}')
  return command


def _measure(threads: list[int]) -> list[dict]:
  """One worker process per thread count; their records."""
  records = []
  # The exported files are made once, by the first worker, and read by the others.
  exported_dir = tempfile.mkdtemp(prefix='benchmark-exported-')
  try:
    for count in threads:
      print(f'{count} thread(s):', file=sys.stderr, flush=True)
      command = _worker_command(count, exported_dir)
      result = subprocess.run(command, capture_output=True, text=True, check=False)
      if result.returncode:
        sys.exit(f'error: the {count}-thread run failed:\n{result.stderr[-3000:]}')
      records.append(json.loads(result.stdout.strip().splitlines()[-1]))
  finally:
    shutil.rmtree(exported_dir, ignore_errors=True)
  return records


def _write(out: str, name: str, text: str) -> None:
  with open(os.path.join(out, name), 'w') as f:
    f.write(text)


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  if _THREADS_WORKER.value:
    from bench import worker

    record = worker.measure(
      _THREADS_WORKER.value,
      names=_MODELS.value.split(','),
      batch=_BATCH.value,
      runs=_RUNS.value,
      checkpoint=_CHECKPOINT.value,
      skip_figure1=_SKIP_FIGURE1.value,
      exported_dir=_EXPORTED_DIR.value,
      runtimes=_runtimes(),
      fomm=_FOMM.value or _FOMM_ONLY.value,
      fomm_only=_FOMM_ONLY.value,
      fomm_runs=_FOMM_RUNS.value,
    )
    print(json.dumps(record))
    return
  threads = _check_flags()
  out = _OUT.value
  try:
    os.makedirs(out, exist_ok=True)
  except OSError as error:
    sys.exit(
      f'error: cannot create --out {out} ({error.strerror or error}); pass a writable folder.'
    )
  records = _measure(threads)

  from bench import tables

  machine = tables.machine_line(records, batch=_BATCH.value, runs=_RUNS.value)
  print(machine)
  written = []
  if _FOMM.value or _FOMM_ONLY.value:
    from bench import fomm_tables

    text_fomm = fomm_tables.fomm_tables(records)
    print(text_fomm)
    _write(out, 'fomm.md', machine + '\n\n' + text_fomm + '\n')
    written.append('fomm.md')
  if _FOMM_ONLY.value:
    _write(out, 'results.json', json.dumps({'machine': machine, 'records': records}, indent=2))
    print(f'wrote {", ".join(os.path.join(out, name) for name in [*written, "results.json"])}')
    return
  text3 = tables.table3(records)
  print(text3)
  _write(out, 'table3.md', machine + '\n\n' + text3 + '\n')
  written += ['table3.md', 'ablations.md']
  if not _SKIP_FIGURE1.value:
    text1 = tables.figure1_table(records)
    print(text1)
    _write(out, 'figure1.md', machine + '\n\n' + text1 + '\n')
    tables.figure1_plot(records, os.path.join(out, 'figure1.png'))
    written += ['figure1.md', 'figure1.png']
  text_ablation = tables.ablation_table(records)
  print(text_ablation)
  _write(out, 'ablations.md', machine + '\n\n' + text_ablation + '\n')
  _write(out, 'results.json', json.dumps({'machine': machine, 'records': records}, indent=2))
  print(f'wrote {", ".join(os.path.join(out, name) for name in [*written, "results.json"])}')


if __name__ == '__main__':
  cli.run(main)
