"""Which validation images blow a trained student's jacobians up, and whether BatchNorm is why.

A student's val loss can be dominated by a few images whose jacobians come
out huge in eval mode. This restores a checkpoint of a workdir, runs the
validation split with BatchNorm's running statistics (eval mode, what
`--mode=eval` and the benchmark use) and with each batch's own statistics,
and prints the largest jacobian entry per image under both, the worst
images, and the BatchNorm channels with the smallest running variance (a
channel that is almost always zero in training is divided by about
sqrt(eps) at inference, so an input that does excite it is amplified).

Command line: `python -m tools.outliers --workdir=workdirs/squeeze_unet_dsc [--step=800]
[--top=5]`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from models import layers
from train import checkpoints
from train.experiment import Experiment

# A jacobian entry above this is far outside what the data holds (|J| ~ 1).
BLOWN_UP = 10.0
# A BatchNorm channel whose running variance is below this never varied in training.
DEAD_VARIANCE = 1e-6


def _largest_entries(model: nnx.Module, batches) -> np.ndarray:
  """Per image, the largest |jacobian entry| of `model` as it stands (one compile)."""
  graphdef, state = nnx.split(model)

  @jax.jit
  def largest(state, images):
    jacobian = nnx.merge(graphdef, state)(images)['jacobian']
    return jnp.abs(jacobian).reshape(jacobian.shape[0], -1).max(axis=1)

  return np.concatenate([np.asarray(largest(state, jnp.asarray(b))) for b in batches])


def batch_norms(model: nnx.Module) -> list[tuple[str, layers.BatchNorm]]:
  return [
    ('/'.join(map(str, path)), module)
    for path, module in nnx.iter_graph(model)
    if isinstance(module, layers.BatchNorm)
  ]


def inspect(workdir: str, step: int | None = None) -> dict:
  """Largest jacobian entries per validation image, with running and with batch statistics."""
  model, meta = checkpoints.restore_model(workdir, step)
  if 'experiment' not in meta:
    raise checkpoints.CheckpointError(
      f'{workdir} holds no training run (a converted checkpoint?); pass a training workdir.'
    )
  experiment = Experiment(ml_collections.ConfigDict(meta['experiment']), workdir)
  images = [batch['image'] for batch in experiment.batches('validation')]
  running = _largest_entries(model, images)
  for _, norm in batch_norms(model):  # batch statistics; dropout stays off
    norm.use_running_average = False
  batch = _largest_entries(model, images)
  for _, norm in batch_norms(model):
    norm.use_running_average = True
  variances = sorted(
    (float(np.asarray(norm.var[...]).min()), path, int(np.asarray(norm.var[...]).argmin()))
    for path, norm in batch_norms(model)
  )
  every = np.concatenate([np.asarray(norm.var[...]).ravel() for _, norm in batch_norms(model)])
  return {
    'step': meta.get('step'),
    'running': running,
    'batch': batch,
    'variances': variances,
    'dead_channels': (int((every < DEAD_VARIANCE).sum()), every.size),
  }


def report(found: dict, top: int) -> str:
  lines = [f'checkpoint step {found["step"]}, {len(found["running"])} validation images']
  for label in ('running', 'batch'):
    values = found[label]
    lines.append(
      f'  {label:7s} statistics: largest |jacobian entry| per image: median '
      f'{np.median(values):.3g}, max {values.max():.3g}; '
      f'{int((values > BLOWN_UP).sum())} images above {BLOWN_UP:g}'
    )
  worst = np.argsort(-found['running'])[:top]
  lines.append(
    '  worst images (index: running / batch): '
    + ', '.join(f'{i}: {found["running"][i]:.3g} / {found["batch"][i]:.3g}' for i in worst)
  )
  dead, total = found['dead_channels']
  lines.append(
    f'  BatchNorm: {dead} of {total} channels have a running variance below {DEAD_VARIANCE:g} '
    '(constant in training, e.g. always zero after a ReLU); the smallest:'
  )
  for variance, path, channel in found['variances'][:top]:
    lines.append(f'    {path} channel {channel}: {variance:.3g}')
  return '\n'.join(lines)
