"""Gathers the results of several runs into the article's Table 4, beside its numbers.

python -m tools.report workdirs/*
"""

from __future__ import annotations

import sys

from tools import cli


def main(argv: list[str]) -> None:
  from train import results

  workdirs = argv[1:]
  if not workdirs:
    sys.exit('error: pass the run folders to gather, e.g. `python -m tools.report workdirs/*`.')
  rows = results.load_results(workdirs)
  if not rows:
    sys.exit(f'error: no results.json in {", ".join(workdirs)}; run main.py first.')
  print(results.table4(rows))


if __name__ == '__main__':
  cli.run(main)
