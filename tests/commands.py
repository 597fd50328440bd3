"""Runs the project's commands as a user would: `python ARGS` from the project root."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
  """`python *args` (e.g. `-m tools.report DIR` or `benchmark.py --runs=3`), output captured."""
  return subprocess.run(
    [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
  )


def last_error_line(result: subprocess.CompletedProcess) -> str:
  """The one line a failing command ends with (it must have failed, without a traceback)."""
  assert result.returncode != 0, result.stdout[-2000:]
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  return result.stderr.strip().splitlines()[-1]
