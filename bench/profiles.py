"""Where an inference call's time goes: XLA's kernels beside ONNX Runtime's nodes.

XLA: a `jax.profiler` trace around many calls of a compiled function, read
back with `jax.profiler.ProfileData`; every event on an XLA thread but the
executor's and thread pool's own spans is one kernel; a call's wall time is
the Python call's. ONNX Runtime: its built-in profiler, one "Node" event per
kernel; a call's wall time is its `model_run` span. Both are grouped into
the same coarse kinds, so a table can set them side by side. Figures are
means per call while profiling (profiling adds a little to each kernel);
the benchmark's medians are the latencies to quote.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import json
import re
import tempfile
import time
from collections.abc import Callable

import numpy as np

KINDS = ('conv & matmul', 'concatenate', 'max pool', 'layout', 'elementwise & other')

# Data movement only: padding, slicing and reshaping fusions (e.g. a sub-pixel convolution's).
_XLA_LAYOUT = ('transpose', 'copy', 'pad', 'wrapped_pad', 'slice_slice', 'bitcast')
_ORT_KINDS = {
  'conv & matmul': ('Conv', 'FusedConv', 'ConvTranspose', 'MatMul', 'FusedMatMul', 'Gemm'),
  'concatenate': ('Concat',),
  'max pool': ('MaxPool',),
  'layout': ('Transpose', 'ReorderInput', 'ReorderOutput', 'Reshape'),
}


@dataclasses.dataclass
class Breakdown:
  """One framework's call: its wall time and, per kind, (kernels, microseconds) per call."""

  wall_us: float
  kinds: dict[str, tuple[float, float]]
  families: dict[str, tuple[float, float]]  # kernel family (`dot`, `Conv`) -> the same

  @property
  def kernels(self) -> float:
    return sum(count for count, _ in self.kinds.values())

  @property
  def busy_us(self) -> float:
    """Kernel time summed over threads (can exceed the wall time on several)."""
    return sum(us for _, us in self.kinds.values())


def xla_family(name: str) -> str:
  """An XLA:CPU thunk's name without its instance number: `dot.3` -> `dot`."""
  return re.sub(r'\.\d+$', '', name)


def xla_kind(name: str) -> str:
  """The kind of an XLA:CPU kernel from its thunk name (`conv_general_dilated.40`, `dot.3`, ...)."""
  if name.startswith(('conv_general', 'convolution', 'dot', 'ynn_fusion')):
    return 'conv & matmul'
  if 'concatenate' in name:
    return 'concatenate'
  if name.startswith('slice_maximum') or 'reduce-window' in name or 'reduce_window' in name:
    return 'max pool'
  if name.startswith(_XLA_LAYOUT):
    return 'layout'
  return 'elementwise & other'


def ort_kind(op_name: str) -> str:
  """The kind of an ONNX Runtime node from its operator type."""
  for kind, ops in _ORT_KINDS.items():
    if op_name in ops:
      return kind
  return 'elementwise & other'


def _per_call(pairs: list[tuple[str, float]], calls: int) -> dict[str, tuple[float, float]]:
  """(key, microseconds) events -> key: (events, microseconds) per call, slowest first."""
  count: collections.Counter = collections.Counter()
  total: collections.Counter = collections.Counter()
  for key, us in pairs:
    count[key] += 1
    total[key] += us
  return {key: (count[key] / calls, total[key] / calls) for key, _ in total.most_common()}


def _breakdown(events: list[tuple[str, str, float]], walls: list[float], calls: int) -> Breakdown:
  """From (kind, family, microseconds) kernel events and per-call wall times."""
  return Breakdown(
    wall_us=float(np.mean(walls)) if walls else 0.0,
    kinds=_per_call([(kind, us) for kind, _, us in events], calls),
    families=_per_call([(family, us) for _, family, us in events], calls),
  )


def profile_xla(call: Callable[[], object], calls: int) -> Breakdown:
  """Traces `calls` calls of `call` (which must block until its outputs are ready).

  The wall time is each Python call's, timed around it (dispatch included).
  """
  import jax

  walls = []
  with tempfile.TemporaryDirectory() as folder:
    with jax.profiler.trace(folder):
      for _ in range(calls):
        start = time.perf_counter()
        call()
        walls.append((time.perf_counter() - start) * 1e6)
    (path,) = glob.glob(f'{folder}/**/*.xplane.pb', recursive=True)
    data = jax.profiler.ProfileData.from_file(path)
    events = [
      (xla_kind(event.name), xla_family(event.name), event.duration_ns / 1e3)
      for plane in data.planes
      for line in plane.lines
      if 'XLA' in line.name  # not the python, host or profiler lines
      for event in line.events
      # executor and thread-pool spans ('::') and completion markers are not kernels
      if '::' not in event.name and not event.name.startswith('end: ')
    ]
  return _breakdown(events, walls, calls)


def ort_breakdown(trace_path: str, calls: int) -> Breakdown:
  """Reads ONNX Runtime's JSON profile of `calls` timed runs (earlier runs are dropped)."""
  with open(trace_path) as f:
    trace = json.load(f)
  runs = [event for event in trace if event.get('name') == 'model_run']
  if len(runs) < calls:
    raise ValueError(f'{trace_path}: {len(runs)} runs profiled, expected at least {calls}.')
  start = runs[-calls]['ts']  # warm-up runs come first
  events = [
    (ort_kind(op), op, float(event['dur']))
    for event in trace
    if event.get('cat') == 'Node'
    and event['ts'] >= start
    and (op := event.get('args', {}).get('op_name'))
  ]
  return _breakdown(events, [float(run['dur']) for run in runs[-calls:]], calls)


def litert_operators(path: str) -> dict[str, int]:
  """The operators of a .tflite file, counted by name, most frequent first (no per-op timing:
  LiteRT's Python API has no operator profiler)."""
  from ai_edge_litert.interpreter import Interpreter, OpResolverType

  interpreter = Interpreter(  # without XNNPACK, so the list is the file's own operators
    model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
  )
  counts = collections.Counter(op['op_name'] for op in interpreter._get_ops_details())
  return dict(counts.most_common())


def table(frameworks: dict[str, Breakdown]) -> str:
  """Markdown: per kind, each framework's kernels and microseconds per call; then totals."""
  names = list(frameworks)
  header = '| kind | ' + ' | '.join(f'{n} kernels | {n} (us)' for n in names) + ' |'
  rows = [header, '|---|' + '---:|---:|' * len(names)]
  for kind in KINDS:
    cells = []
    for breakdown in frameworks.values():
      count, us = breakdown.kinds.get(kind, (0.0, 0.0))
      cells.append(f'{count:.0f} | {us:.0f}')
    rows.append(f'| {kind} | ' + ' | '.join(cells) + ' |')
  busy = ' | '.join(f'{b.kernels:.0f} | {b.busy_us:.0f}' for b in frameworks.values())
  rows.append(f'| all kernels | {busy} |')
  wall = ' | '.join(f'- | {b.wall_us:.0f}' for b in frameworks.values())
  rows.append(f'| call (wall) | {wall} |')
  return '\n'.join(rows)


def slowest(breakdown: Breakdown, count: int = 8) -> str:
  """The `count` slowest kernel families, one per line: microseconds, kernels, family."""
  items = list(breakdown.families.items())[:count]
  return '\n'.join(f'  {us:8.0f} us  {n:4.0f} x {family}' for family, (n, us) in items)
