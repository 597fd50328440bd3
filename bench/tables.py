"""What the benchmark writes: Table 3, Figure 1's table and plot, the ablations, the machine line.

Each function takes the workers' records (one per thread count, as
`bench.worker.measure` returns them).
"""

from __future__ import annotations

from typing import Any

import models
from bench import timing

Records = list[dict[str, Any]]


def machine_line(records: Records, *, batch: int, runs: int) -> str:
  """The "Measured on ..." sentence heading every table."""
  versions = records[0]['versions']
  return (
    f'Measured on {timing.cpu_model()}, {", ".join(str(r["threads"]) for r in records)} '
    f'thread(s) (pinned cores), batch {batch}, median of {runs} runs; jax {versions["jax"]}, '
    f'jaxlib {versions["jaxlib"]}, torch {versions["torch"]}. Peak (2048x2048 float32 matmul): '
    + ', '.join(f'{r["peak_gflops"]:.0f} GFLOP/s on {r["threads"]}' for r in records)
    + '. Article runtimes: PyTorch on an Intel Xeon E5-2640 v3.'
  )


def table3(records: Records) -> str:
  """Each model's counts and times: JAX, PyTorch, ONNX Runtime, LiteRT and the article's runtime."""
  lines = [
    '| model | threads | params | mult-adds (M) | pass size (MB) | XLA GFLOPs | compile (s) '
    '| JAX (ms) | PyTorch (ms) | JAX / PyTorch | ONNX Runtime (ms) | LiteRT (ms) '
    '| JAX / best of ORT, LiteRT | JAX GFLOP/s | % of peak | article (ms, Xeon E5-2640 v3) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for record in records:
    for m in record['models']:
      paper = models.spec(m['model']).table3.runtime_s
      lines.append(
        f'| {m["model"]} | {m["threads"]} | {m["params"]:,} | {m["mult_adds_m"]:.2f} '
        f'| {m["pass_size_mb"]:.2f} | {m["xla_gflops"]:.3f} | {m["compile_s"]:.1f} '
        f'| {1e3 * m["jax"]["median_s"]:.2f} | {1e3 * m["torch"]["median_s"]:.2f} '
        f'({m["torch_layout"]}) | {m["jax_over_torch"]:.2f} | {_runtime(m, "onnxruntime")} '
        f'| {_runtime(m, "litert")} | {_ratio(m.get("jax_over_best_runtime"))} '
        f'| {m["jax_gflops_per_s"]:.1f} '
        f'| {100 * m["jax_gflops_per_s"] / record["peak_gflops"]:.0f}% '
        f'| {f"{1e3 * paper:.1f}" if paper else "-"} |'
      )
  return '\n'.join(lines)


def _runtime(m: dict[str, Any], runtime: str) -> str:
  """A runtime's median in ms; '-' not timed, 'failed' if its export failed."""
  if runtime in m.get('runtimes', {}):
    return f'{1e3 * m["runtimes"][runtime]["median_s"]:.2f}'
  return 'failed' if runtime in m.get('runtimes_failed', {}) else '-'


def _ratio(value: float | None) -> str:
  return '-' if value is None else f'{value:.2f}'


def figure1_table(records: Records) -> str:
  """Conv and DSC times at each size S, and their ratio, in both frameworks."""
  lines = [
    '| threads | S | conv JAX (ms) | DSC JAX (ms) | DSC / conv JAX | conv PyTorch (ms) '
    '| DSC PyTorch (ms) | DSC / conv PyTorch |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for record in records:
    rows = {(r['size'], r['kind']): r for r in record['figure1']}
    for size in dict.fromkeys(r['size'] for r in record['figure1']):
      if (size, 'conv') not in rows or (size, 'dsc') not in rows:
        continue
      conv, dsc = rows[(size, 'conv')], rows[(size, 'dsc')]
      lines.append(
        f'| {record["threads"]} | {size} | {1e3 * conv["jax_s"]:.3f} | {1e3 * dsc["jax_s"]:.3f} '
        f'| {dsc["jax_s"] / conv["jax_s"]:.2f} | {1e3 * conv["torch_s"]:.3f} '
        f'| {1e3 * dsc["torch_s"]:.3f} | {dsc["torch_s"] / conv["torch_s"]:.2f} |'
      )
  return '\n'.join(lines)


def ablation_table(records: Records) -> str:
  """Each ablation's two forms, then each whole model under XLA's default options and ours,
  and with its weight-only work in every call and done once."""
  lines = [
    '| threads | what | before | after | before (ms) | after (ms) | speed-up |',
    '|---:|---|---|---|---:|---:|---:|',
  ]
  for record in records:
    whole_models = [
      {
        'what': f'whole model: {m["model"]}',
        'before': 'XLA default CPU options',
        'after': 'models.compiler options',
        'before_s': m['jax_xla_defaults']['median_s'],
        'after_s': m['jax']['median_s'],
      }
      for m in record['models']
    ] + [
      {
        'what': f'whole model: {m["model"]}',
        'before': 'weight-only work in every call',
        'after': f'done once ({m["hoisted_ops"]} ops, models.hoisting)',
        'before_s': m['jax_unhoisted']['median_s'],
        'after_s': m['jax']['median_s'],
      }
      for m in record['models']
    ]
    for row in record.get('ablations', []) + whole_models:
      lines.append(
        f'| {record["threads"]} | {row["what"]} | {row["before"]} | {row["after"]} '
        f'| {1e3 * row["before_s"]:.3f} | {1e3 * row["after_s"]:.3f} '
        f'| {row["before_s"] / row["after_s"]:.1f}x |'
      )
  return '\n'.join(lines)


def figure1_plot(records: Records, path: str) -> None:
  """Figure 1 as a PNG: ms per call against S, one panel per thread count."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  figure, axes = plt.subplots(1, len(records), figsize=(5 * len(records), 3.6), squeeze=False)
  for ax, record in zip(axes[0], records, strict=True):
    for kind, colour in (('conv', 'tab:blue'), ('dsc', 'tab:orange')):
      rows = [r for r in record['figure1'] if r['kind'] == kind]
      sizes = [r['size'] for r in rows]
      ax.plot(sizes, [1e3 * r['jax_s'] for r in rows], 'o-', color=colour, label=f'{kind} JAX')
      ax.plot(
        sizes, [1e3 * r['torch_s'] for r in rows], 's--', color=colour, label=f'{kind} PyTorch'
      )
    ax.set_xscale('log', base=2)
    ax.set_yscale('log')
    ax.set_xlabel('spatial size S')
    ax.set_ylabel('ms per call (batch 1)')
    ax.set_title(f'3x3 conv 64->128 vs depthwise separable, {record["threads"]} thread(s)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)
