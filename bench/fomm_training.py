"""FOMM's training step, JAX beside PyTorch: pairs per second on this machine's CPU.

The same step on the same weights and batch: FOMM's detector and generator
(configs/fomm.py's widths), the pyramid L1 and the two equivariance terms
under a fresh random TPS transform, backward, and Adam. JAX runs the
project's compiled step (train.fomm_step via FommExperiment); PyTorch runs
the twins eagerly (torch_twins.fomm_losses.GeneratorFullModel, FOMM's
forward) with torch.optim.Adam, as FOMM's train.py does. Steps are timed in
alternating blocks (bench.timing.time_interleaved).
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np
import torch

from bench import profiles, timing
from torch_twins import create_twin, porting
from torch_twins import fomm_losses as twin_losses
from train.fomm_experiment import FommExperiment


def _torch_step(experiment: FommExperiment, source: np.ndarray, driving: np.ndarray):
  """One eager PyTorch training step of the twins, starting from the JAX model's weights."""
  config = experiment.config
  initial = experiment.initial_state()
  pair = experiment.model(initial.params, initial.batch_stats)
  detector = create_twin('fomm_teacher', experiment.model_options)
  generator = create_twin('fomm_generator', experiment.generator_options)
  porting.load_into_twin(pair.kp_detector, 'fomm_teacher', detector)
  porting.load_into_twin(pair.generator, 'fomm_generator', generator)
  full = twin_losses.GeneratorFullModel(detector, generator, config.loss, config.transform).train()
  optimizer = torch.optim.Adam(
    full.parameters(), lr=config.optim.lr, betas=(config.optim.b1, config.optim.b2)
  )
  nchw = [torch.from_numpy(x.transpose(0, 3, 1, 2).copy()) for x in (source, driving)]
  batch, points = len(source), config.transform.points_tps

  def step():
    theta = torch.eye(2, 3) + config.transform.sigma_affine * torch.randn(batch, 2, 3)
    params = config.transform.sigma_tps * torch.randn(batch, points**2)
    optimizer.zero_grad()
    loss = sum(full(*nchw, theta, params).values())
    loss.backward()
    optimizer.step()
    return loss

  return step


def _jax_step(experiment: FommExperiment, source: np.ndarray, driving: np.ndarray):
  batch = experiment.put({'source': source, 'driving': driving})
  state = [jax.device_put(experiment.initial_state(), experiment.replicated)]
  step_fn = experiment.train_step

  def step():
    state[0], metrics = step_fn(state[0], experiment.rest, None, batch)
    return jax.block_until_ready(metrics['loss'])

  return step


def compare(
  config: ml_collections.ConfigDict, runs: int, rounds: int, warmup: tuple[int, int] = (3, 1)
) -> dict[str, Any]:
  """Median step times and pairs per second of both frameworks, measured alternately
  (`warmup` untimed steps before the first block and before each later one)."""
  if config.loss.vgg19:
    raise ValueError('the comparison times the weight-free loss; leave loss.vgg19 empty.')
  experiment = FommExperiment(config)
  rng = np.random.default_rng(0)
  size, batch = config.data.image_size, config.batch_size
  source, driving = (rng.uniform(size=(batch, size, size, 3)).astype(np.float32) for _ in range(2))
  steps = {'jax': _jax_step(experiment, source, driving)}
  steps['pytorch'] = _torch_step(experiment, source, driving)
  times = timing.time_interleaved(steps, runs, rounds=rounds, pause_s=0.5, warmup=warmup)
  out = {'batch': batch, 'size': size, 'cpu': timing.cpu_model()}
  out['torch_threads'] = torch.get_num_threads()
  for name, stats in times.items():
    out[name] = {**stats, 'pairs_per_s': batch / stats['median_s']}
  out['jax_speedup'] = times['pytorch']['median_s'] / times['jax']['median_s']
  return out


def profile(config: ml_collections.ConfigDict, steps: int = 3) -> profiles.Breakdown:
  """Where the JAX step's time goes: XLA's kernels over `steps` traced steps (after two
  untraced ones), by family (bench.profiles)."""
  experiment = FommExperiment(config)
  rng = np.random.default_rng(0)
  size, batch = config.data.image_size, config.batch_size
  source, driving = (rng.uniform(size=(batch, size, size, 3)).astype(np.float32) for _ in range(2))
  step = _jax_step(experiment, source, driving)
  step(), step()
  return profiles.profile_xla(step, steps)
