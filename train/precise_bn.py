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

A channel whose variance over those images is below `DEAD_FRACTION` (1%) of
its layer's mean carried almost no signal in training; its variance is
raised to that floor, so an input that does excite it at inference is
amplified at most 10x more than in a channel of average variance, instead
of up to 1/sqrt(eps) = 316x (`train.outliers` counts such channels).
Training itself never reads running statistics, so none of this changes the
training trajectory or resumption.
"""

from __future__ import annotations

from collections.abc import Iterable

import jax
import jax.numpy as jnp
from flax import nnx

from models import layers
from train.step import Student

# A channel quieter than this fraction of its layer's mean variance is dead; it is
# floored there, so it is amplified at most 1/sqrt(DEAD_FRACTION) = 10x more than a
# channel of average variance (instead of up to 1/sqrt(eps) = 316x).
DEAD_FRACTION = 1e-2


def _statistics_graph(student: Student, params, batch_stats, rest) -> nnx.GraphDef:
  """The train-mode graph with momentum 0: a forward pass leaves each batch's own statistics."""
  model = nnx.merge(student.train_graph, params, batch_stats, rest)
  for _, norm in layers.batch_norms(model):
    norm.momentum = 0.0
  return nnx.split(model, nnx.Param, nnx.BatchStat, ...)[0]


def _map_norms(fn, tree: dict) -> dict:
  """fn(mean, var) -> (mean, var) applied to every BatchNorm ({'mean', 'var'}) of a pure dict."""
  if set(tree) == {'mean', 'var'}:
    return dict(zip(('mean', 'var'), fn(tree['mean'], tree['var']), strict=True))
  return {key: _map_norms(fn, value) for key, value in tree.items()}


def _floored(var: jax.Array) -> jax.Array:
  """Dead channels raised to DEAD_FRACTION of the layer's mean variance."""
  return jnp.maximum(var, DEAD_FRACTION * jnp.mean(var))


class PreciseBN:
  """Re-estimates a student's BatchNorm statistics; compiled once, called at every evaluation.

  Args:
    student: the split student (its train graph is used, with momentum 0).
    params, batch_stats, rest: any state of it (they give the graph its shapes).
  """

  def __init__(self, student: Student, params, batch_stats, rest):
    graph = _statistics_graph(student, params, batch_stats, rest)

    def moments(params, batch_stats, rest, images):
      # Zeros in: with momentum 0 the incoming statistics are unused, and a NaN in
      # them could still leak through 0 * NaN.
      model = nnx.merge(graph, params, jax.tree.map(jnp.zeros_like, batch_stats), rest)
      model(images)
      return nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))  # this batch's mean and var

    self._moments = jax.jit(moments)

  def __call__(self, params, batch_stats, rest, batches: Iterable[jax.Array]) -> nnx.State:
    """BatchStats with each BatchNorm's mean and variance over all images of `batches`
    (batches of one size; the same batches give the same statistics)."""
    per_batch = [self._moments(params, batch_stats, rest, images) for images in batches]
    if not per_batch:
      raise ValueError('precise BN needs at least one batch of images')

    def combine(means, variances):  # each stacked over the batches
      # The law of total variance for equal batches: the mean within-batch variance
      # plus the variance of the batch means (two-pass, no E[x^2] - E[x]^2 cancellation).
      return means.mean(0), _floored(variances.mean(0) + means.var(0))

    stacked = jax.tree.map(lambda *batch: jnp.stack(batch), *per_batch)
    new = jax.tree.map(lambda x: x, batch_stats)
    nnx.replace_by_pure_dict(new, _map_norms(combine, stacked))
    return new
