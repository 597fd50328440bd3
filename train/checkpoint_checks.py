"""What tells a damaged checkpoint from a good one (used by `train.checkpoints`).

orbax notices missing and truncated files, but not changed bytes: a flipped
bit in a saved array restores without complaint. So every save records the
SHA-256 of its state (`state_sha256`, in meta), and `problem` checks a
restored state against it, against the shapes it was restored into and for
non-finite values.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np


def leaves(tree: Any, prefix: str = '') -> list[tuple[str, Any]]:
  """(path, leaf) of nested dicts and lists, integer keys and indices as strings (orbax
  gives string keys where NNX has integers, and may give dicts for lists)."""
  if isinstance(tree, Mapping):
    items = tree.items()
  elif isinstance(tree, list | tuple):
    items = enumerate(tree)
  else:
    return [(prefix, tree)]
  return [leaf for key, sub in items for leaf in leaves(sub, f'{prefix}/{key}')]


def shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """path -> shape of a state tree."""
  return {path: np.shape(leaf) for path, leaf in leaves(tree)}


def state_sha256(state: Any) -> str:
  """SHA-256 of a state tree's arrays, by path (saved and restored trees hash alike)."""
  digest = hashlib.sha256()
  for path, leaf in sorted(leaves(state), key=lambda item: item[0]):
    if isinstance(leaf, jax.Array):  # replicated: any shard is the whole array
      leaf = leaf.addressable_data(0)
    array = np.ascontiguousarray(np.asarray(leaf))
    digest.update(f'{path}{array.shape}'.encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def problem(state: Any, meta: Mapping[str, Any], template: Any = None) -> str | None:
  """What is wrong with a restored state, or None.

  Args:
    state: the restored state.
    meta: its step's meta (steps saved before checksums were recorded are checked for
      shapes and finite values only).
    template: the tree it was restored into, when that was not read from the step itself.
  """
  if template is not None and shapes(state) != shapes(template):
    return 'its shapes are not those it was saved with'
  for path, leaf in leaves(state):
    leaf = np.asarray(leaf)
    if np.issubdtype(leaf.dtype, np.inexact) and not np.all(np.isfinite(leaf)):
      return f'non-finite values in {path}'
  saved = meta.get('state_sha256')
  if saved is not None and saved != state_sha256(state):
    return 'its checksum differs from the one saved: the files were changed'
  return None


def describe(error: Exception) -> str:
  """An exception as one short line."""
  return f'{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ""}'


def warn(message: str) -> None:
  """One warning line on stderr (process 0 only)."""
  if jax.process_index() == 0:
    print(f'warning: {message}', file=sys.stderr, flush=True)


def quiet_failed_restore() -> None:
  """Keeps a failed restore's late callbacks off the terminal (call when a restore fails).

  When orbax gives up on a damaged step, tensorstore still completes the
  step's other reads and calls back into the event loop orbax has closed;
  Python reports each as an unraisable `RuntimeError: Event loop is closed`
  traceback, dozens of them after the one line that says what happened.
  Only that error is dropped; every other unraisable exception still reaches
  the hook that was installed before.
  """
  previous = sys.unraisablehook
  if getattr(previous, 'drops_closed_loop', False):
    return

  def hook(unraisable) -> None:
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and str(error) == 'Event loop is closed'):
      previous(unraisable)

  hook.drops_closed_loop = True
  sys.unraisablehook = hook
