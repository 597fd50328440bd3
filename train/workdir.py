"""Workdirs: created (or refused) before any work, and held by one run at a time.

`make_workdir(path)` creates a folder or says in one line why it cannot;
`check_folder(path, what, flag)` does the same for any folder a run will
write (the teacher's, the data's). `lock(workdir)` holds WORKDIR/.lock with
`fcntl.flock` for the whole run: a second run on the same workdir stops
with one line naming the host and pid that hold it. The operating system
releases the lock when its process dies, so a crashed or killed run never
blocks the next one (the file stays; only the lock on it counts).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator

import jax

LOCK_FILE = '.lock'

# Locks this process holds: path -> (file descriptor, depth). main.run holds the student's
# workdir while train_and_evaluate takes it again; flock would refuse a second descriptor.
_HELD: dict[str, list[int]] = {}


class WorkdirError(ValueError):
  """A workdir that cannot be used; the message says why and what to do."""


def check_folder(path: str | os.PathLike, what: str, fix: str, *, write: bool = True) -> str:
  """Creates the folder `path` if needed and checks that it is writable.

  Args:
    path: the folder.
    what: what it is, for the message ('the workdir', 'the teacher folder').
    fix: what to do instead ('pass a writable folder with --workdir').
    write: check that it is writable too (not for data that may be read-only once built).

  Returns:
    Its absolute path.

  Raises:
    WorkdirError: in one line, when it cannot be created or written.
  """
  path = os.path.abspath(path)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as error:
    raise WorkdirError(
      f'cannot create {what} {path} ({error.strerror or error}); {fix}.'
    ) from error
  if write and not os.access(path, os.W_OK | os.X_OK):
    raise WorkdirError(f'cannot write to {what} {path} (permission denied); {fix}.')
  return path


def make_workdir(path: str | os.PathLike) -> str:
  """Creates the workdir (one clear line if it cannot be) and returns its absolute path."""
  return check_folder(path, 'the workdir', 'pass a writable folder with --workdir')


def _holder(fd: int) -> str:
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 200).decode(errors='replace').split()
  return f'host {text[0]}, pid {text[1]}' if len(text) >= 2 else 'an unknown process'


@contextlib.contextmanager
def lock(workdir: str | os.PathLike) -> Iterator[None]:
  """Holds WORKDIR/.lock while the block runs (process 0 only in multi-process runs).

  Raises:
    WorkdirError: when another run holds it, naming its host and pid.
  """
  path = os.path.join(make_workdir(workdir), LOCK_FILE)
  if jax.process_index() != 0:  # process 0 speaks for the run
    yield
    return
  if path in _HELD:
    _HELD[path][1] += 1
  else:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      holder = _holder(fd)
      os.close(fd)
      raise WorkdirError(
        f'the workdir {os.path.dirname(path)} is in use by another run ({holder}); wait for it '
        'to finish or stop it, or pass another --workdir.'
      ) from error
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'{socket.gethostname()} {os.getpid()}\n'.encode(), 0)
    _HELD[path] = [fd, 1]
  try:
    yield
  finally:
    _HELD[path][1] -= 1
    if not _HELD[path][1]:
      fd, _ = _HELD.pop(path)
      os.close(fd)  # releases the lock; the file stays for the next run
