"""The training progress bar, whose rate and time left follow the wall clock.

JAX dispatches steps asynchronously: the Python loop runs ahead of the
computation until something reads a result (a logged step's metrics, an
evaluation, a checkpoint). A bar advanced at every dispatched step races
ahead between those reads and stalls at them, and tqdm's moving-average rate
then reports the dispatch rate (the issue's `647/800 [04:20<00:17, 8.90step/s]`
with a minute left). So the bar moves only at steps whose results have been
read, and its rate is the average since the run (or resume) began, with
evaluations included: the time left then covers them too.
"""

from __future__ import annotations

from tqdm import tqdm


class StepProgress:
  """A tqdm bar over `total` steps, starting at `initial` (a resumed run)."""

  def __init__(self, *, total: int, initial: int, desc: str, disable: bool = False):
    self.bar = tqdm(
      total=total,
      initial=initial,
      desc=desc,
      unit='step',
      dynamic_ncols=True,
      smoothing=0,  # the average since the start, not of the last few (dispatch) updates
      disable=disable,
    )

  def reached(self, step: int, **postfix: str) -> None:
    """Step `step` has finished (its results were read): the bar moves to it."""
    if postfix:
      self.bar.set_postfix(postfix, refresh=False)
    self.bar.update(step - self.bar.n)

  @property
  def rate(self) -> float | None:
    """Steps per second since the start, as the bar shows it (None before any step)."""
    return _average_rate(self.bar)

  @property
  def seconds_left(self) -> float | None:
    rate = self.rate
    return (self.bar.total - self.bar.n) / rate if rate else None

  def close(self) -> None:
    self.bar.close()


def _average_rate(bar: tqdm) -> float | None:
  """What tqdm shows with smoothing 0: steps since `initial` over the elapsed time."""
  elapsed = bar.format_dict['elapsed']
  steps = bar.n - bar.format_dict['initial']
  return steps / elapsed if elapsed > 0 and steps > 0 else None
