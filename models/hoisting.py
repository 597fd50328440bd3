"""Inference's weight-only work, done once: a traced function split into what
depends on the weights alone and what depends on the images.

At inference the weights are constants, yet a model's forward pass does work
on them in every call: BatchNorm's `scale * rsqrt(var + eps)`, the sub-pixel
kernels of the transposed convolutions, flipped and merged kernels, composed
1x1 convolutions, the keypoint head's concatenated kernels. ONNX Runtime and
XNNPACK fold such work when they load a model; XLA cannot, because the weights
are arguments of the compiled function. `split` moves every such operation
into a `prepare` function that runs once, and leaves `apply` with the work
that depends on the images.

The split walks the traced program (a jaxpr) once: an operation all of whose
inputs are weights, constants or outputs of earlier weight-only operations is
weight-only. Operations that make data from nothing (`iota`, broadcasts)
stay in `apply`: materialising them once would turn a free, fused broadcast
into an image-sized array read in every call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
from jax.extend import core

# Not hoisted: their outputs are larger than their inputs, and XLA fuses them for free.
_KEPT_IN_APPLY = frozenset({'broadcast_in_dim', 'iota'})


@dataclasses.dataclass(frozen=True)
class Split:
  """`apply(*prepare(*weights), *images)` equals `fn(weights, images)` (flattened outputs)."""

  prepare: core.ClosedJaxpr
  apply: core.ClosedJaxpr
  out_tree: Any
  hoisted: int  # operations moved into `prepare`

  def prepare_fn(self) -> Callable[..., list[jax.Array]]:
    return core.jaxpr_as_fun(self.prepare)

  def apply_fn(self) -> Callable[..., Any]:
    run = core.jaxpr_as_fun(self.apply)
    return lambda *args: jax.tree.unflatten(self.out_tree, run(*args))


def split(fn: Callable[[Any, Any], Any], weights: Any, images: Any) -> Split:
  """Splits `fn(weights, images)` (traced at the shapes of `weights` and `images`)."""
  closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(weights, images)
  jaxpr = closed.jaxpr
  count = len(jax.tree.leaves(weights))
  weight_vars, image_vars = jaxpr.invars[:count], jaxpr.invars[count:]

  known = {*jaxpr.constvars, *weight_vars}
  weight_eqns, image_eqns = [], []
  for eqn in jaxpr.eqns:
    inputs = [v for v in eqn.invars if not isinstance(v, core.Literal)]
    if (
      inputs
      and not eqn.effects
      and eqn.primitive.name not in _KEPT_IN_APPLY
      and all(v in known for v in inputs)
    ):
      weight_eqns.append(eqn)
      known.update(eqn.outvars)
    else:
      image_eqns.append(eqn)

  # What `apply` reads from `prepare`: known values used by image operations or returned.
  residuals: dict[core.Var, None] = {}
  for var in [*(v for eqn in image_eqns for v in eqn.invars), *jaxpr.outvars]:
    if not isinstance(var, core.Literal) and var in known:
      residuals[var] = None
  residuals_list = list(residuals)
  prepare = core.ClosedJaxpr(
    core.Jaxpr(jaxpr.constvars, weight_vars, residuals_list, weight_eqns), closed.consts
  )
  apply = core.ClosedJaxpr(
    core.Jaxpr([], [*residuals_list, *image_vars], jaxpr.outvars, image_eqns, jaxpr.effects), []
  )
  return Split(prepare, apply, jax.tree.structure(out_shape), len(weight_eqns))
