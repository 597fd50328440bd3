"""Compiling the models: XLA:CPU options, and an ahead-of-time inference function.

jaxlib 0.10 hands every convolution and matmul on CPU to YNNPACK. Its
convolutions run on one thread, while XLA's own (Eigen) convolutions use
every core (docs/performance.md, "whole model" rows: the models run 1.0-1.6x
faster with this option, the teacher 1.3x on one thread and 1.6x on two). So every
jit in this project compiles with YNNPACK kept for matmuls only. The option
is per compilation (`compiler_options`), not a process-wide XLA_FLAGS, so
importing this project changes nothing else in the process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from models import hoisting, ops

# YNNPACK for dots only; convolutions go to XLA's multi-threaded Eigen kernels.
CPU_OPTIONS = {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'}


def compiler_options() -> dict[str, str] | None:
  """The options for the default backend (none off CPU)."""
  return dict(CPU_OPTIONS) if jax.default_backend() == 'cpu' else None


def jit(fn: Callable | None = None, **kwargs: Any) -> Callable:
  """`jax.jit` with this project's compiler options; usable as a decorator."""
  if fn is None:
    return functools.partial(jit, **kwargs)
  return jax.jit(fn, compiler_options=compiler_options(), **kwargs)


class InferenceFunction:
  """A model compiled ahead of time for one input shape, in eval mode.

  The weights are flattened once into a list of arrays, so a call does no
  Python module traversal: it is one XLA executable call on (weights, images).
  The work that depends on the weights alone (BatchNorm's scales, merged and
  flipped kernels: `models.hoisting`) is done once here, not in every call,
  and ops take their inference forms (`models.ops.inference_forms`).
  """

  def __init__(
    self,
    model: nnx.Module,
    input_shape: tuple[int, ...],
    *,
    outputs: tuple[str, ...] = ('kp', 'jacobian'),
    xla_defaults: bool = False,
    hoist: bool = True,
  ):
    """Compiles `model` for float32 images of `input_shape`.

    Args:
      model: a keypoint model; it is switched to eval mode.
      input_shape: (B, H, W, 3).
      outputs: which of the model's outputs to return.
      xla_defaults: compile with XLA's default options instead of ours (for
        measuring what they buy).
      hoist: do the weight-only work once, at construction (False: in every
        call, as training does; for measuring what hoisting buys).
    """
    model.eval()
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(state)
    self.outputs = tuple(outputs)
    self.input_shape = tuple(input_shape)

    def forward(leaves, images):
      with ops.inference_forms():  # read while tracing: the compiled code keeps them
        out = nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))(images)
      return {name: out[name] for name in self.outputs}

    leaves = jax.device_put(leaves)
    images = jax.ShapeDtypeStruct(self.input_shape, jax.numpy.float32)
    self.hoisted = 0  # weight-only operations done once
    if hoist:
      split = hoisting.split(forward, leaves, images)
      self.weights = jax.jit(split.prepare_fn())(*leaves)
      apply = split.apply_fn()
      self.hoisted = split.hoisted
      forward = lambda weights, images: apply(*weights, images)  # noqa: E731
    else:
      self.weights = leaves
    compile_fn = jax.jit if xla_defaults else jit
    self.compiled = compile_fn(forward).lower(self.weights, images).compile()

  def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
    if tuple(images.shape) != self.input_shape:
      raise ValueError(
        f'compiled for images of shape {self.input_shape}, got {tuple(images.shape)}; '
        'build another InferenceFunction for that shape.'
      )
    return self.compiled(self.weights, images)


class CompiledCall:
  """`call(model, *inputs)` compiled ahead of time for the shapes of `inputs`, in eval mode.

  `InferenceFunction` for models that take more than one image (FOMM's
  generator takes a frame and two keypoint dicts) or that run inside a larger
  function (a detector behind its downsampling): the same flattened weights,
  hoisted weight-only work (BatchNorm folding, `models.hoisting`), inference
  forms and compiler options. `inputs` may be any pytrees of arrays.
  """

  def __init__(
    self,
    model: nnx.Module,
    call: Callable[..., Any],
    *inputs: Any,
    xla_defaults: bool = False,
    hoist: bool = True,
  ):
    model.eval()
    graphdef, state = nnx.split(model)
    leaves, treedef = jax.tree.flatten(state)

    def forward(leaves, inputs):
      with ops.inference_forms():
        return call(nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves)), *inputs)

    self.specs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tuple(inputs))
    leaves = jax.device_put(leaves)
    self.hoisted = 0
    if hoist:
      split = hoisting.split(forward, leaves, self.specs)
      self.weights = jax.jit(split.prepare_fn())(*leaves)
      apply = split.apply_fn()
      self.hoisted = split.hoisted
      forward = lambda weights, inputs: apply(*weights, *jax.tree.leaves(inputs))  # noqa: E731
    else:
      self.weights = leaves
    compile_fn = jax.jit if xla_defaults else jit
    self.compiled = compile_fn(forward).lower(self.weights, self.specs).compile()

  def __call__(self, *inputs: Any) -> Any:
    return self.compiled(self.weights, inputs)


def predict(
  model: nnx.Module,
  images: Any,
  *,
  outputs: tuple[str, ...] = ('kp', 'jacobian'),
  batch: int = 64,
) -> dict[str, Any]:
  """`model`'s outputs (NumPy) over many images, `batch` at a time, eval mode.

  One `InferenceFunction` per chunk shape (the full chunks and the last one).
  """
  import numpy as np

  compiled: dict[tuple[int, ...], InferenceFunction] = {}
  parts: dict[str, list] = {name: [] for name in outputs}
  for start in range(0, len(images), batch):
    chunk = np.asarray(images[start : start + batch], np.float32)
    if chunk.shape not in compiled:
      compiled[chunk.shape] = InferenceFunction(model, chunk.shape, outputs=outputs)
    out = compiled[chunk.shape](chunk)
    for name in outputs:
      parts[name].append(np.asarray(out[name]))
  return {name: np.concatenate(value) for name, value in parts.items()}
