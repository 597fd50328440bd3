"""Precise BatchNorm: statistics re-estimated over many training images with the weights fixed.

BatchNorm's running statistics are an exponential average over the last
few dozen training steps, taken while the weights moved; a channel that was
zero for a while decays towards a variance of 0 (1e-37 was seen), and eval
mode then divides whatever excites it by sqrt(eps). As in pycls/fvcore's
"precise BN", before each evaluation the student runs in train mode (each
layer sees its inputs as in training) on a fixed set of augmented training
images, and every BatchNorm's mean and variance become those of all the
images together (not an average of per-batch variances: the between-batch
spread counts too).

A channel whose variance over those images is below `DEAD_FRACTION` of its
layer's median carried no signal in training; its variance is raised to
that floor, so an input that does excite it at inference is scaled like a
quiet channel of the layer instead of by 1/sqrt(eps) (`train.outliers`
shows the effect). Training itself never reads running statistics, so none
of this changes the training trajectory or resumption.
"""

from __future__ import annotations

from collections.abc import Iterable

import jax
import jax.numpy as jnp
from flax import nnx

from models import layers
from train.step import Student

# A channel quieter than this fraction of its layer's median variance is dead.
DEAD_FRACTION = 1e-3


def _statistics_graph(student: Student, params, batch_stats, rest) -> nnx.GraphDef:
  """The train-mode graph with momentum 0: a forward pass leaves each batch's own statistics."""
  model = nnx.merge(student.train_graph, params, batch_stats, rest)
  for _, module in nnx.iter_graph(model):
    if isinstance(module, layers.BatchNorm):
      module.momentum = 0.0
  return nnx.split(model, nnx.Param, nnx.BatchStat, ...)[0]


def _map_norms(fn, tree: dict) -> dict:
  """Applies fn(mean, var) -> (mean, var) to every BatchNorm ({'mean', 'var'}) of a pure dict."""
  if isinstance(tree, dict) and set(tree) == {'mean', 'var'}:
    mean, var = fn(tree['mean'], tree['var'])
    return {'mean': mean, 'var': var}
  return {key: _map_norms(fn, value) for key, value in tree.items()}


def _to_moments(mean, var):
  return mean, var + mean**2  # (E[x], E[x^2]) of one batch


def _to_statistics(mean, square):
  var = jnp.maximum(square - mean**2, 0.0)
  return mean, jnp.maximum(var, DEAD_FRACTION * jnp.median(var))  # dead channels floored


class PreciseBN:
  """Re-estimates a student's BatchNorm statistics; compiled once, called at every evaluation.

  Args:
    student: the split student (its train graph is used, with momentum 0).
    params, batch_stats, rest: any state of it (they give the graph its shapes).
  """

  def __init__(self, student: Student, params, batch_stats, rest):
    graph = _statistics_graph(student, params, batch_stats, rest)

    def moments(params, batch_stats, rest, images):
      model = nnx.merge(graph, params, batch_stats, rest)
      model(images)
      return _map_norms(_to_moments, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))

    self._moments = jax.jit(moments)

  def __call__(self, params, batch_stats, rest, batches: Iterable[jax.Array]) -> nnx.State:
    """BatchStats with each BatchNorm's mean and variance over all images of `batches`
    (batches of one size; the same batches give the same statistics)."""
    total, count = None, 0
    for images in batches:
      batch = self._moments(params, batch_stats, rest, images)
      total = batch if total is None else jax.tree.map(jnp.add, total, batch)
      count += 1
    if total is None:
      raise ValueError('precise BN needs at least one batch of images')
    mean_total = jax.tree.map(lambda x: x / count, total)
    new = jax.tree.map(lambda x: x, batch_stats)
    nnx.replace_by_pure_dict(new, _map_norms(_to_statistics, mean_total))
    return new


def recompute(
  student: Student, params, batch_stats, rest, batches: Iterable[jax.Array]
) -> nnx.State:
  """One-off `PreciseBN(student, ...)(params, batch_stats, rest, batches)`."""
  return PreciseBN(student, params, batch_stats, rest)(params, batch_stats, rest, batches)
