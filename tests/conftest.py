"""Test-session settings shared by every test module (and the commands they start).

Compile time dominates this suite on CPU, and many tests compile the same
smoke programs (the same student, config and shapes) in-process or in a
`python main.py` subprocess. JAX's persistent compilation cache, in one fresh
folder per session (set through environment variables, so the commands the
tests start share it), compiles each distinct program once. It changes no
result: a cache hit is the same executable. (XLA's
`jax_disable_most_optimizations` was measured too: it halves a smoke train
step's compile but slows the suite as a whole, the unoptimised programs
running slower than the compile time saved.)
"""

import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix='jax-cache-')
os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  shutil.rmtree(_CACHE, ignore_errors=True)
