"""Test-session settings and runs shared by every test module (and the commands they start).

Two tiers. `python -m pytest -q` runs the fast one (every capability at small
size: narrow widths from `narrow.py`, in-process calls, one subprocess per
command for its wiring); `python -m pytest -q -m slow` runs the tests marked
`slow` (the full-width matrices, every student's run, the commands as
subprocesses), which the fast tier deselects. pytest-xdist runs either on
every core, a test file per worker (pyproject.toml).

The smoke teacher and a 6-step EdgeSegNet run are trained once per test run, by
main.py's train mode (`shared`, `edgeseg_run`), by whichever worker asks first
while the others wait for it: training, export and evaluation tests read them.

Compile time dominates this suite on CPU, and many tests compile the same
smoke programs (the same student, config and shapes) in-process or in a
`python main.py` subprocess. Two settings, both through environment
variables so that the workers and the commands the tests start follow them:
- JAX's persistent compilation cache, in one fresh folder per test run,
  compiles each distinct program once. It changes no result: a cache hit is
  the same executable.
- The fast tier compiles with XLA's optimisations off
  (`jax_disable_most_optimizations`): its narrow, few-step programs spend far
  longer compiling than running (the forward, backward and train-mode tests of
  tests/test_models.py: 106 s of CPU with them, 63 s without). It also turns
  off XLA:CPU's newer fusion emitters (`--xla_cpu_use_fusion_emitters=false`
  in XLA_FLAGS: the older emitters generate the same operations' code, 2.5 to
  4 times faster to compile; a narrow Squeeze U-Net DSC's forward and backward
  pass, 6.2 s of compilation with them, 2.2 s without; the whole tier, 886 s
  of CPU, 754 s without). The slow tier keeps XLA's defaults, so the
  full-width matrices run what users run.
"""

import contextlib
import fcntl
import io
import json
import os
import shutil
import sys
import tempfile

import pytest
from smoke import smoke_config

# xdist's workers inherit the folder from the process that started them, which removes it.
_WORKER = bool(os.environ.get('PYTEST_XDIST_WORKER'))
if not _WORKER:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='jax-cache-')
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'


# Read when XLA's CPU backend starts (the first computation), in every worker and command.
_NO_FUSION_EMITTERS = '--xla_cpu_use_fusion_emitters=false'


def _fast_tier(config) -> bool:
  return not config.getoption('markexpr')


def pytest_configure(config):
  if _fast_tier(config):
    # xdist deals files in collection order, longest first (pytest_collection_modifyitems),
    # instead of by their number of tests.
    config.option.loadscopereorder = False
    os.environ['JAX_DISABLE_MOST_OPTIMIZATIONS'] = '1'
    if _NO_FUSION_EMITTERS not in os.environ.get('XLA_FLAGS', ''):
      os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {_NO_FUSION_EMITTERS}'.strip()
    if 'jax' in sys.modules:  # a plugin imported it before this hook: set it there too
      sys.modules['jax'].config.update('jax_disable_most_optimizations', True)


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if not _WORKER:
    shutil.rmtree(os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)


def _once(tmp_path_factory, name, build):
  """`build(folder)`'s JSON-able result, built in `folder` once per test run.

  Under xdist every worker has its own temporary root under one shared
  parent; the first worker to ask builds there while the others wait on the
  lock, then read what it left.
  """
  root = tmp_path_factory.getbasetemp()
  if _WORKER:
    root = root.parent
  folder, done = root / name, root / f'{name}.json'
  with open(root / f'{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
    if not done.exists():
      done.write_text(json.dumps(build(folder)))
  return folder, json.loads(done.read_text())


@pytest.fixture(scope='session')
def _smoke_runs(tmp_path_factory):
  """A tiny dataset, a smoke teacher and a 6-step EdgeSegNet run, trained once per test run.

  As main.py trains them: `main.run` on the :smoke EdgeSegNet config with no teacher yet
  trains the teacher first (`shared/teacher`, step 1 of 2), then the student
  (`shared/edgeseg`, step 2 of 2: `edgeseg_run`). What it printed: `shared/main_run.out`;
  what each `loop.train_and_evaluate` returned: this fixture's JSON (`_once`).
  """

  def build(folder):
    import main
    from train import loop

    returned, train = [], loop.train_and_evaluate
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
      patch.setattr(
        loop, 'train_and_evaluate', lambda *a: returned.append(train(*a)) or returned[-1]
      )
      main.run(smoke_config('edgeseg', folder), str(folder / 'edgeseg'), 'train')
    (folder / 'main_run.out').write_text(printed.getvalue())
    teacher, student = returned
    assert teacher['task'] == 'supervised' and student['task'] == 'distill'
    return {'teacher': teacher, 'edgeseg': student}

  return _once(tmp_path_factory, 'shared', build)


@pytest.fixture(scope='session')
def shared(_smoke_runs):
  """The folder of the smoke runs: `data` (the tiny dataset), `teacher`, `edgeseg`."""
  return _smoke_runs[0]


@pytest.fixture(scope='session')
def edgeseg_run(_smoke_runs):
  """The EdgeSegNet smoke run (6 steps), read by several tests: (workdir, results)."""
  folder, results = _smoke_runs
  return folder / 'edgeseg', results['edgeseg']


# The fast tier's longest files (`--durations`, 2026-12-07), dealt to the workers first so
# that the short ones even out the end; the files not named follow in collection order.
_LONGEST_FIRST = (
  'test_train.py',
  'test_export.py',
  'test_models.py',
  'test_faults.py',
  'test_export_command.py',
  'test_animate.py',
  'test_fomm_export.py',
  'test_benchmark.py',
  'test_parity.py',
  'test_convolution.py',
  'test_summary.py',
  'test_outliers.py',
  'test_distillation.py',
  'test_fomm_bench.py',
  'test_hoisting.py',
  'test_vox.py',
)


def pytest_collection_modifyitems(config, items):
  """Without `-m`, the fast tier: tests marked `slow` are deselected (`-m slow` runs them),
  and the longest files come first (xdist deals files in this order: pytest_configure)."""
  if not _fast_tier(config):
    return
  slow = [item for item in items if item.get_closest_marker('slow')]
  if slow:
    config.hook.pytest_deselected(items=slow)
    items[:] = [item for item in items if not item.get_closest_marker('slow')]
  rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: tests keep order
