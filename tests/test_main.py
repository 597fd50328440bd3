"""main.py's checks before any work: config values, command-line overrides and flags, the
config file, the workdir (one line each); the default workdir.

In-process (`train.config_checks`, main.py's main under its flag parsing), with one
subprocess per way a command line goes wrong for main.py's wiring.
"""

import os

import commands
import pytest
from smoke import smoke_config

from train import loop
from train.config_checks import ConfigError, validate


@pytest.mark.parametrize(
  'key,value,message',
  [
    ('optim.lr', -1.0, 'optim.lr must be positive'),
    ('batch_size', 0, 'batch_size must be positive'),
    ('optim.milestones', (10,), 'must lie inside (0, num_steps=6)'),
    ('loss.kp', -0.5, 'loss.kp must be >= 0'),
    ('data.image_size', 72, 'cannot be downsampled'),
    ('model.fold', 3, 'multiples of 24'),
    ('model.folds', 3, 'unknown option(s) folds for model'),
    ('optim.lrr', 1e-3, 'unknown field optim.lrr (did you mean lr?)'),
    ('bogus', 1, 'unknown field bogus; valid fields: batch_size'),
  ],
)
def test_bad_config_values_fail_with_one_line(shared, key, value, message):
  config = smoke_config('l3unet', shared)
  section, _, leaf = key.rpartition('.')
  (config[section] if section else config)[leaf] = value
  with pytest.raises(ConfigError) as error:
    validate(config)
  assert message in str(error.value) and '\n' not in str(error.value)


@pytest.mark.parametrize(
  'flag,last_line',
  [
    # The three ways a command line goes wrong: a field the config lacks (checked by
    # train.config_checks, like every value), a group it lacks (ml_collections), a
    # value of the wrong type (absl). The values themselves: test_bad_config_values.
    ('--config.bogus=1', 'error: config: unknown field bogus; valid fields: '),
    pytest.param(
      '--config.nosuch.field=1', 'error: bad command-line override: ', marks=pytest.mark.slow
    ),
    pytest.param(
      '--config.optim.lr=abc', 'error: flag --config.optim.lr=abc: ', marks=pytest.mark.slow
    ),
  ],
)
def test_cli_rejects_typos_and_bad_values_in_one_line(shared, tmp_path, flag, last_line):
  result = commands.run(
    'main.py',
    '--config=configs/edgeseg.py:smoke',
    f'--config.teacher.checkpoint={shared / "teacher"}',
    f'--config.data.data_dir={shared / "data"}',
    f'--workdir={tmp_path}',
    flag,
    timeout=120,
  )
  line = commands.last_error_line(result)  # a failure, without a traceback
  assert line.startswith(last_line), result.stderr
  assert not (tmp_path / 'checkpoints').exists()


@pytest.mark.parametrize(
  'flag,line',
  [
    ('--config.nosuch.field=1', 'error: bad command-line override: '),
    ('--config.optim.lr=abc', 'error: flag --config.optim.lr=abc: '),
  ],
)
def test_flag_parsing_turns_a_bad_group_or_type_into_one_line(flag, line, monkeypatch):
  """In-process: main.py's flags through tools.cli's parser (one subprocess above)."""
  import main  # noqa: F401  (defines --config)
  from tools import cli

  argv = ['main.py', '--config=configs/edgeseg.py:smoke', flag]
  monkeypatch.setattr('sys.argv', argv)  # ml_collections finds the overrides in sys.argv
  with pytest.raises(SystemExit) as exit_:
    cli.parse_flags(argv)
  message = str(exit_.value.code)
  assert message.startswith(line) and '\n' not in message, message


def test_a_config_file_that_cannot_be_loaded_is_one_line(tmp_path):
  """In-process, main.py's main under its flag parsing (its subprocess: the test above)."""
  line = commands.one_line(
    commands.in_process('main', '--config=configs/nope.py', f'--workdir={tmp_path}')
  )
  assert line.startswith('error: cannot load the --config file: ') and 'nope.py' in line


def test_a_workdir_that_cannot_be_created_is_one_line(shared):
  with pytest.raises(loop.WorkdirError) as error:
    loop.train_and_evaluate(smoke_config('edgeseg', shared), '/proc/no/such/workdir')
  assert str(error.value).startswith('cannot create the workdir /proc/no/such/workdir (')
  assert '--workdir' in str(error.value) and '\n' not in str(error.value)


def test_default_workdir_is_named_after_the_config_file(monkeypatch):
  import main
  from tools import cli

  argv = ['main.py', '--config=configs/edgeseg.py:smoke']
  monkeypatch.setattr('sys.argv', argv)  # ml_collections finds the overrides in sys.argv
  cli.parse_flags(argv)
  assert main._default_workdir() == os.path.join('workdirs', 'edgeseg')
