"""Counts parameters, mult-adds and pass size the way the article did, plus XLA FLOPs.

torchinfo's rules (ARCHITECTURES.md section 6), applied per leaf-layer call:
- parameters: trainable ones (BatchNorm scale and bias count, running
  statistics do not);
- mult-adds: for a conv or transposed conv, (weights + biases) x output height
  x output width; for BatchNorm, its 2 x channels; nothing else counts;
- pass size: over layers with parameters, output elements x 4 bytes x 2
  (forward and backward), in MB of 10^6 bytes.
XLA's FLOPs come from `cost_analysis()` of the lowered computation: every op
counts and a multiply-add is 2 FLOPs, so they are a different, labelled figure.

Command line: `python -m tools.summary` (every model beside the article) and
`python -m tools.summary --model=edgesegnet` (one model, layer by layer).
"""

from __future__ import annotations

import collections
import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from models import layers, registry
from models.article import Table3Row
from models.base import KeypointModel

_BYTES_PER_ELEMENT = 4  # float32, as torchinfo assumes


@dataclasses.dataclass(frozen=True)
class LayerRow:
  """One leaf-layer call counted by torchinfo's rules."""

  path: str
  kind: str
  input_shape: tuple[int, ...]
  output_shape: tuple[int, ...]
  params: int
  mult_adds: int
  pass_size_bytes: int
  xla_flops: float | None


@dataclasses.dataclass(frozen=True)
class ModelSummary:
  """Per-layer rows and totals for one model at one input shape."""

  name: str
  input_shape: tuple[int, ...]
  rows: tuple[LayerRow, ...]
  params: int
  xla_flops: float | None

  @property
  def mult_adds(self) -> int:
    return sum(row.mult_adds for row in self.rows)

  @property
  def pass_size_mb(self) -> float:
    return sum(row.pass_size_bytes for row in self.rows) / 1e6

  def subtotals(self) -> dict[str, tuple[int, int, float]]:
    """(params, mult-adds, pass size MB) per top-level submodule, in call order."""
    groups: dict[str, list[int | float]] = collections.defaultdict(lambda: [0, 0, 0.0])
    for row in self.rows:
      group = groups[row.path.split('.')[0]]
      group[0] += row.params
      group[1] += row.mult_adds
      group[2] += row.pass_size_bytes / 1e6
    return {name: tuple(values) for name, values in groups.items()}


def _param_count(module: nnx.Module) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def _is_conv(layer: nnx.Module) -> bool:
  return isinstance(
    layer,
    layers.Conv | layers.ConvTranspose | layers.DepthwiseConv | layers.DepthwiseConvTranspose,
  )


def _cost_flops(lowered: jax.stages.Lowered) -> float:
  cost = lowered.cost_analysis()
  if isinstance(cost, list | tuple):  # older JAX returned one dict per device
    cost = cost[0]
  return float(cost.get('flops', 0.0))


def _xla_flops(module: nnx.Module, input_shape: tuple[int, ...]) -> float:
  """FLOPs XLA reports for `module` applied to a float32 input of this shape."""
  graphdef, state = nnx.split(module)

  def apply(state, x):
    return nnx.merge(graphdef, state)(x)

  spec = jax.ShapeDtypeStruct(input_shape, jnp.float32)
  return _cost_flops(jax.jit(apply).lower(state, spec))


def summarize(
  model: KeypointModel,
  input_shape: tuple[int, ...] | None = None,
  *,
  per_layer_xla: bool = True,
  xla_flops: bool = True,
) -> ModelSummary:
  """Counts `model` at `input_shape` (default: batch 1 at its default size).

  Args:
    model: any model of the zoo; it is counted in eval mode and left unchanged.
    input_shape: NHWC input shape.
    per_layer_xla: also lower each layer alone for its XLA FLOPs (slower).
    xla_flops: lower the whole model for its XLA FLOPs (False: `xla_flops` is
      None; a run's results need only torchinfo's counts).

  Returns:
    The per-layer rows and totals.
  """
  if input_shape is None:
    size = model.default_input_size
    input_shape = (1, size, size, model.num_channels)
  model.check_input_shape(input_shape)
  graphdef, state = nnx.split(model)
  counted = nnx.merge(graphdef, state)
  counted.eval()
  paths = {
    id(node): '.'.join(str(p) for p in path)
    for path, node in nnx.iter_graph(counted)
    if isinstance(node, nnx.Module)
  }
  spec = jax.ShapeDtypeStruct(input_shape, jnp.float32)
  with layers.record_layer_calls() as calls:
    jax.eval_shape(counted, spec)

  rows = []
  for call in calls:
    params = _param_count(call.layer)
    out_elements = math.prod(call.output_shape)
    if _is_conv(call.layer):
      mult_adds = params * math.prod(call.output_shape[:-1])  # batch x H x W
    else:
      mult_adds = params * call.output_shape[0]
    rows.append(
      LayerRow(
        path=paths[id(call.layer)],
        kind=type(call.layer).__name__,
        input_shape=call.input_shape,
        output_shape=call.output_shape,
        params=params,
        mult_adds=mult_adds,
        pass_size_bytes=2 * _BYTES_PER_ELEMENT * out_elements if params else 0,
        xla_flops=_xla_flops(call.layer, call.input_shape) if per_layer_xla else None,
      )
    )
  return ModelSummary(
    name=model.name,
    input_shape=tuple(input_shape),
    rows=tuple(rows),
    params=_param_count(counted),
    xla_flops=_xla_flops(counted, input_shape) if xla_flops else None,
  )


