"""Gathers the results of several runs into the article's Table 4, beside its numbers.

Usage:
  python -m train.report workdirs/*
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# The article's Table 4 (distillation from FOMM's teacher on VoxCeleb).
ARTICLE_TABLE4 = {
  'squeeze_unet': (0.0025, 0.0054, 0.0094),
  'squeeze_encdec': (0.0309, 0.0343, 0.0575),
  'l3unet': (0.0080, 0.0084, 0.0131),
  'edgesegnet': (0.0016, 0.0039, 0.0077),
}


def load_results(workdirs: list[str]) -> list[dict]:
  rows = []
  for workdir in workdirs:
    path = os.path.join(workdir, 'results.json')
    if os.path.isfile(path):
      with open(path) as f:
        rows.append({'workdir': workdir, **json.load(f)})
  return rows


def table4(rows: list[dict]) -> str:
  """Markdown: our train loss, val loss, val distance beside the article's."""
  lines = [
    '| model | workdir | steps | train loss | val loss | val distance | student-truth distance '
    '| article train | article val | article distance |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for row in rows:
    paper = ARTICLE_TABLE4.get(row['model'], (None, None, None))
    paper_cells = ' | '.join(f'{v:.4f}' if v is not None else '-' for v in paper)
    truth = row.get('student_gt_distance')
    lines.append(
      f'| {row["model"]}{" (teacher)" if row.get("task") == "supervised" else ""} '
      f'| {row["workdir"]} | {row["steps"]} | {row["train_loss"]:.4f} | {row["val_loss"]:.4f} '
      f'| {row["val_distance"]:.4f} | {f"{truth:.4f}" if truth is not None else "-"} '
      f'| {paper_cells} |'
    )
  return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('workdirs', nargs='+', help='run folders holding results.json')
  args = parser.parse_args(argv)
  rows = load_results(args.workdirs)
  if not rows:
    sys.exit(f'error: no results.json in {", ".join(args.workdirs)}; run main.py first.')
  print(table4(rows))


if __name__ == '__main__':
  main()
