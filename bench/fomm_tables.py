"""What `benchmark.py --fomm` writes: where a FOMM frame's time goes, per framework and detector.

Each function takes the workers' records (one per thread count); the FOMM
measurement is each record's `fomm` entry (`bench.fomm.bench_fomm`).
"""

from __future__ import annotations

from typing import Any

Records = list[dict[str, Any]]
FRAMEWORKS = (('jax', 'JAX'), ('torch', 'PyTorch'), ('onnxruntime', 'ONNX Runtime'))


def _ms(times: dict[str, Any], framework: str, part: str) -> float | None:
  value = times.get(framework, {}).get(part)
  return None if value is None else 1e3 * value['median_s']


def _cell(value: float | None) -> str:
  return '-' if value is None else f'{value:.1f}'


def _ratio(a: float | None, b: float | None) -> str:
  return '-' if a is None or b is None else f'{a / b:.2f}'


def generator_share_of_peak(record: dict[str, Any]) -> float:
  """The JAX generator's FLOP rate (2 x mult-adds per second) over the measured matmul peak."""
  fomm = record['fomm']
  seconds = fomm['times']['jax']['generator']['median_s']
  return 2 * fomm['generator_mult_adds_g'] / seconds / record['peak_gflops']


def parts_table(records: Records) -> str:
  """Each part of a frame (teacher as detector) in each framework, ms, and JAX's ratios."""
  lines = [
    '| threads | part | JAX (ms) | PyTorch eager (ms) | ONNX Runtime (ms) | JAX / PyTorch '
    '| JAX / ORT |',
    '|---:|---|---:|---:|---:|---:|---:|',
  ]
  for record in records:
    fomm = record['fomm']
    times = fomm['times']
    parts = (
      (f'detector ({fomm["teacher"]}, incl. downsampling)', f'detector:{fomm["teacher"]}'),
      ('dense motion network', 'motion'),
      ('generator (incl. dense motion)', 'generator'),
      ('whole frame (detector + generator)', 'frame'),
    )
    for label, part in parts:
      jax_ms, torch_ms, ort_ms = (_ms(times, key, part) for key, _ in FRAMEWORKS)
      lines.append(
        f'| {record["threads"]} | {label} | {_cell(jax_ms)} | {_cell(torch_ms)} | {_cell(ort_ms)} '
        f'| {_ratio(jax_ms, torch_ms)} | {_ratio(jax_ms, ort_ms)} |'
      )
  return '\n'.join(lines)


def detectors_table(records: Records) -> str:
  """The frame with each detector: its time and its share of (detector + generator)."""
  lines = [
    '| threads | detector | input | mult-adds (G) | JAX detector (ms) | JAX frame (ms) '
    '| detector share (JAX) | PyTorch detector (ms) | PyTorch frame (ms) '
    '| detector share (PyTorch) | ORT detector (ms) | ORT frame (ms) | detector share (ORT) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for record in records:
    fomm = record['fomm']
    times = fomm['times']
    for name, row in fomm['detectors'].items():
      cells = []
      for framework, _ in FRAMEWORKS:
        detector = _ms(times, framework, f'detector:{name}')
        generator = _ms(times, framework, 'generator')
        if detector is None or generator is None:
          cells += ['-', '-', '-']
          continue
        frame = detector + generator
        cells += [_cell(detector), _cell(frame), f'{100 * detector / frame:.1f}%']
      lines.append(
        f'| {record["threads"]} | {name} | {row["input_size"]} | {row["mult_adds_g"]:.3f} '
        f'| {" | ".join(cells)} |'
      )
  return '\n'.join(lines)


def summary_lines(records: Records) -> str:
  """The mult-adds, the generator's share of the matmul peak, agreement, failed exports."""
  fomm = records[0]['fomm']
  lines = [
    f'FOMM at {fomm["size"]}x{fomm["size"]}, batch 1. Mult-adds (models.summary rules): '
    f'generator {fomm["generator_mult_adds_g"]:.1f} G (its dense motion network '
    f'{fomm["motion_mult_adds_g"]:.1f} G of them), detector {fomm["teacher"]} '
    f'{fomm["detectors"][fomm["teacher"]]["mult_adds_g"]:.2f} G.',
    'JAX generator at '
    + ', '.join(
      f'{100 * generator_share_of_peak(r):.0f}% of the matmul peak on {r["threads"]} thread(s)'
      for r in records
    )
    + ' (2 x mult-adds per second).',
    'Largest output difference from JAX before timing: '
    + ', '.join(f'{k} {v:.1e}' for k, v in fomm['max_differences'].items())
    + '.',
    'Frame with each detector = its measured time (anti-alias downsampling of the driving '
    "frame included) + the measured generator; the source frame's keypoints are found once "
    'per video. "whole frame" is one timed call with the teacher (JAX: two compiled functions '
    'back to back; ONNX Runtime: two sessions).',
  ]
  for what, why in fomm.get('runtimes_failed', {}).items():
    lines.append(f'{what}: the export failed, not timed: {why}')
  return '\n\n'.join(lines)


def fomm_tables(records: Records) -> str:
  """The markdown of OUT/fomm.md (after the machine line)."""
  return '\n\n'.join(
    [
      "## Where a frame's time goes",
      summary_lines(records),
      parts_table(records),
      detectors_table(records),
    ]
  )
