"""Issue 15's goals as ranges over several `benchmark.py` runs.

  for i in 1 2 3; do python benchmark.py --skip_figure1 --out=/tmp/bench$i; done
  python -m tools.benchmark_goals --runs=/tmp/bench1,/tmp/bench2,/tmp/bench3

Prints, per model and thread count, JAX's time over the better of ONNX
Runtime and LiteRT and JAX's share of the matmul peak, each as its range
over the runs, and in how many runs each goal was met (`bench.goals`); then,
where the runs timed 1 and 2 threads, JAX on one core against the runtimes
on two.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags

from bench import goals
from tools import cli

_RUNS = flags.DEFINE_list('runs', None, 'benchmark output folders (or results.json files)')


def _load(path: str) -> dict:
  """One run's results.json, checked by reading it as `bench.goals` will."""
  file = os.path.join(path, 'results.json') if os.path.isdir(path) else path
  try:
    with open(file) as f:
      run = json.load(f)
    goals.rows([run])
  except OSError as error:
    sys.exit(f'error: cannot read {file}: {error.strerror}; pass benchmark.py --out folders.')
  except (ValueError, KeyError, TypeError, ZeroDivisionError):
    sys.exit(f'error: {file} is not a results.json of this benchmark.py; rerun benchmark.py.')
  return run


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  if not _RUNS.value:
    sys.exit('error: --runs is required: comma-separated benchmark.py --out folders.')
  runs = [_load(path) for path in _RUNS.value]
  print(goals.table(runs))
  one_thread = goals.one_thread_table(runs)
  if one_thread:
    print('\nGiven two cores, JAX could run on one of them:\n')
    print(one_thread)


if __name__ == '__main__':
  cli.run(main)
