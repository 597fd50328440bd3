"""FOMM's training throughput, JAX beside PyTorch eager (bench.fomm_training).

  python -m tools.fomm_throughput --runs=6 --rounds=3 --out=docs/benchmark_runs/fomm_training.json
  python -m tools.fomm_throughput --profile=3     # then where the JAX step's time goes

The step of configs/fomm.py (batch, widths, losses) on random frames, both
frameworks on the same weights, timed in alternating blocks on this machine.
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags
from ml_collections import config_flags

from tools import cli

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/fomm.py', 'the FOMM run to time')
_RUNS = flags.DEFINE_integer('runs', 6, 'timed steps per framework')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'alternating blocks')
_OUT = flags.DEFINE_string('out', None, 'JSON to write (new)')
_PROFILE = flags.DEFINE_integer(
  'profile', 0, "then trace this many JAX steps and print XLA's slowest kernels", lower_bound=0
)


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  import torch

  from bench import fomm_training

  if _OUT.value and os.path.exists(_OUT.value):
    sys.exit(f'error: {_OUT.value} already exists; choose another --out or delete it first.')
  if _RUNS.value < _ROUNDS.value or _ROUNDS.value < 1:
    sys.exit(f'error: --runs ({_RUNS.value}) must be at least --rounds ({_ROUNDS.value}) >= 1.')
  torch.set_num_threads(os.cpu_count() or 1)
  try:
    found = fomm_training.compare(_CONFIG.value, _RUNS.value, _ROUNDS.value)
  except ValueError as error:
    sys.exit(f'error: {error}')
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      json.dump(found, f, indent=2)
  print(f'FOMM training step, batch {found["batch"]} of {found["size"]}x{found["size"]} pairs '
        f'({found["cpu"]}):')  # fmt: skip
  for name in ('jax', 'pytorch'):
    r = found[name]
    print(f'  {name:8s} {r["median_s"]:.3f} s/step (p10 {r["p10_s"]:.3f}, p90 {r["p90_s"]:.3f}), '
          f'{r["pairs_per_s"]:.2f} pairs/s')  # fmt: skip
  print(f'  JAX is {found["jax_speedup"]:.2f}x PyTorch eager')
  if _PROFILE.value:
    from bench import profiles

    traced = fomm_training.profile(_CONFIG.value, _PROFILE.value)
    print(
      f'JAX step while traced: {traced.wall_us / 1e3:.0f} ms; its slowest XLA kernels per step:'
    )
    print(profiles.slowest(traced, 12))


if __name__ == '__main__':
  cli.run(main)
