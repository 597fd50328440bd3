"""FOMM's own training run (config.task == 'fomm'): the set-up `train.loop` drives.

An `Experiment` whose model is FOMM's detector and generator together
(`train.fomm_step.FommPair`), fed pairs of frames of one clip
(`data.clip_pairs`), with no teacher: the frozen state the loop passes to
the step is VGG19's, when `loss.vgg19` names its weights. Resuming,
preemption, checkpoints and the workdir lock are the loop's, as for every
run. Each evaluation measures, on the validation clips:
- `reconstruction_l1`: FOMM's reconstruction protocol (each clip's first
  frame re-posed by every frame's keypoints; mean L1 over pixels in [0, 1]),
  the validation loss that picks the best step;
- `landmark_error` (and `_interocular`): the linear-regression protocol
  (train.landmark_regression) from the keypoints to the true landmarks,
  fitted on training frames, on every validation frame.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import models
from data import clip_pairs
from models import compiler
from train import checkpoints, config_checks, fomm_plots, fomm_step, landmark_regression
from train.experiment import Experiment
from train.step import Student, TrainState

# The name recorded in the checkpoints' meta: not a zoo model (`restore_model` says so).
NAME = 'fomm_pair'


class FommExperiment(Experiment):
  """FOMM's training set-up (see the module docstring); parts are built on first use."""

  label = 'fomm'

  def __init__(self, config: ml_collections.ConfigDict, workdir: str | os.PathLike | None = None):
    config_checks.validate(config)
    self.config = config
    self.workdir = os.path.abspath(workdir) if workdir is not None else None
    self.spec = models.spec('fomm_teacher')
    self.model_options = models.study_config(self.spec.name, config.model)
    self.generator_options = models.model_config('fomm_generator', config.generator)
    self.input_size = config.data.image_size
    self.mesh = Mesh(np.array(jax.devices()), ('data',))
    self.replicated = NamedSharding(self.mesh, P())
    self.sharded = NamedSharding(self.mesh, P('data'))
    self._teacher_model = None

  # ------------------------------------------------------------------ data

  def _train_iterator(self, seed: int):
    return clip_pairs.make_pair_iterator(
      self.config.data,
      batch_size=self.config.batch_size,
      seed=seed,
      builder=self.dataset,
      shard=(jax.process_index(), jax.process_count()),
    )

  @functools.cached_property
  def validation_clips(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(clip id, frames uint8 (T, H, W, 3), true landmarks (T, L, 2)) of every validation clip."""
    return clip_pairs.clip_frames(self.dataset, 'validation')

  @functools.cached_property
  def regression_frames(self) -> tuple[np.ndarray, np.ndarray]:
    """(frames, landmarks) the landmark regression is fitted on: evenly spaced frames of the
    first `regression_clips` training clips."""
    config = self.config
    clips = clip_pairs.clip_frames(self.dataset, 'train', max_clips=config.regression_clips)
    return clip_pairs.frames_and_landmarks(clips, config.regression_frames_per_clip)

  # ---------------------------------------------------------------- models

  @functools.cached_property
  def _split_student(self) -> tuple[Student, nnx.State, nnx.State]:
    rngs = nnx.Rngs(params=self.config.seed, dropout=self.config.seed)
    pair = fomm_step.FommPair(
      models.create_model(self.spec.name, self.model_options, rngs=rngs),
      models.create_model('fomm_generator', self.generator_options, rngs=rngs),
    )
    return Student.split(pair)

  @property
  def teacher(self):
    return None  # FOMM learns alone

  @functools.cached_property
  def _features(self) -> tuple[nnx.GraphDef, nnx.State] | None:
    """VGG19 (graph definition, state) for FOMM's perceptual loss, or None."""
    if not self.config.loss.vgg19:
      return None
    from train import vgg19_weights

    return nnx.split(vgg19_weights.load(self.config.loss.vgg19))

  @functools.cached_property
  def teacher_state(self) -> nnx.State | None:
    """The frozen state the loop passes to the step: VGG19's weights (or None)."""
    return None if self._features is None else jax.device_put(self._features[1], self.replicated)

  def detector(self, params: nnx.State, batch_stats: nnx.State) -> nnx.Module:
    """The keypoint detector with these weights, in eval mode."""
    return self.model(params, batch_stats).kp_detector

  # ----------------------------------------------------------------- steps

  def train_step_fn(self):
    optimizer, schedule = self.optimizer
    return fomm_step.make_train_step(
      self.student,
      optimizer,
      schedule,
      self.config.loss,
      self.config.transform,
      features=None if self._features is None else self._features[0],
      seed=self.config.seed,
    )

  @functools.cached_property
  def _reconstruct(self):
    return compiler.jit(fomm_step.make_reconstruct(self.student))

  @functools.cached_property
  def _detect(self):
    return compiler.jit(fomm_step.make_detect(self.student))

  def _batches(self, frames: np.ndarray):
    size = self.config.eval_batch_size
    for start in range(0, len(frames), size):
      yield frames[start : start + size].astype(np.float32) / 255.0

  def evaluate(self, params: nnx.State, batch_stats: nnx.State) -> tuple[dict, dict]:
    """Reconstruction L1 and landmark regression errors on the validation clips."""
    l1, kp_found, kp_true, shown = [], [], [], None
    for _, video, landmarks in self.validation_clips:
      source = video[:1].astype(np.float32) / 255.0
      found = []
      for driving in self._batches(video):
        sources = np.broadcast_to(source, driving.shape)
        prediction, kp = self._reconstruct(params, batch_stats, self.rest, sources, driving)
        l1.append(np.asarray(fomm_step.l1_per_frame(prediction, jnp.asarray(driving))))
        found.append(np.asarray(kp))
        if shown is None:
          shown = {'source': source[0], 'driving': driving, 'prediction': np.asarray(prediction)}
          shown['kp'] = np.asarray(kp)
      kp_found.append(np.concatenate(found))
      kp_true.append(landmarks)
    fit_images, fit_landmarks = self.regression_frames
    fit_kp = np.concatenate(
      [
        np.asarray(self._detect(params, batch_stats, self.rest, b))
        for b in self._batches(fit_images)
      ]
    )
    errors = landmark_regression.regression_errors(
      fit_kp, fit_landmarks, np.concatenate(kp_found), np.concatenate(kp_true)
    )
    reconstruction = float(np.concatenate(l1).mean())
    metrics = {'loss': reconstruction, 'reconstruction_l1': reconstruction}
    metrics.update({f'landmark_{k}': v for k, v in errors.items()})
    return metrics, shown

  # ----------------------------------------------------------- checkpoints

  def meta(self, step: int) -> dict[str, Any]:
    options = {'kp_detector': dict(self.model_options), 'generator': dict(self.generator_options)}
    return {
      'model': NAME,
      'options': json.loads(json.dumps(options)),
      'step': step,
      'experiment': json.loads(self.config.to_json()),
      'provenance': self.provenance,
    }

  def check_same_model(self, meta: dict[str, Any], what: str) -> None:
    saved = json.loads(json.dumps(meta.get('options', {})))
    current = json.loads(json.dumps(self.meta(0)['options']))
    if meta.get('model') != NAME or saved != current:
      raise checkpoints.CheckpointError(
        f'{what} holds another model than this FOMM run ({meta.get("model")} with other '
        'options); use another --workdir or the same config.'
      )

  # ---------------------------------------------------------------- outputs

  def finish(self, state: TrainState, val_metrics: dict, records: list[dict], shown) -> dict:
    """results.json, the pictures, and the trained detector and generator as model folders."""
    train = [r for r in records if r['split'] == 'train']
    outcome = {
      'model': self.label,
      'task': 'fomm',
      'steps': int(state.step),
      'train_loss': float(np.mean([r['loss'] for r in train[-8:]] or [float('nan')])),
      **val_metrics,
      'pairs_per_s': float(np.median([r['images_per_s'] for r in train] or [0])),
      'detector': os.path.join(self.workdir, 'detector'),
      'generator': os.path.join(self.workdir, 'generator'),
    }
    if jax.process_index() != 0:
      return outcome
    pair = self.model(state.params, state.batch_stats)
    for part, name, options in (
      ('detector', self.spec.name, self.model_options),
      ('generator', 'fomm_generator', self.generator_options),
    ):
      shutil.rmtree(outcome[part], ignore_errors=True)  # this run's own output, rewritten
      module = pair.kp_detector if part == 'detector' else pair.generator
      checkpoints.save_model(
        outcome[part], module, name=name, options=options, provenance=self.provenance,
        trained_as='fomm', step_trained=int(state.step),
      )  # fmt: skip
    # The run's config, for the commands that read its clips (tools.study --plan=fomm).
    with open(os.path.join(self.workdir, 'config.json'), 'w') as f:
      f.write(self.config.to_json(indent=2))
    with open(os.path.join(self.workdir, 'results.json'), 'w') as f:
      json.dump(outcome, f, indent=2)
    fomm_plots.curves(records, os.path.join(self.workdir, 'loss_curves.png'))
    if shown is not None:
      fomm_plots.reconstruction(shown, os.path.join(self.workdir, 'val_reconstruction.png'))
    print(
      f'fomm: reconstruction L1 {val_metrics["reconstruction_l1"]:.4f}, landmark regression '
      f'error {val_metrics["landmark_error"]:.4f} ({val_metrics["landmark_error_interocular"]:.1%}'
      ' of the inter-ocular distance)',
      flush=True,
    )
    print(f'wrote {self.workdir}/results.json, config.json, loss_curves.png, '
          'val_reconstruction.png, detector/, generator/', flush=True)  # fmt: skip
    return outcome
