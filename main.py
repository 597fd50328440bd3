"""Distils a small keypoint detector from FOMM's (or trains the teacher).

python main.py --config=configs/edgeseg.py
python main.py --config=configs/edgeseg.py --config.optim.lr=1e-3 --workdir=workdirs/lr1e-3
python main.py --config=configs/edgeseg.py --mode=eval
python main.py --config=configs/edgeseg.py:smoke

Two steps, in this order: when the config distils from a teacher that is
not there yet (and the data is the embedded synthetic set), the default
teacher (configs/teacher.py) is trained first in `config.teacher.checkpoint`;
then the student. Both resume from their checkpoints when rerun. Every folder
either step writes is checked first, and the run holds its workdir's lock
from the start: a second run on it stops at once. On SIGTERM or Ctrl-C a run
saves a checkpoint at the step reached and exits with status 143 or 130.
"""

import os
import sys

from absl import flags, logging
from ml_collections import config_flags

from tools import cli

# Unlocked, accepting new fields: any model option can be set from the command
# line (configs hold only the options they change); train.config_checks
# rejects unknown fields with the valid ones named.
_CONFIG = config_flags.DEFINE_config_file(
  'config',
  None,
  'Experiment config file (path.py[:arg]).',
  lock_config=False,
  accept_new_attributes=True,
)
_WORKDIR = flags.DEFINE_string(
  'workdir',
  None,
  'Where checkpoints, metrics and results go (default: workdirs/<config file stem>).',
)
_MODE = flags.DEFINE_enum(
  'mode',
  'train',
  ['train', 'eval'],
  'train (resumes from the workdir) or eval (restores the best checkpoint).',
)
_MULTIHOST = flags.DEFINE_bool(
  'multihost',
  False,
  'One process of a multi-process run: call jax.distributed.initialize() first (on '
  'clusters it finds its peers itself; else give the three flags below).',
)
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'host:port of process 0')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'processes in the run')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, "this process's index")


def _default_workdir() -> str:
  """workdirs/<config file stem>: configs/edgeseg.py:smoke -> workdirs/edgeseg."""
  path = config_flags.get_config_filename(flags.FLAGS['config'])
  return os.path.join('workdirs', os.path.splitext(os.path.basename(path))[0])


def run(config, workdir: str, mode: str) -> None:
  """Teacher first (if it is missing), then the student; or evaluates the workdir."""
  from data import pipeline
  from train import evaluate, loop, teacher
  from train import workdir as workdirs
  from train.experiment import Experiment

  if mode == 'eval':
    if config.task == 'fomm':  # its validations are in the run's metrics.jsonl and results.json
      raise ValueError(
        "--mode=eval evaluates a keypoint run; FOMM's run validates itself (WORKDIR/metrics.jsonl, "
        'results.json): score its detector with python -m tools.landmark_regression.'
      )
    evaluate.evaluate_workdir(Experiment(config, workdir))
    return
  teacher_config = teacher.teacher_to_train(config)
  pipeline.make_builder(config.data)  # a video folder's layout, before any folder is made
  # Every folder either step writes, checked before the first (minutes) begins.
  with workdirs.lock(workdir):
    workdirs.check_folder(
      config.data.data_dir,
      'the data folder',
      'pass another with --config.data.data_dir',
      write=False,
    )
    if teacher_config is not None:
      workdirs.check_folder(
        config.teacher.checkpoint,
        'the teacher folder',
        'pass a writable one with --config.teacher.checkpoint',
      )
      variant = f':{config.teacher.train_variant}' if config.teacher.train_variant else ''
      print(
        f'step 1 of 2: no finished teacher at {os.path.abspath(config.teacher.checkpoint)}: '
        f'training the default one there (configs/teacher.py{variant})',
        flush=True,
      )
      loop.train_and_evaluate(teacher_config, config.teacher.checkpoint)
      print('step 2 of 2: distilling the student', flush=True)
    loop.train_and_evaluate(config, workdir)


def main(argv):
  cli.no_positional(argv)
  import jax

  from train import config_checks

  if _MULTIHOST.value:
    # Collectives between CPU processes (GPUs and TPUs bring their own; this is unused there).
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(
      coordinator_address=_COORDINATOR.value,
      num_processes=_NUM_PROCESSES.value,
      process_id=_PROCESS_ID.value,
    )
  config = _CONFIG.value
  try:
    config_checks.validate(config)
  except OSError as error:  # ml_collections defers a config file's load error to first use
    reason = ' '.join(str(error.__cause__ or error).split())
    sys.exit(f'error: cannot load the --config file: {reason}')
  except ValueError as error:
    sys.exit(f'error: {error}')
  logging.info('devices: %s', jax.devices())
  logging.info('config:\n%s', config)
  from train.preemption import Preempted

  try:
    run(config, _WORKDIR.value or _default_workdir(), _MODE.value)
  except Preempted as stopped:
    print(stopped, file=sys.stderr, flush=True)
    sys.exit(stopped.exit_status)
  except (ValueError, RuntimeError) as error:
    if logging.get_verbosity() >= logging.DEBUG:  # --verbosity=1: the whole traceback
      raise
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  flags.mark_flag_as_required('config')
  cli.run(main)
