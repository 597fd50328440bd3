"""What every command of the project shares: absl flags, and one error line instead of a traceback.

`run(main)` is `absl.app.run` with a flags parser that turns a bad flag, or a
bad `--config.*` override, into one `error: ...` line. absl accepts both
`--flag=value` and `--flag value`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import app, flags, logging


def _one_line(error: Exception) -> str:
  return ' '.join(str(error).split())


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parse, with every failure as one line on stderr (exit status 1)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    sys.exit(f'error: {_one_line(error)} (see --help)')
  except OSError as error:  # a --config file that cannot be read
    sys.exit(f'error: cannot load the config: {_one_line(error)}')
  except (KeyError, AttributeError, TypeError, ValueError) as error:  # --config.* overrides
    sys.exit(f'error: bad command-line override: {_one_line(error)}')


def no_positional(argv: list[str]) -> None:
  """Commands that take flags only: a stray word is an error, not silently ignored."""
  if len(argv) > 1:
    sys.exit(f'error: unexpected argument(s) {" ".join(argv[1:])}; every option is a --flag.')


def _quiet(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """Warnings and errors only unless --verbosity is given (orbax logs every file at INFO)."""

  def quiet_main(argv: list[str]) -> None:
    if not flags.FLAGS['verbosity'].present:
      logging.set_verbosity(logging.WARNING)
    main(argv)

  return quiet_main


def run(main: Callable[[list[str]], None]) -> None:
  app.run(_quiet(main), flags_parser=parse_flags)
