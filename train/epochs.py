"""Schedules in epochs of the dataset's own size, turned into steps when a run starts.

A config with `epochs` > 0 (`:paper`, configs/vox.py) counts its schedule in
epochs: `data.pipeline.epoch_size` examples each (the train split, or on
`frames` every video `num_repeats` times, as FOMM counts). The run's length,
its lr milestones (`milestone_epochs`), and its evaluation and checkpoint
cadence (every `eval_every_epochs`) become steps once the dataset is known.
"""

from __future__ import annotations

import ml_collections


def steps_per_epoch(config: ml_collections.ConfigDict, epoch_size: int) -> int:
  return max(1, epoch_size // config.batch_size)


def in_steps(config: ml_collections.ConfigDict, epoch_size: int) -> ml_collections.ConfigDict:
  """A copy of `config` with its epoch schedule in steps (`config` itself if it has none)."""
  if not config.get('epochs'):
    return config
  epoch = steps_per_epoch(config, epoch_size)
  config = config.copy_and_resolve_references()
  config.num_steps = config.epochs * epoch
  config.optim.milestones = tuple(int(e * epoch) for e in config.milestone_epochs)
  config.eval_every = config.checkpoint_every = max(1, int(config.eval_every_epochs * epoch))
  return config
