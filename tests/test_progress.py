"""The training bar's rate and time left follow the wall clock (a fake one here)."""

import pytest
import tqdm.std

from train.progress import StepProgress


@pytest.fixture
def clock(monkeypatch):
  now = [1000.0]
  monkeypatch.setattr(tqdm.std, 'time', lambda: now[0])  # tqdm reads it at creation
  return now


def _run(clock, progress, *, start, stop, seconds_per_step, read_every):
  """Steps dispatched at once, each taking `seconds_per_step` to compute; the loop
  reads a result (and so waits for it) every `read_every` steps, as it does at a log."""
  for step in range(start + 1, stop + 1):
    if step % read_every == 0:
      clock[0] += read_every * seconds_per_step  # waiting for the queued steps
      progress.reached(step, loss='0.1')


def test_rate_and_time_left_match_the_wall_clock(clock):
  progress = StepProgress(total=800, initial=0, desc='edgesegnet')
  _run(clock, progress, start=0, stop=650, seconds_per_step=0.4, read_every=25)
  assert progress.bar.n == 650
  assert progress.rate == pytest.approx(2.5)  # 650 steps in 260 s
  assert progress.seconds_left == pytest.approx(60.0)  # 150 steps at 0.4 s
  shown = str(progress.bar)
  assert '650/800 [04:20<01:00,  2.50step/s, loss=0.1]' in shown, shown
  progress.close()


def test_a_resumed_run_counts_only_its_own_steps(clock):
  progress = StepProgress(total=800, initial=600, desc='edgesegnet')
  _run(clock, progress, start=600, stop=700, seconds_per_step=0.5, read_every=25)
  assert progress.rate == pytest.approx(2.0) and progress.seconds_left == pytest.approx(50.0)
  progress.close()


def test_an_evaluation_slows_the_rate_it_is_part_of(clock):
  progress = StepProgress(total=800, initial=0, desc='edgesegnet')
  _run(clock, progress, start=0, stop=400, seconds_per_step=0.4, read_every=25)
  clock[0] += 40.0  # an evaluation at step 400
  progress.reached(400)
  assert progress.rate == pytest.approx(400 / 200.0)
  progress.close()
