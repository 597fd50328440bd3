"""Input-pipeline throughput beside a student's distillation-step rate.

  python -m tools.throughput --batch=16 --steps=200 [--model=l3unet] [--workers=2]

Reports batches per second of the train iterator in the main process and
with grain worker processes, and the step rate of the distillation step of
the given student (with a teacher of the default architecture, random
weights), so the pipeline can be checked to keep at least 5x ahead of
training; the step rate also under XLA's default CPU options.
"""

from __future__ import annotations

from absl import flags

from tools import cli

_BATCH = flags.DEFINE_integer('batch', 16, 'batch size')
_STEPS = flags.DEFINE_integer('steps', 200, 'batches to time (a tenth as many train steps)')
_WORKERS = flags.DEFINE_integer('workers', 2, 'grain worker processes for the second reading')
_MODEL = flags.DEFINE_string('model', 'l3unet', 'student whose step rate to measure')
_DATA_DIR = flags.DEFINE_string('data_dir', 'datasets', 'where the prepared dataset lives')


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from configs import base
  from train import throughput
  from train.experiment import Experiment

  config = base.get_base_config(_MODEL.value)
  config.batch_size = _BATCH.value
  config.data.data_dir = _DATA_DIR.value
  experiment = Experiment(config, teacher_model=throughput.random_teacher())
  in_process = throughput.pipeline_rate(experiment, _STEPS.value, 0)
  with_workers = throughput.pipeline_rate(experiment, _STEPS.value, _WORKERS.value)
  steps = max(_STEPS.value // 10, 10)
  rate = throughput.step_rate(experiment, steps)
  defaults = throughput.step_rate(experiment, steps, xla_defaults=True)
  print(
    f'pipeline, batch {_BATCH.value}: {in_process:.1f} batches/s in-process, '
    f'{with_workers:.1f} batches/s with {_WORKERS.value} grain workers'
  )
  print(
    f'{_MODEL.value} distillation step, batch {_BATCH.value}: {rate:.2f} steps/s '
    f"({defaults:.2f} under XLA's default CPU options)"
  )
  print(f'pipeline / step rate: {max(in_process, with_workers) / rate:.1f}x (goal: at least 5x)')


if __name__ == '__main__':
  cli.run(main)
