"""Runs the project's commands as a user would (`python ARGS` from the project root), or a
tool's `main(argv)` in this process under the same flag parsing (`tools.cli`).

A command keeps one subprocess test for its wiring (its flags, exit status and error
line, nothing after it); its other cases call `in_process`, which skips importing JAX,
TFDS and PyTorch again (2 to 5 s of CPU a command).
"""

import importlib
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


def in_process(module: str, *args: str) -> int | str | None:
  """`python -m MODULE ARGS` in this process: absl parses ARGS (`tools.cli.parse_flags`),
  then `MODULE.main` runs, as `cli.run` calls it; its output goes to this process's
  stdout and stderr (capsys). Returns None when main returns, else the exit's code: a
  refusal's `error: ...` line (`sys.exit(line)`), or an exit status.

  The tools define their flags into absl's one registry when imported, and share names
  (--out, --model): a module this call imports has its flags removed again afterwards,
  and is forgotten, so that any tool or main.py can be parsed next in this process
  (`main`, which test modules import, stays).
  """
  from absl import flags

  from tools import cli

  flags.FLAGS.unparse_flags()  # every flag back to its default
  imported, before = module in sys.modules, set(flags.FLAGS)
  tool = importlib.import_module(module)
  argv, sys.argv = sys.argv, [module, *args]  # ml_collections reads --config.* there
  try:
    tool.main(cli.parse_flags(sys.argv))
  except SystemExit as exit_:
    return exit_.code
  finally:
    sys.argv = argv
    if not imported:
      for name in {flag.name for flag in flags.FLAGS.flags_by_module_dict().get(module, [])}:
        delattr(flags.FLAGS, name)
      del sys.modules[module]
    # ml_collections defines a --config.FIELD flag per field while it parses --config.
    for name in set(flags.FLAGS) - before:
      if name in flags.FLAGS:
        delattr(flags.FLAGS, name)
    flags.FLAGS.unparse_flags()
  return None


def one_line(code: int | str | None) -> str:
  """The refusal `in_process` returned: one `error: ...` line."""
  assert isinstance(code, str) and code.startswith('error: ') and '\n' not in code, code
  return code
