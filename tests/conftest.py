"""Test-session settings and runs shared by every test module (and the commands they start).

Two tiers. `python -m pytest -q` runs the fast one (every capability at small
size: narrow widths from `narrow.py`, in-process calls, one subprocess per
command for its wiring); `python -m pytest -q -m slow` runs the tests marked
`slow` (the full-width matrices, every student's run, the commands as
subprocesses), which the fast tier deselects. pytest-xdist runs either on
every core, a test file per worker (pyproject.toml).

The smoke teacher and a 6-step EdgeSegNet run are trained once per session
and worker (`shared`, `edgeseg_run`): training, export and evaluation tests read them.

Compile time dominates this suite on CPU, and many tests compile the same
smoke programs (the same student, config and shapes) in-process or in a
`python main.py` subprocess. JAX's persistent compilation cache, in one fresh
folder per session (set through environment variables, so the commands the
tests start and the other workers share it), compiles each distinct program
once. It changes no result: a cache hit is the same executable. (XLA's
`jax_disable_most_optimizations` was measured too: it halves a smoke train
step's compile but slows the suite as a whole, the unoptimised programs
running slower than the compile time saved.)
"""

import os
import shutil
import tempfile

import pytest
from smoke import smoke_config

# xdist's workers inherit the folder from the process that started them, which removes it.
_WORKER = bool(os.environ.get('PYTEST_XDIST_WORKER'))
if not _WORKER:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='jax-cache-')
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if not _WORKER:
    shutil.rmtree(os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)


@pytest.fixture(scope='session')
def shared(tmp_path_factory):
  """A tiny dataset and a smoke teacher, trained once per test session."""
  shared = tmp_path_factory.mktemp('shared')
  from train import loop

  results = loop.train_and_evaluate(smoke_config('teacher', shared), str(shared / 'teacher'))
  assert results['task'] == 'supervised'
  return shared


@pytest.fixture(scope='session')
def edgeseg_run(shared, tmp_path_factory):
  """An EdgeSegNet smoke run (6 steps), read by several tests."""
  workdir = tmp_path_factory.mktemp('edgeseg')
  from train import loop

  return workdir, loop.train_and_evaluate(smoke_config('edgeseg', shared), str(workdir))


def pytest_collection_modifyitems(config, items):
  """Without `-m`, the fast tier: tests marked `slow` are deselected (`-m slow` runs them)."""
  if config.getoption('markexpr'):
    return
  slow = [item for item in items if item.get_closest_marker('slow')]
  if slow:
    config.hook.pytest_deselected(items=slow)
    items[:] = [item for item in items if not item.get_closest_marker('slow')]
