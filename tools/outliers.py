"""Which validation images blow a trained student's jacobians up, and whether BatchNorm is why.

  python -m tools.outliers --workdir=workdirs/squeeze_unet_dsc [--step=800] [--top=5] [--precise_bn]

Restores a checkpoint of the workdir (the best by default), runs the
validation split with BatchNorm's running and with batch statistics, and
prints the largest jacobian entry per image under both, the worst images
and the BatchNorm channels with the smallest running variance
(`train.outliers` explains why those matter); then the same for the
validation images under plausible perturbations (noise, brightness,
contrast, blur; `train.outliers.PERTURBATIONS`), with how far they move the
keypoints. `--precise_bn` first re-estimates the statistics as training now
does before each evaluation (`train.precise_bn`), to check an older run.
"""

from __future__ import annotations

import sys

from absl import flags

from tools import cli

_WORKDIR = flags.DEFINE_string('workdir', None, 'a training workdir', required=True)
_STEP = flags.DEFINE_integer('step', None, 'checkpoint step (default: the best)')
_TOP = flags.DEFINE_integer('top', 5, 'worst images and BatchNorm channels to list')
_PRECISE = flags.DEFINE_bool(
  'precise_bn', False, 're-estimate BatchNorm statistics first (checkpoints saved without)'
)


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from train import outliers
  from train.checkpoints import CheckpointError

  try:
    found = outliers.inspect(_WORKDIR.value, _STEP.value, precise=_PRECISE.value)
  except CheckpointError as error:
    sys.exit(f'error: {error}')
  print(outliers.report(found, _TOP.value))


if __name__ == '__main__':
  cli.run(main)
