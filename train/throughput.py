"""Input-pipeline throughput beside a student's distillation-step rate.

Command line: `python -m tools.throughput --batch=16 --steps=200`. The
pipeline should keep at least 5x ahead of training; the step rate is also
measured under XLA's default CPU options, to show what `models.compiler`'s
options buy training.
"""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np
from flax import nnx

import models
from configs import teacher as teacher_config
from data import pipeline
from train.experiment import Experiment


def pipeline_rate(experiment: Experiment, steps: int, workers: int) -> float:
  """Batches per second of the experiment's train iterator with `workers` grain processes."""
  data = ml_collections.ConfigDict(experiment.config.data.to_dict())
  data.workers = workers
  iterator = pipeline.make_iterator(
    data,
    'train',
    batch_size=experiment.config.batch_size,
    model_size=experiment.input_size,
    train=True,
    builder=experiment.dataset,
  )
  for _ in range(5):  # warm up (workers start, first reads)
    next(iterator)
  start = time.perf_counter()
  for _ in range(steps):
    next(iterator)
  return steps / (time.perf_counter() - start)


def storage(builder) -> tuple[float, int]:
  """(megabytes on disk, examples) of a prepared TFDS dataset, all splits."""
  folder = os.fspath(builder.data_dir)
  size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
  count = sum(split.num_examples for split in builder.info.splits.values())
  return size / 1e6, count


def random_teacher(*, vox: bool = False) -> nnx.Module:
  """The default teacher's architecture (configs/teacher.py) with random weights; with `vox`,
  FOMM's vox-256 detector (the model's own defaults), both at the students' input."""
  config = teacher_config.get_config().model
  name = config.name
  options = models.study_config(name, None if vox else config)
  model = models.create_model(name, options, rngs=nnx.Rngs(0))
  model.eval()
  return model


def step_rate(experiment: Experiment, steps: int, *, xla_defaults: bool = False) -> float:
  """Steps per second of the experiment's jitted train step on random images.

  `xla_defaults` compiles with XLA's default CPU options instead of
  `models.compiler`'s, to measure what those buy training.
  """
  step = (
    jax.jit(experiment.train_step_fn(), donate_argnums=0) if xla_defaults else experiment.train_step
  )
  size, batch_size = experiment.input_size, experiment.config.batch_size
  images = np.random.default_rng(0).uniform(size=(batch_size, size, size, 3)).astype(np.float32)
  batch = experiment.put({'image': images})
  state = jax.device_put(experiment.initial_state(), experiment.replicated)
  rest, teacher_state = experiment.rest, experiment.teacher_state
  for _ in range(3):
    state, metrics = step(state, rest, teacher_state, batch)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, rest, teacher_state, batch)
  jax.block_until_ready(metrics)
  return steps / (time.perf_counter() - start)
