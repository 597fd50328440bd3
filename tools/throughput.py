"""Input-pipeline throughput beside a student's distillation-step rate.

  python -m tools.throughput --batch=16 --steps=200 [--model=l3unet] [--workers=2]
  python -m tools.throughput --manual_dir=/tmp/demo-vox --model=squeeze_encdec

Reports batches per second of the train iterator in the main process and
with grain worker processes, and the step rate of the distillation step of
the given student (with a teacher of the default architecture, random
weights), so the pipeline can be checked to keep at least 5x ahead of
training; the step rate also under XLA's default CPU options. With
--manual_dir, the data is that folder as `frames` (256x256 PNG frames,
decoded and anti-alias downsampled in the pipeline), the teacher has FOMM's
vox-256 widths, and the prepared dataset's disk use per 1,000 frames is
reported too.
"""

from __future__ import annotations

import sys

from absl import flags

from tools import cli

_BATCH = flags.DEFINE_integer('batch', 16, 'batch size')
_STEPS = flags.DEFINE_integer('steps', 200, 'batches to time (a tenth as many train steps)')
_WORKERS = flags.DEFINE_integer('workers', 2, 'grain worker processes for the second reading')
_MODEL = flags.DEFINE_string('model', 'l3unet', 'student whose step rate to measure')
_DATA_DIR = flags.DEFINE_string('data_dir', 'datasets', 'where the prepared dataset lives')
_MANUAL_DIR = flags.DEFINE_string('manual_dir', '', 'a folder in FOMM layout: measure `frames`')
_FRAMES = flags.DEFINE_integer('frames_per_video', 32, '`frames`: frames kept per video')
_ENCODING = flags.DEFINE_enum('encoding', 'png', ['png', 'jpeg'], '`frames`: how frames are stored')


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from configs import base, vox
  from train import throughput
  from train.experiment import Experiment

  config = base.get_base_config(_MODEL.value)
  config.batch_size = _BATCH.value
  frames = bool(_MANUAL_DIR.value)
  if frames:  # configs/vox.py's data: 256x256 frames, FOMM's sampling
    config.data = vox.get_config().data
    config.data.manual_dir = _MANUAL_DIR.value
    config.data.frames_per_video, config.data.encoding = _FRAMES.value, _ENCODING.value
  config.data.data_dir = _DATA_DIR.value
  try:  # a bad model name or data folder: one line
    experiment = Experiment(config, teacher_model=throughput.random_teacher(vox=frames))
    builder = experiment.dataset
  except ValueError as error:
    sys.exit(f'error: {error}')
  if frames:
    megabytes, count = throughput.storage(builder)
    print(
      f'frames: {count} frames stored in {megabytes:.1f} MB, '
      f'{1000 * megabytes / count:.1f} MB per 1,000 frames'
    )
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
