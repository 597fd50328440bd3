"""Preemption: a SIGTERM (or Ctrl-C) ends a run at a checkpoint instead of losing its work.

The loop asks `Watch.due(step)` after each step; when a signal came, it saves
a checkpoint at that step and raises `Preempted`, which main.py turns into one
line and the conventional exit status (143 for SIGTERM, 130 for SIGINT).
Rerunning the command resumes there, bit for bit as if never stopped.

One process: a Python handler sets a flag (the step under way finishes first);
the previous handlers come back when the loop ends, or at a second signal,
which then acts as it would have without them (Ctrl-C twice: stop now). Several processes: every
process must save at the same step, so no Python handler is installed and
JAX's preemption service (started by `jax.distributed.initialize`, which
catches SIGTERM itself) decides, through
`multihost_utils.reached_preemption_sync_point(step)`: true on every process
at the same step. orbax's `CheckpointManager.reached_preemption` wraps the
same call, but the loop decides, not the checkpoint writer.
"""

from __future__ import annotations

import signal
import threading

import jax

_EXIT_STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130}


class Preempted(Exception):  # noqa: N818 (not an error: the run stopped as asked)
  """The run stopped at a checkpoint on a signal; rerunning resumes there."""

  def __init__(self, signum: int, step: int):
    self.signum, self.step = signum, step
    self.exit_status = _EXIT_STATUS.get(signum, 128 + signum)
    super().__init__(
      f'preempted by {signal.Signals(signum).name} at step {step}: saved a checkpoint there; '
      'rerun the same command to resume'
    )


class Watch:
  """A context manager that records SIGTERM and SIGINT while a loop runs."""

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, object] = {}

  def _handle(self, signum, frame) -> None:
    del frame
    if self.signum is not None:  # asked twice: stop now, as if this handler were not there
      self.__exit__()
      signal.raise_signal(signum)
      return
    self.signum = signum

  def __enter__(self) -> Watch:
    # Handlers can only be set from the main thread of the only process.
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      for signum in _EXIT_STATUS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def due(self, step: int) -> bool:
    """Whether the run must stop after `step` (the same answer on every process)."""
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils

      # Called at every step on every process, as the sync protocol requires.
      if multihost_utils.reached_preemption_sync_point(step):
        self.signum = signal.SIGTERM
        return True
      return False
    return self.signum is not None
