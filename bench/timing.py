"""Timing primitives: statistics of repeated calls, interleaved timing, the machine's peak."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import numpy as np


def cpu_model() -> str:
  """The CPU's model name, from /proc/cpuinfo where there is one."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown CPU'


def stats(times: list[float]) -> dict[str, float]:
  """Median, 10th and 90th percentiles of `times` (seconds)."""
  times = np.asarray(times)
  return {
    'median_s': float(np.median(times)),
    'p10_s': float(np.percentile(times, 10)),
    'p90_s': float(np.percentile(times, 90)),
  }


def time_interleaved(
  fns: dict[str, Callable[[], object]],
  runs: int,
  rounds: int = 5,
  pause_s: float = 0.2,
  warmup: tuple[int, int] = (5, 2),
) -> dict[str, dict[str, float]]:
  """Times each function `runs` times in alternating blocks, so that drifts in
  the machine's speed (these are shared VMs) fall on all of them alike.

  Before each block: a pause, so that the previous framework's worker threads
  (OpenMP's spin-wait, XLA's pool) have gone idle, then untimed calls: `warmup`
  is their count before the first block and before each later one.
  """
  times = {name: [] for name in fns}
  for round_ in range(rounds):
    block = runs // rounds + (round_ < runs % rounds)
    for name, fn in fns.items():
      time.sleep(pause_s)
      for _ in range(warmup[1] if round_ else warmup[0]):
        fn()
      for _ in range(block):
        start = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - start)
  return {name: stats(values) for name, values in times.items()}


def time_fn(fn: Callable[[], object], runs: int, warmup: int = 5) -> dict[str, float]:
  """`stats` of `runs` calls of `fn` after `warmup` untimed ones."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return stats(times)


def peak_gflops(runs: int) -> float:
  """float32 2048x2048 matrix product rate: the machine's practical peak on these cores."""
  import jax  # here: the worker pins its cores before JAX starts its thread pool
  import jax.numpy as jnp

  n = 2048
  a = jnp.ones((n, n), jnp.float32)
  matmul = jax.jit(jnp.matmul).lower(a, a).compile()
  measured = time_fn(lambda: matmul(a, a).block_until_ready(), max(runs // 20, 3), warmup=2)
  return 2 * n**3 / measured['median_s'] / 1e9
