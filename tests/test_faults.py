"""Faults a user meets: two runs on one workdir, damaged checkpoints, preemption, a failed
save, a workdir that cannot be created, files that are not FOMM checkpoints.

In-process on the shared smoke runs (`conftest.py`), copied before they are damaged; one
subprocess (`--mode=eval` on a workdir whose every step is damaged) sees main.py's wiring.
"""

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys

import commands
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import torch
from smoke import smoke_config

import main
from torch_twins import fomm_checkpoint
from train import checkpoints, loop
from train.checkpoints import CheckpointError
from train.experiment import Experiment
from train.preemption import Preempted, Watch
from train.workdir import WorkdirError


def _copy(edgeseg_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(edgeseg_run[0], workdir)
  return workdir


def _params(workdir, step):
  path = os.path.join(workdir, 'checkpoints', str(step), 'state')
  return jax.tree.leaves(ocp.PyTreeCheckpointer().restore(path)['params'])


def _assert_same_params(a, b, step):
  for x, y in zip(_params(a, step), _params(b, step), strict=True):
    np.testing.assert_array_equal(x, y)


def _files(workdir):
  return {p: p.stat().st_mtime_ns for p in workdir.rglob('*') if p.name != '.lock'}


# ------------------------------------------------------------------ one run per workdir


def _hold_lock(workdir):
  """A child process holding the workdir's lock, as a first run would."""
  code = (
    'import sys, time; from train.workdir import lock; held = lock(sys.argv[1]); held.__enter__(); '
    'print("held", flush=True); time.sleep(300)'
  )
  child = subprocess.Popen(
    [sys.executable, '-c', code, str(workdir)],
    cwd=commands.ROOT,
    stdout=subprocess.PIPE,
    text=True,
  )
  assert child.stdout.readline().strip() == 'held'
  return child


def test_a_second_run_is_refused_and_a_killed_runs_lock_does_not_block(
  shared, edgeseg_run, tmp_path
):
  workdir = _copy(edgeseg_run, tmp_path)
  before = _files(workdir)
  first = _hold_lock(workdir)
  try:
    line = f'the workdir {workdir} is in use by another run (host {socket.gethostname()}, pid '
    config = smoke_config('edgeseg', shared)
    with pytest.raises(WorkdirError) as error:
      main.run(config, str(workdir), 'train')
    assert str(error.value).startswith(f'{line}{first.pid}); wait for it to finish or stop it')
    with pytest.raises(WorkdirError, match='is in use by another run'):
      loop.train_and_evaluate(config, str(workdir))
    assert _files(workdir) == before  # the first run's work is untouched
  finally:
    first.kill()  # a crash: the OS releases its lock, its .lock file stays
    first.wait()
  assert (workdir / '.lock').exists()
  assert loop.train_and_evaluate(config, str(workdir))['steps'] == 6


# ------------------------------------------------------------------ damaged checkpoints


def _biggest(folder):
  return max((p for p in folder.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate(step_dir):
  path = _biggest(step_dir / 'state')
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_bit(step_dir):
  """One bit of the weights: orbax restores it without complaint, the checksum does not.

  The files are zstd frames, mostly stored as they are: a flipped bit there changes one
  value. Where it falls in a compressed block, the block decodes to other values, which
  may not be finite (then the check reports those first): the next offset is tried.
  """
  path, state = _biggest(step_dir / 'state'), str(step_dir / 'state')
  original = path.read_bytes()
  for offset in range(len(original) // 2, len(original), 4099):
    data = bytearray(original)
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))
    try:
      leaves = jax.tree.leaves(ocp.PyTreeCheckpointer().restore(state))
    except Exception:  # orbax noticed: not the damage this is for
      continue
    if all(np.all(np.isfinite(leaf)) for leaf in leaves):
      return
  raise AssertionError(f'no bit of {path} flips into finite values')


def _drop_metadata(step_dir):
  """The state's array metadata (a resume restores into its own template without it)."""
  (step_dir / 'state' / '_METADATA').unlink()


def _drop_meta(step_dir):
  """The step's meta item: the model, its options, the config and the checksum."""
  (step_dir / 'meta' / 'metadata').unlink()


def _assert_moved_aside(workdir, step, damaged, warning):
  """`step` moved aside to STEP.damaged, byte for byte (where orbax does not look)."""
  aside = workdir / 'checkpoints' / f'{step}.damaged'
  assert warning.startswith(f'warning: checkpoint {workdir}/checkpoints/{step}')
  assert ' cannot be restored (' in warning
  assert warning.endswith(f'; moved it aside to {aside} and trying the step before')
  assert {p.relative_to(aside) for p in _files(aside)} == {
    p.relative_to(workdir / 'checkpoints' / str(step)) for p in damaged
  }


# (A failed restore's late 'Event loop is closed' reports: pytest swaps sys.unraisablehook
# around each test, so the subprocess test of an all-damaged workdir checks they stay quiet.)
# Each resume retrains steps 4 to 6 (about 7 s of CPU): the fast tier resumes past one kind
# of damage; the others are moved aside by the same resume in the test after this one.
@pytest.mark.parametrize(
  'damage',
  [_truncate, pytest.param(_flip_a_bit, marks=pytest.mark.slow),
   pytest.param(_drop_meta, marks=pytest.mark.slow)],
)  # fmt: skip
def test_resume_moves_a_damaged_latest_step_aside_and_goes_on_from_the_one_before(
  shared, edgeseg_run, tmp_path, capfd, damage
):
  workdir = _copy(edgeseg_run, tmp_path)
  damage(workdir / 'checkpoints' / '6')
  damaged = _files(workdir / 'checkpoints' / '6')
  loop.train_and_evaluate(smoke_config('edgeseg', shared), str(workdir))
  out, err = capfd.readouterr()
  warning = next(line for line in err.splitlines() if line.startswith('warning:'))
  _assert_moved_aside(workdir, 6, damaged, warning)
  assert 'resuming from step 3' in out
  assert 'Traceback' not in err and 'Event loop is closed' not in err
  _assert_same_params(edgeseg_run[0], workdir, 6)  # steps 4 to 6 retrained exactly


def test_resume_moves_every_kind_of_damage_aside_newest_first(shared, edgeseg_run, tmp_path, capfd):
  """The resume of the loop (`Writer.resume`, into the run's initial state) on flipped
  weights at step 6 and a lost meta at step 3: both moved aside, nothing left to resume."""
  workdir = _copy(edgeseg_run, tmp_path)
  _flip_a_bit(workdir / 'checkpoints' / '6')
  _drop_meta(workdir / 'checkpoints' / '3')
  damaged = {step: _files(workdir / 'checkpoints' / str(step)) for step in (6, 3)}
  experiment = Experiment(smoke_config('edgeseg', shared), str(workdir))
  assert experiment.checkpoints.resume(lambda meta: None, experiment.initial_state()) is None
  experiment.checkpoints.close()
  err = capfd.readouterr().err
  warnings = [line for line in err.splitlines() if line.startswith('warning:')]
  assert len(warnings) == 2 and 'Traceback' not in err
  assert 'its checksum differs from the one saved' in warnings[0]
  for (step, files), warning in zip(damaged.items(), warnings, strict=True):
    _assert_moved_aside(workdir, step, files, warning)
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['3.damaged', '6.damaged']


def test_readers_skip_a_damaged_best_step_and_leave_it_in_place(edgeseg_run, tmp_path, capfd):
  workdir = _copy(edgeseg_run, tmp_path)
  with checkpoints.Reader(workdir) as reader:
    best = reader.best_step()
  other = 3 if best == 6 else 6
  _flip_a_bit(workdir / 'checkpoints' / str(best))
  before = _files(workdir)
  _, meta = checkpoints.restore_model(workdir)
  assert meta['step'] == other
  assert capfd.readouterr().err.strip() == (
    f'warning: checkpoint {workdir}/checkpoints/{best}/state cannot be restored (its checksum '
    'differs from the one saved: the files were changed); skipping it (left in place)'
  )
  assert _files(workdir) == before
  with pytest.raises(CheckpointError) as error:  # asked for by number: no fallback
    checkpoints.restore_model(workdir, best)
  assert str(error.value).endswith(
    'pick another step, or none to use the newest one that restores.'
  )


def test_eval_on_a_workdir_whose_every_step_is_damaged_is_one_line(shared, edgeseg_run, tmp_path):
  workdir = _copy(edgeseg_run, tmp_path)
  for step in ('3', '6'):
    _drop_metadata(workdir / 'checkpoints' / step)
  result = commands.run(
    'main.py',
    '--config=configs/edgeseg.py:smoke',
    '--mode=eval',
    f'--workdir={workdir}',
    f'--config.data.data_dir={shared / "data"}',
    f'--config.teacher.checkpoint={shared / "teacher"}',
  )
  line = commands.last_error_line(result)  # the last line: nothing printed after it
  assert line.startswith(
    f'error: no checkpoint in {workdir}/checkpoints can be restored (steps 3, 6 are damaged; '
  )
  assert line.endswith('retrain with main.py, or restore the folder from a copy.')
  assert 'Event loop is closed' not in result.stderr
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['3', '6']  # eval moves nothing


def test_a_failed_save_is_one_line_and_keeps_the_earlier_steps(
  shared, edgeseg_run, tmp_path, monkeypatch
):
  workdir = _copy(edgeseg_run, tmp_path)
  save = ocp.CheckpointManager.save

  def disk_full(self, step, *args, **kwargs):
    if step == 9:
      raise OSError(errno.ENOSPC, 'No space left on device')
    return save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', disk_full)
  with pytest.raises(CheckpointError) as error:
    loop.train_and_evaluate(smoke_config('edgeseg', shared, num_steps=9), str(workdir))
  assert str(error.value) == (
    f'cannot save the checkpoint of step 9 in {workdir}/checkpoints (OSError: [Errno 28] No '
    'space left on device); the earlier steps are intact: free space or fix the folder, then '
    'rerun to resume.'
  )
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['3', '6']
  assert checkpoints.restore_model(workdir, 6)[1]['step'] == 6


# ------------------------------------------------------------------------ preemption


def test_sigterm_saves_the_step_reached_and_a_rerun_finishes_identically(
  shared, edgeseg_run, tmp_path, monkeypatch
):
  log_train = loop._log_train

  def preempted_at_2(log, progress, step, *args):
    log_train(log, progress, step, *args)
    if step == 2:  # a real signal, mid-run, to the loop's thread (handled before step 3)
      signal.raise_signal(signal.SIGTERM)

  handler = signal.getsignal(signal.SIGTERM)
  monkeypatch.setattr(loop, '_log_train', preempted_at_2)
  with pytest.raises(Preempted) as stopped:
    loop.train_and_evaluate(smoke_config('edgeseg', shared), str(tmp_path))
  assert str(stopped.value) == (
    'preempted by SIGTERM at step 2: saved a checkpoint there; rerun the same command to resume'
  )
  assert stopped.value.exit_status == 143 and signal.getsignal(signal.SIGTERM) == handler
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2']
  monkeypatch.undo()
  loop.train_and_evaluate(smoke_config('edgeseg', shared), str(tmp_path))
  _assert_same_params(edgeseg_run[0], tmp_path, 6)


def test_a_second_signal_stops_at_once():
  # The second signal goes to the handler from before the Watch: make it Python's own,
  # whatever an earlier test on this worker left there (a pool may ignore SIGINT).
  original = signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    # raise_signal, not os.kill: kill() may deliver to another thread (XLA's), and then
    # Python runs the handler at some later bytecode; raise() runs it before returning.
    with Watch() as watch, pytest.raises(KeyboardInterrupt):
      signal.raise_signal(signal.SIGINT)
      assert watch.due(1) and watch.signum == signal.SIGINT
      signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
  finally:
    signal.signal(signal.SIGINT, original)


def test_main_turns_a_preemption_into_its_line_and_exit_status(tmp_path, monkeypatch, capsys):
  from tools import cli

  argv = ['main.py', '--config=configs/edgeseg.py:smoke', f'--workdir={tmp_path}']
  monkeypatch.setattr('sys.argv', argv)
  cli.parse_flags(argv)

  def preempted(*args):
    raise Preempted(signal.SIGINT, 17)

  monkeypatch.setattr(main, 'run', preempted)
  with pytest.raises(SystemExit) as exit_:
    main.main(['main.py'])
  assert exit_.value.code == 130
  assert capsys.readouterr().err.strip().splitlines()[-1] == (
    'preempted by SIGINT at step 17: saved a checkpoint there; rerun the same command to resume'
  )


# --------------------------------------------------------- folders checked before work


def test_folders_are_checked_before_the_teacher_is_trained(shared, tmp_path):
  config = smoke_config('edgeseg', shared)
  config.teacher.checkpoint = str(tmp_path / 'teacher')  # missing: step 1 would train it
  with pytest.raises(WorkdirError) as error:
    main.run(config, '/proc/nope/x', 'train')
  assert str(error.value).startswith('cannot create the workdir /proc/nope/x (')
  assert not (tmp_path / 'teacher').exists()
  config.teacher.checkpoint = '/proc/nope/teacher'
  with pytest.raises(WorkdirError, match='^cannot create the teacher folder /proc/nope/teacher'):
    main.run(config, str(tmp_path / 'student'), 'train')
  assert not (tmp_path / 'student' / 'checkpoints').exists()


# ------------------------------------------------------------------ converter causes


def test_the_converter_tells_a_missing_file_from_a_foreign_one_from_one_that_runs_code(
  tmp_path,
):
  causes = {}
  for name, content in [
    ('random.pth.tar', os.urandom(4096)),
    ('notes.pth.tar', b'hello\n' * 100),
  ]:
    (tmp_path / name).write_bytes(content)
  torch.save({'kp_detector': {'kp.weight': torch.zeros(1)}}, tmp_path / 'cut.pth.tar')
  data = (tmp_path / 'cut.pth.tar').read_bytes()
  (tmp_path / 'cut.pth.tar').write_bytes(data[: len(data) // 2])
  torch.save({'payload': _RunsCode(str(tmp_path / 'pwned'))}, tmp_path / 'evil.pth.tar')
  for name in ('missing.pth.tar', 'random.pth.tar', 'notes.pth.tar', 'cut.pth.tar', 'evil.pth'):
    with pytest.raises(fomm_checkpoint.ConversionError) as error:
      fomm_checkpoint.load_state_dict(str(tmp_path / name.replace('evil.pth', 'evil.pth.tar')))
    causes[name] = str(error.value).split(': ', 1)[1]
  assert causes['missing.pth.tar'].startswith('no such file')
  foreign = 'not a readable PyTorch checkpoint (truncated, or another format'
  assert all(causes[name].startswith(foreign) for name in ('random.pth.tar', 'notes.pth.tar'))
  assert causes['cut.pth.tar'].startswith(foreign)
  assert causes['evil.pth'].startswith('refused to load: it holds objects other than tensors')
  assert 'could run code (GLOBAL io.open)' in causes['evil.pth']
  assert not (tmp_path / 'pwned').exists()
  with pytest.raises(fomm_checkpoint.ConversionError, match='^cannot create the output folder'):
    fomm_checkpoint.convert(str(tmp_path / 'evil.pth.tar'), '/proc/nope/teacher')


class _RunsCode:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, 'w'))
