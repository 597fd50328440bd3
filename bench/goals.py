"""Issue 15's goals over several benchmark runs: each ratio as its range, and how many runs met it.

One run of `benchmark.py` on a shared VM is not a finding (a 2-thread JAX
call's 90th percentile is often twice its median), so the goals are read
over several runs' results.json: per model and thread count, JAX's time over
the better of ONNX Runtime and LiteRT, and JAX's share of the matmul peak
for models above 50 M mult-adds. And, for the two-core rows, whether JAX
kept on one of the two cores would beat the runtimes using both: a per-model
choice of thread count is a lead the issue names.
"""

from __future__ import annotations

from typing import Any

PEAK_GOAL = 0.5  # share of the measured matmul peak, for models above...
PEAK_MULT_ADDS_M = 50.0  # ...this many mult-adds (millions)


def rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """One row per (model, threads) found in every run: the per-run ratios and peak shares."""
  per_key: dict[tuple[str, int], list[tuple[float | None, float, float]]] = {}
  for run in runs:
    for record in run['records']:
      for m in record['models']:
        share = m['jax_gflops_per_s'] / record['peak_gflops']
        key = (m['model'], record['threads'])
        per_key.setdefault(key, []).append((m['jax_over_best_runtime'], share, m['mult_adds_m']))
  out = []
  for (model, threads), values in per_key.items():
    if len(values) != len(runs):
      continue  # not in every run: no range to give
    ratios = [v[0] for v in values]
    out.append(
      {
        'model': model,
        'threads': threads,
        'ratios': ratios,
        'shares': [v[1] for v in values],
        'peak_goal': values[0][2] > PEAK_MULT_ADDS_M,
      }
    )
  return sorted(out, key=lambda row: (row['threads'], row['model']))


def _range(values: list[float], fmt: str) -> str:
  low, high = fmt.format(min(values)), fmt.format(max(values))
  return low if low == high else f'{low}-{high}'


def table(runs: list[dict[str, Any]]) -> str:
  """Markdown: per model and thread count, each measure's range and the runs meeting its goal."""
  count = len(runs)
  lines = [
    f'| model | threads | JAX / best of ORT, LiteRT ({count} runs) | faster in | % of peak '
    '| >= 50% of peak in |',
    '|---|---:|---:|---:|---:|---:|',
  ]
  for row in rows(runs):
    ratios = [r for r in row['ratios'] if r is not None]
    ratio = _range(ratios, '{:.2f}') if ratios else '-'
    faster = f'{sum(r < 1 for r in ratios)} of {count}' if ratios else '-'
    shares = _range([100 * s for s in row['shares']], '{:.0f}%')
    peak = f'{sum(s >= PEAK_GOAL for s in row["shares"])} of {count}' if row['peak_goal'] else '-'
    lines.append(f'| {row["model"]} | {row["threads"]} | {ratio} | {faster} | {shares} | {peak} |')
  return '\n'.join(lines)


def one_thread_ratios(run: dict[str, Any]) -> dict[str, float]:
  """Per model: JAX's 1-thread median over the best runtime's 2-thread median, in one run."""
  by_threads = {record['threads']: record['models'] for record in run['records']}
  if 1 not in by_threads or 2 not in by_threads:
    return {}
  one = {m['model']: m['jax']['median_s'] for m in by_threads[1]}
  out = {}
  for m in by_threads[2]:
    best = [t['median_s'] for t in m.get('runtimes', {}).values()]
    if best and m['model'] in one:
      out[m['model']] = one[m['model']] / min(best)
  return out


def one_thread_table(runs: list[dict[str, Any]]) -> str:
  """Markdown: JAX on one core against the runtimes on two, as a range over the runs."""
  per_run = [one_thread_ratios(run) for run in runs]
  names = sorted(set.intersection(*(set(r) for r in per_run))) if per_run else []
  if not names:
    return ''
  lines = [
    f'| model | JAX on 1 core / best runtime on 2 ({len(runs)} runs) | faster in |',
    '|---|---:|---:|',
  ]
  for name in names:
    ratios = [r[name] for r in per_run]
    lines.append(
      f'| {name} | {_range(ratios, "{:.2f}")} | {sum(r < 1 for r in ratios)} of {len(runs)} |'
    )
  return '\n'.join(lines)
