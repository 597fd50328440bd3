"""Test-session settings shared by every test module (and the commands they start).

Compile time dominates this suite on CPU, and many tests compile the same
smoke programs (the same student, config and shapes) in-process or in a
`python main.py` subprocess. JAX's persistent compilation cache, in a fresh
folder for each session, compiles each distinct program once. It changes no
result: a cache hit is the same executable.
"""

import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix='jax-cache-')
# Environment variables rather than jax.config, so subprocesses share the cache too.
os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  shutil.rmtree(_CACHE, ignore_errors=True)
