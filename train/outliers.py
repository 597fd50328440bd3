"""Which validation images blow a trained student's jacobians up, and whether BatchNorm is why.

A student's val loss can be dominated by a few images whose jacobians come
out huge in eval mode. This restores a checkpoint of a workdir, runs the
validation split with BatchNorm's running statistics (eval mode, what
`--mode=eval` and the benchmark use) and with each batch's own statistics,
and prints the largest jacobian entry per image under both, the worst
images, and the BatchNorm channels with the smallest running variance (a
channel that is almost always zero in training is divided by about
sqrt(eps) at inference, so an input that does excite it is amplified).
It also runs the validation images under plausible perturbations
(`PERTURBATIONS`) and reports the largest jacobian entry and keypoint shift
under each, optionally after re-estimating the statistics with precise BN.

Command line: `python -m tools.outliers --workdir=workdirs/squeeze_unet_dsc [--step=800]
[--top=5] [--precise_bn]`.
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
# precise BN's image count for a checkpoint whose config predates it (configs/base.py's).
PRECISE_BN_IMAGES = 2048
# A BatchNorm channel whose running variance is below this never varied in training.
DEAD_VARIANCE = 1e-6


def _blur(images: np.ndarray, sigma: float = 1.0) -> np.ndarray:
  taps = np.exp(-0.5 * (np.arange(-2, 3) / sigma) ** 2)
  taps /= taps.sum()
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode='edge')
  rows = sum(w * padded[:, i : i + images.shape[1]] for i, w in enumerate(taps))
  return sum(w * rows[:, :, i : i + images.shape[2]] for i, w in enumerate(taps))


# Plausible changes of a validation image (pixels in [0, 1]): name -> (what, function).
PERTURBATIONS = {
  'noise': ('Gaussian noise, sigma 0.05', lambda x, rng: x + rng.normal(0, 0.05, x.shape)),
  'brighter': ('brightness +0.2', lambda x, rng: x + 0.2),
  'darker': ('brightness -0.2', lambda x, rng: x - 0.2),
  'low_contrast': ('contrast x0.6 about 0.5', lambda x, rng: (x - 0.5) * 0.6 + 0.5),
  'high_contrast': ('contrast x1.4 about 0.5', lambda x, rng: (x - 0.5) * 1.4 + 0.5),
  'blur': ('Gaussian blur, sigma 1 pixel', lambda x, rng: _blur(x)),
}


def _runner(model: nnx.Module):
  """batches -> per image, the largest |jacobian entry| and the keypoints (one compile)."""
  graphdef, state = nnx.split(model)

  @jax.jit
  def run(state, images):
    out = nnx.merge(graphdef, state)(images)
    return jnp.abs(out['jacobian']).reshape(images.shape[0], -1).max(axis=1), out['kp']

  def outputs(batches) -> tuple[np.ndarray, np.ndarray]:
    found = [run(state, jnp.asarray(b, jnp.float32)) for b in batches]
    return tuple(np.concatenate([np.asarray(f[i]) for f in found]) for i in range(2))

  return outputs


def _largest_entries(model: nnx.Module, batches) -> np.ndarray:
  return _runner(model)(batches)[0]


def perturbed(model: nnx.Module, images: list[np.ndarray], seed: int = 0) -> dict[str, dict]:
  """Per perturbation: the largest |jacobian entry| per image and the largest keypoint shift."""
  outputs = _runner(model)
  largest, kp = outputs(images)
  found = {'none': {'largest': largest, 'kp_shift': np.zeros(len(largest))}}
  rng = np.random.default_rng(seed)
  for name, (_, change) in PERTURBATIONS.items():
    changed = [np.clip(change(np.asarray(b, np.float64), rng), 0.0, 1.0) for b in images]
    largest, moved = outputs(changed)
    found[name] = {'largest': largest, 'kp_shift': np.linalg.norm(moved - kp, axis=-1).max(1)}
  return found


def _precise(model: nnx.Module, experiment: Experiment) -> None:
  """Replaces the model's BatchNorm statistics by precise BN's (train.precise_bn)."""
  if not experiment.config.get('precise_bn_images'):  # a run from before precise BN
    experiment.config.precise_bn_images = PRECISE_BN_IMAGES
  _, params, batch_stats, _ = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
  nnx.update(model, experiment.precise_statistics(params, batch_stats))


def inspect(workdir: str, step: int | None = None, *, precise: bool = False) -> dict:
  """Largest jacobian entries per validation image, with running and with batch statistics.

  Args:
    workdir: a training workdir.
    step: its checkpoint to read (default: the best).
    precise: re-estimate BatchNorm statistics first (for checkpoints saved without).
  """
  model, meta = checkpoints.restore_model(workdir, step)
  if 'experiment' not in meta:
    raise checkpoints.CheckpointError(
      f'{workdir} holds no training run (a converted checkpoint?); pass a training workdir.'
    )
  experiment = Experiment(ml_collections.ConfigDict(meta['experiment']), workdir)
  if precise:
    _precise(model, experiment)
  images = [batch['image'] for batch in experiment.batches('validation')]
  under = perturbed(model, images)
  running = under['none']['largest']
  for _, norm in layers.batch_norms(model):  # batch statistics; dropout stays off
    norm.use_running_average = False
  batch = _largest_entries(model, images)
  for _, norm in layers.batch_norms(model):
    norm.use_running_average = True
  variances = sorted(
    (float(np.asarray(norm.var[...]).min()), path, int(np.asarray(norm.var[...]).argmin()))
    for path, norm in layers.batch_norms(model)
  )
  every = np.concatenate(
    [np.asarray(norm.var[...]).ravel() for _, norm in layers.batch_norms(model)]
  )
  return {
    'step': meta.get('step'),
    'perturbed': under,
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
  lines.append('  perturbed validation images (eval mode):')
  for name, values in found['perturbed'].items():
    what = PERTURBATIONS[name][0] if name in PERTURBATIONS else 'as stored'
    lines.append(
      f'    {what:28s} largest |jacobian entry| median {np.median(values["largest"]):.3g}, '
      f'max {values["largest"].max():.3g}, {int((values["largest"] > BLOWN_UP).sum())} above '
      f'{BLOWN_UP:g}; keypoint shift median {np.median(values["kp_shift"]):.3g}, '
      f'max {values["kp_shift"].max():.3g}'
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
