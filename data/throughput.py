"""Input-pipeline throughput beside the fastest student's training-step rate.

Usage:
  python -m data.throughput --batch=16 --steps=200

Reports batches per second of the train iterator in the main process and
with grain worker processes, and the step rate of a distillation step of
the given student (teacher included), so the pipeline can be checked to
keep at least 5x ahead of training; the step rate also under XLA's default
CPU options, to show what `models.compiler`'s options buy training.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np


def pipeline_rate(config, batch: int, steps: int, workers: int) -> float:
  from data import pipeline

  config.workers = workers
  iterator = pipeline.make_iterator(config, 'train', batch_size=batch, model_size=64, train=True)
  for _ in range(5):  # warm up (workers start, first reads)
    next(iterator)
  start = time.perf_counter()
  for _ in range(steps):
    next(iterator)
  return steps / (time.perf_counter() - start)


def step_rate(model_name: str, batch: int, steps: int, *, xla_defaults: bool = False) -> float:
  """Steps per second of the jitted distillation step (student + a default-size teacher).

  `xla_defaults` compiles with XLA's default CPU options instead of
  `models.compiler`'s, to measure what those buy training.
  """
  from flax import nnx

  import models
  from configs import base
  from configs import teacher as teacher_config
  from models import compiler
  from train.step import Student, Teacher, TrainState, make_optimizer, make_train_step

  teacher_options = dict(teacher_config.get_config().model)
  teacher_options.pop('name')
  teacher = Teacher.split(models.create_model('fomm_teacher', teacher_options, rngs=nnx.Rngs(0)))
  model = models.create_model(model_name, rngs=nnx.Rngs(params=0, dropout=0))
  student, params, batch_stats = Student.split(model)
  optim = base.get_base_config(model_name).optim
  optimizer, schedule = make_optimizer(optim, 1000)
  state = TrainState(
    jax.numpy.zeros((), jax.numpy.int32), params, batch_stats, optimizer.init(params)
  )
  weights = {'kp': 1.0, 'jacobian': 1.0, 'heatmap': 0.0, 'attention': 0.0}
  step = (jax.jit if xla_defaults else compiler.jit)(
    make_train_step(student, teacher, optimizer, schedule, weights, attention_p=2.0, seed=0),
    donate_argnums=0,
  )
  rng = np.random.default_rng(0)
  batch_data = {'image': rng.uniform(size=(batch, 64, 64, 3)).astype(np.float32)}
  for _ in range(3):
    state, metrics = step(state, student.rest, teacher.state, batch_data)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, student.rest, teacher.state, batch_data)
  jax.block_until_ready(metrics)
  return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
  from data import pipeline

  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--batch', type=int, default=16)
  parser.add_argument('--steps', type=int, default=200)
  parser.add_argument('--workers', type=int, default=2)
  parser.add_argument('--model', default='l3unet', help='student whose step rate to measure')
  parser.add_argument('--data_dir', default='datasets')
  args = parser.parse_args(argv)
  config = pipeline.default_config()
  config.data_dir = args.data_dir
  pipeline.prepare(config)
  in_process = pipeline_rate(config, args.batch, args.steps, 0)
  with_workers = pipeline_rate(config, args.batch, args.steps, args.workers)
  steps = step_rate(args.model, args.batch, max(args.steps // 10, 10))
  defaults = step_rate(args.model, args.batch, max(args.steps // 10, 10), xla_defaults=True)
  print(
    f'pipeline, batch {args.batch}: {in_process:.1f} batches/s in-process, '
    f'{with_workers:.1f} batches/s with {args.workers} grain workers'
  )
  print(
    f'{args.model} distillation step, batch {args.batch}: {steps:.2f} steps/s '
    f"({defaults:.2f} under XLA's default CPU options)"
  )
  best = max(in_process, with_workers)
  print(f'pipeline / step rate: {best / steps:.1f}x (goal: at least 5x)')


if __name__ == '__main__':
  main()
