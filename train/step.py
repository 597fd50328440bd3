"""The jitted train and eval steps, pure functions of an explicit state.

The student is split once into a graph definition (per mode: BatchNorm and
dropout settings are static) and its state (Params, BatchStats, the rest);
the hot loop only passes arrays, so no Python walks the module graph per step.
Dropout's randomness is reseeded every step from (seed, step), so a resumed
run draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from train import losses


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: nnx.State
  batch_stats: nnx.State
  opt_state: optax.OptState


@dataclasses.dataclass(frozen=True)
class Student:
  """A model split for pure functions: one graphdef per mode, plus non-array state."""

  train_graph: nnx.GraphDef
  eval_graph: nnx.GraphDef
  rest: nnx.State  # rng streams and other non-trained variables

  @classmethod
  def split(cls, model: nnx.Module) -> tuple[Student, nnx.State, nnx.State]:
    model.train()
    train_graph, params, batch_stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    model.eval()
    eval_graph, *_ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    return cls(train_graph, eval_graph, rest), params, batch_stats

  def merge(self, params, batch_stats, rest, *, train: bool) -> nnx.Module:
    graph = self.train_graph if train else self.eval_graph
    # Fresh Variables at the current trace level (inside grad), so BatchNorm may update them.
    fresh = jax.tree.map(lambda x: x, (params, batch_stats, rest))
    return nnx.merge(graph, *fresh)


@dataclasses.dataclass(frozen=True)
class Teacher:
  """A frozen model in eval mode: a graphdef and its state (passed to steps as an argument,
  so its weights are not baked into the compiled program as constants)."""

  graph: nnx.GraphDef
  state: nnx.State

  @classmethod
  def split(cls, model: nnx.Module) -> Teacher:
    model.eval()
    graph, state = nnx.split(model)
    return cls(graph, state)

  def apply(self, state: nnx.State, images: jax.Array) -> dict[str, jax.Array]:
    return jax.lax.stop_gradient(nnx.merge(self.graph, state)(images))


def make_optimizer(optim, num_steps: int) -> tuple[optax.GradientTransformation, Callable]:
  """AdamW (or Adam/SGD) with step decay at `optim.milestones`, optional clipping."""
  schedule = optax.piecewise_constant_schedule(
    optim.lr, {int(m): optim.decay_factor for m in optim.milestones}
  )
  if optim.name == 'adamw':
    optimizer = optax.adamw(schedule, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay)
  elif optim.name == 'adam':
    optimizer = optax.adam(schedule, b1=optim.b1, b2=optim.b2)
  else:
    optimizer = optax.sgd(schedule, momentum=optim.momentum)
  if optim.clip_norm > 0:
    optimizer = optax.chain(optax.clip_by_global_norm(optim.clip_norm), optimizer)
  return optimizer, schedule


def _targets(teacher: Teacher | None, teacher_state, batch, weights) -> dict[str, jax.Array]:
  """What the student learns: the teacher's outputs, or the ground truth without a teacher."""
  if teacher is None:
    return {'kp': batch['kp'], 'jacobian': batch['jacobian']}
  out = teacher.apply(teacher_state, batch['image'])
  keep = ['kp', 'jacobian']
  keep += ['heatmap'] if weights.get('heatmap', 0) > 0 else []
  keep += ['encoder_features'] if weights.get('attention', 0) > 0 else []
  return {k: out[k] for k in keep}


def make_train_step(
  student: Student,
  teacher: Teacher | None,
  optimizer: optax.GradientTransformation,
  schedule: Callable,
  weights: dict[str, float],
  *,
  attention_p: float,
  seed: int,
) -> Callable:
  """Returns train_step(state, rest, teacher_state, batch) -> (state, metrics)."""
  base_key = jax.random.key(seed)

  def train_step(state: TrainState, rest, teacher_state, batch):
    targets = _targets(teacher, teacher_state, batch, weights)

    def loss_fn(params):
      model = student.merge(params, state.batch_stats, rest, train=True)
      nnx.reseed(model, dropout=jax.random.fold_in(base_key, state.step))
      output = model(batch['image'])
      terms = losses.loss_terms(output, targets, attention_p=attention_p)
      return losses.weighted_loss(terms, weights), (terms, nnx.state(model, nnx.BatchStat))

    (loss, (terms, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': loss, 'grad_norm': optax.tree.norm(grads), 'lr': schedule(state.step)}
    metrics.update({f'loss_{name}': value for name, value in terms.items()})
    new_state = TrainState(state.step + 1, params, batch_stats, opt_state)
    return new_state, metrics

  return train_step


def make_eval_step(
  student: Student,
  teacher: Teacher | None,
  weights: dict[str, float],
  *,
  attention_p: float,
) -> Callable:
  """Returns eval_step(params, batch_stats, rest, teacher_state, batch) -> (sums, outputs).

  Sums are per-batch totals (loss terms x batch size, distances summed over
  examples) so that averages over uneven batches are exact.
  """

  def eval_step(params, batch_stats, rest, teacher_state, batch):
    model = student.merge(params, batch_stats, rest, train=False)
    output = model(batch['image'])
    targets = _targets(teacher, teacher_state, batch, weights)
    terms = losses.loss_terms(output, targets, attention_p=attention_p)
    size = batch['image'].shape[0]
    sums = {'loss': losses.weighted_loss(terms, weights) * size, 'count': jnp.asarray(size, float)}
    sums.update({f'loss_{k}': v * size for k, v in terms.items()})
    sums['distance'] = losses.keypoint_distance(output['kp'], targets['kp']) * size
    shown = {'student_kp': output['kp']}
    if 'kp' in batch:  # ground truth (synthetic data)
      sums['student_gt_distance'] = losses.keypoint_distance(output['kp'], batch['kp']) * size
      if teacher is not None:
        sums['teacher_gt_distance'] = losses.keypoint_distance(targets['kp'], batch['kp']) * size
    if teacher is not None:
      shown['teacher_kp'] = targets['kp']
    return sums, shown

  return eval_step


def train_state_to_pure(state: TrainState) -> dict[str, Any]:
  """The train state as nested dicts of arrays, for orbax."""
  return {
    'step': state.step,
    'params': nnx.to_pure_dict(state.params),
    'batch_stats': nnx.to_pure_dict(state.batch_stats),
    # orbax stores plain containers; the optimizer's own tree comes back from the template.
    'opt_state': jax.tree.leaves(state.opt_state),
  }


def train_state_from_pure(template: TrainState, pure: Mapping[str, Any]) -> TrainState:
  params, batch_stats = template.params, template.batch_stats
  nnx.replace_by_pure_dict(params, pure['params'])
  nnx.replace_by_pure_dict(batch_stats, pure['batch_stats'])
  opt_state = jax.tree.unflatten(jax.tree.structure(template.opt_state), pure['opt_state'])
  return TrainState(jnp.asarray(pure['step']), params, batch_stats, opt_state)