def call_mult_adds(module: nnx.Module, inputs: tuple) -> int:
  """Mult-adds of `module(*inputs)` by the rules above, for modules that take several
  inputs (FOMM's generator: a frame and two keypoint dicts; its dense motion network).

  `inputs` may be arrays or pytrees of them; only their shapes are used.
  """
  graphdef, state = nnx.split(module)
  counted = nnx.merge(graphdef, state)
  counted.eval()
  specs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, jnp.float32), tuple(inputs))
  with layers.record_layer_calls() as calls:
    jax.eval_shape(counted, *specs)
  total = 0
  for call in calls:
    params = _param_count(call.layer)
    batch_pixels = call.output_shape[:-1] if _is_conv(call.layer) else call.output_shape[:1]
    total += params * math.prod(batch_pixels)
  return total


def format_layers(summary: ModelSummary) -> str:
  """A per-layer table with subtotals and totals, every column labelled."""
  header = (
    f'{"layer":<44} {"type":<22} {"output (NHWC)":<20} {"params":>11} '
    f'{"mult-adds":>13} {"pass MB":>8} {"XLA FLOPs":>13}'
  )
  lines = [
    f'{summary.name}: input {summary.input_shape}',
    'params, mult-adds and pass size by torchinfo rules; XLA FLOPs from '
    'cost_analysis() (2 per multiply-add, every op)',
    header,
    '-' * len(header),
  ]
  for row in summary.rows:
    flops = f'{row.xla_flops:>13,.0f}' if row.xla_flops is not None else f'{"-":>13}'
    lines.append(
      f'{row.path:<44.44} {row.kind:<22} {str(row.output_shape):<20} {row.params:>11,} '
      f'{row.mult_adds:>13,} {row.pass_size_bytes / 1e6:>8.3f} {flops}'
    )
  lines.append('-' * len(header))
  for name, (params, mult_adds, pass_mb) in summary.subtotals().items():
    lines.append(
      f'{"subtotal " + name:<44} {"":<22} {"":<20} {params:>11,} {mult_adds:>13,} {pass_mb:>8.3f}'
    )
  lines += [
    '-' * len(header),
    f'Total params:                  {summary.params:,}',
    f'Total mult-adds (M):           {summary.mult_adds / 1e6:.2f}   (torchinfo rules)',
    f'Forward/backward pass size:    {summary.pass_size_mb:.2f} MB (torchinfo rules)',
    f'XLA FLOPs, whole model (G):    {summary.xla_flops / 1e9:.3f}  (cost_analysis)',
  ]
  return '\n'.join(lines)


def _delta(ours: float, theirs: float | None) -> str:
  return f'{100 * (ours - theirs) / theirs:+.1f}%' if theirs else '-'


def format_comparison(summaries: list[ModelSummary]) -> str:
  """A markdown table of every model beside the article's Table 3.

  Where the article counted part of a model (the teacher's hourglass), a
  second row compares that part.
  """
  lines = [
    '| model | input | params | article | diff | mult-adds (M) | article | diff '
    '| pass size (MB) | article | XLA GFLOPs |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]

  def row(label, size, params, mult_adds, pass_mb, paper, flops):
    fmt = lambda v, spec: format(v, spec) if v else '-'  # noqa: E731
    mult_adds_m = mult_adds / 1e6
    lines.append(
      f'| {label} | {size} | {params:,} | {fmt(paper.params, ",")} '
      f'| {_delta(params, paper.params)} | {mult_adds_m:.2f} | {fmt(paper.mult_adds_m, ".2f")} '
      f'| {_delta(mult_adds_m, paper.mult_adds_m)} | {pass_mb:.2f} '
      f'| {fmt(paper.pass_size_mb, ".2f")} | {flops} |'
    )

  for s in summaries:
    spec = registry.spec(s.name)
    paper, scope = spec.table3, spec.table3_scope
    size = 'x'.join(str(d) for d in s.input_shape[1:])
    whole = paper if scope is None else Table3Row()
    row(s.name, size, s.params, s.mult_adds, s.pass_size_mb, whole, f'{s.xla_flops / 1e9:.3f}')
    if scope is not None:
      params, mult_adds, pass_mb = s.subtotals()[scope]
      row(f'{s.name}: {scope} only', '', params, mult_adds, pass_mb, paper, '')
  return '\n'.join(lines)
