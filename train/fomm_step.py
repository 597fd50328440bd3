"""FOMM's jitted train step and its evaluation pieces, pure functions of an explicit state.

The detector and the generator are one module (`FommPair`), split like a
student (`train.step.Student`) so that BatchNorm's train and eval modes are
two graph definitions. One Adam over both equals FOMM's two Adams with the
same settings (Adam is per parameter). The random transform of the
equivariance terms is drawn from (seed, step), so a resumed run draws what
the uninterrupted run drew.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from train import fomm_losses as fl
from train.step import Student, TrainState


class FommPair(nnx.Module):
  """FOMM's two trained networks under their checkpoint names."""

  def __init__(self, kp_detector: nnx.Module, generator: nnx.Module):
    self.kp_detector = kp_detector
    self.generator = generator


def loss_terms(
  pair: FommPair,
  batch: dict[str, jax.Array],
  key: jax.Array,
  loss: ml_collections.ConfigDict,
  transform: ml_collections.ConfigDict,
  features: Callable | None,
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """FOMM's GeneratorFullModel.forward: (weighted loss terms, generated outputs)."""
  source, driving = batch['source'], batch['driving']
  kp_source, kp_driving = pair.kp_detector(source), pair.kp_detector(driving)
  generated = pair.generator(source, kp_source, kp_driving)
  real = fl.image_pyramid(driving, loss.scales)
  fake = fl.image_pyramid(generated['prediction'], loss.scales)
  terms = {}
  if features is not None:
    terms['perceptual'] = fl.perceptual(features, fake, real, loss.perceptual)
  elif loss.pixel == 'ssim':
    terms['reconstruction'] = loss.pixel_weight * fl.pyramid_ssim(fake, real)
  else:
    terms['reconstruction'] = loss.pixel_weight * fl.pyramid_l1(fake, real)
  if loss.equivariance_value or loss.equivariance_jacobian:
    warp = fl.Transform.random(key, driving.shape[0], **transform)
    kp_transformed = pair.kp_detector(warp.transform_frame(driving))
    if loss.equivariance_value:
      value = fl.equivariance_value(kp_driving, kp_transformed, warp)
      terms['equivariance_value'] = loss.equivariance_value * value
    if loss.equivariance_jacobian:
      value = fl.equivariance_jacobian(kp_driving, kp_transformed, warp)
      terms['equivariance_jacobian'] = loss.equivariance_jacobian * value
  return terms, {'prediction': generated['prediction'], 'kp_driving': kp_driving}


def make_train_step(
  pair: Student,
  optimizer: optax.GradientTransformation,
  schedule: Callable,
  loss: ml_collections.ConfigDict,
  transform: ml_collections.ConfigDict,
  *,
  features: nnx.GraphDef | None,
  seed: int,
) -> Callable:
  """train_step(state, rest, features_state, batch) -> (state, metrics).

  `features`: the frozen VGG19's graph definition (FOMM's perceptual loss), whose
  state is passed as `features_state`; None for the weight-free terms.
  """
  base_key = jax.random.key(seed)
  transform = dict(transform)

  def train_step(state: TrainState, rest, features_state, batch):
    key = jax.random.fold_in(base_key, state.step)
    phi = None if features is None else nnx.merge(features, features_state)

    def loss_fn(params):
      model = pair.merge(params, state.batch_stats, rest, train=True)
      terms, _ = loss_terms(model, batch, key, loss, transform, phi)
      return sum(terms.values()), (terms, nnx.state(model, nnx.BatchStat))

    (total, (terms, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': total, 'grad_norm': optax.tree.norm(grads), 'lr': schedule(state.step)}
    metrics.update({f'loss_{name}': value for name, value in terms.items()})
    return TrainState(state.step + 1, params, batch_stats, opt_state), metrics

  return train_step


def make_reconstruct(pair: Student) -> Callable:
  """reconstruct(params, batch_stats, rest, source, driving) -> (prediction, kp_driving, kp_source)

  FOMM's reconstruction: each driving frame's absolute keypoints re-pose the source."""

  def reconstruct(params, batch_stats, rest, source, driving):
    model = pair.merge(params, batch_stats, rest, train=False)
    kp_source, kp_driving = model.kp_detector(source), model.kp_detector(driving)
    prediction = model.generator(source, kp_source, kp_driving)['prediction']
    return prediction, kp_driving['kp']

  return reconstruct


def make_detect(pair: Student) -> Callable:
  """detect(params, batch_stats, rest, frames) -> (B, K, 2) keypoints."""

  def detect(params, batch_stats, rest, frames):
    return pair.merge(params, batch_stats, rest, train=False).kp_detector(frames)['kp']

  return detect


def l1_per_frame(prediction: jax.Array, real: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(prediction - real), axis=(1, 2, 3))
