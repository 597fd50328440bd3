"""Distils a small keypoint detector from FOMM's (or trains the teacher).

python main.py --config=configs/edgeseg.py
python main.py --config=configs/edgeseg.py --config.optim.lr=1e-3 --workdir=workdirs/lr1e-3
python main.py --config=configs/edgeseg.py --mode=eval
python main.py --config=configs/edgeseg.py:smoke
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file (path.py[:arg]).',
                                          lock_config=True)  # fmt: skip
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Where checkpoints, metrics and results go (default: '
                               'workdirs/<config file stem>).')  # fmt: skip
_MODE = flags.DEFINE_enum(
  'mode',
  'train',
  ['train', 'eval'],
  'train (resumes from the workdir) or eval (restores the best checkpoint).',
)
_MULTIHOST = flags.DEFINE_bool('multihost', False, 'Call jax.distributed.initialize() first.')


def _default_workdir() -> str:
  """workdirs/<config file stem>: configs/edgeseg.py:smoke -> workdirs/edgeseg."""
  path = config_flags.get_config_filename(flags.FLAGS['config'])
  return os.path.join('workdirs', os.path.splitext(os.path.basename(path))[0])


def main(argv):
  del argv
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
  import jax

  if _MULTIHOST.value:
    jax.distributed.initialize()
  from train import loop

  config = _CONFIG.value
  workdir = _WORKDIR.value or _default_workdir()
  logging.info('devices: %s', jax.devices())
  logging.info('config:\n%s', config)
  try:
    if _MODE.value == 'eval':
      loop.evaluate_only(config, workdir)
    else:
      loop.train_and_evaluate(config, workdir)
  except (ValueError, RuntimeError, FileExistsError) as error:
    if logging.get_verbosity() >= logging.DEBUG:  # --verbosity=1: the whole traceback
      raise
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  flags.mark_flag_as_required('config')
  app.run(main)
