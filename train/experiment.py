"""One run's set-up, built once from its config: everything training and evaluation use.

`Experiment(config, workdir)` checks the config, then builds each part on
first use: the mesh and batch placement, the dataset and its iterators, the
student (graph definitions and initial state), the frozen teacher, the
optimizer, the compiled train and eval steps, and the checkpoint writer.
Training (`train.loop`), `--mode=eval` (`train.evaluate`), the throughput
tool and the outliers tool all build their runs this way.

Data parallel over every device: a `data` mesh axis shards each batch;
parameters, optimizer state and the teacher are replicated. On several
processes (`main.py --multihost`, JAX's multi-controller runtime), each
process reads only its rows of every training batch (data.pipeline's
`shard`); a global batch is the same on one process or many.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import models
from data import pipeline
from models import compiler
from train import checkpoints, config_checks, epochs, precise_bn, teacher
from train.step import Student, Teacher, TrainState, make_eval_step, make_optimizer, make_train_step

# Precise BN reads its own train iterator, seeded apart from training's.
PRECISE_BN_SEED = 7919


class Experiment:
  """The set-up of one run (see the module docstring); parts are built on first use.

  Args:
    config: the experiment config (checked here, one line per problem).
    workdir: where checkpoints and outputs go (None for runs that save nothing).
    teacher_model: a teacher to use instead of loading `config.teacher.checkpoint`
      (the throughput tool times a teacher with random weights).
  """

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike | None = None,
    *,
    teacher_model: nnx.Module | None = None,
  ):
    config_checks.validate(config)
    self.config = config
    if config.get('epochs'):  # the schedule needs the dataset's size
      self.config = epochs.in_steps(config, pipeline.epoch_size(config.data, self.dataset))
    self.workdir = os.path.abspath(workdir) if workdir is not None else None
    self.spec = models.spec(config.model.name)
    self.model_options = models.study_config(self.spec.name, config.model)
    self.input_size = self.spec.input_size
    self.loss_weights = {
      k: float(config.loss[k]) for k in ('kp', 'jacobian', 'heatmap', 'attention')
    }
    self.mesh = Mesh(np.array(jax.devices()), ('data',))
    self.replicated = NamedSharding(self.mesh, P())
    self.sharded = NamedSharding(self.mesh, P('data'))
    self._teacher_model = teacher_model

  @property
  def label(self) -> str:
    """The run's name in progress bars."""
    return self.spec.name

  # ------------------------------------------------------------------ data

  def put(self, batch: dict[str, np.ndarray], *, whole: bool = True) -> dict[str, jax.Array]:
    """Shards a batch over `data` (replicates one whose size the devices do not split).

    `whole`: every process holds the whole batch (evaluation); else this process's rows
    of it (training batches, read per process)."""
    size = next(iter(batch.values())).shape[0]
    split = size * (1 if whole else jax.process_count()) % jax.device_count() == 0
    target = self.sharded if split else self.replicated

    def put(x):
      return jax.make_array_from_process_local_data(target, x, x.shape if whole else None)

    return jax.tree.map(put, batch)

  def _train_iterator(self, seed: int):
    return pipeline.make_iterator(
      self.config.data,
      'train',
      batch_size=self.config.batch_size,
      model_size=self.input_size,
      train=True,
      seed=seed,
      builder=self.dataset,
      shard=(jax.process_index(), jax.process_count()),
    )

  @functools.cached_property
  def dataset(self):
    """The prepared TFDS builder (built on first use, with progress bars).

    On several processes, process 0 builds first and the others wait, then find it
    built (a shared disk) or build their own copy (local disks)."""
    data = self.config.data
    several = jax.process_count() > 1
    failed = builder = None
    if jax.process_index() == 0:
      print(f'data: preparing {data.name} in {os.path.abspath(data.data_dir)}', flush=True)
      try:
        builder = pipeline.prepare(data)
      except (ValueError, OSError) as error:
        if not several:
          raise
        failed = error
    if not several:
      return builder
    from jax.experimental import multihost_utils

    # A collective every process joins, so a failure on process 0 stops all of them.
    if not multihost_utils.broadcast_one_to_all(np.int32(failed is None)):
      if failed is not None:
        raise failed
      raise ValueError('process 0 could not prepare the dataset; its log says why.')
    if builder is None:
      builder = pipeline.prepare(data)
    # Local-disk copies must be the same data on every host.
    multihost_utils.assert_equal(np.int64(pipeline.epoch_size(data, builder)), 'epoch sizes')
    return builder

  @functools.cached_property
  def train_iter(self):
    """The endless, shuffled, augmented, checkpointable train iterator (this process's rows)."""
    return self._train_iterator(self.config.seed)

  def batches(self, split: str = 'validation'):
    """One ordered pass over `split` in batches of `eval_batch_size`."""
    return pipeline.make_iterator(
      self.config.data,
      split,
      batch_size=self.config.eval_batch_size,
      model_size=self.input_size,
      train=False,
      builder=self.dataset,
    )

  @functools.cached_property
  def precise_bn_batches(self) -> list[jax.Array]:
    """The fixed augmented training images of precise BN (train.precise_bn), on the devices."""
    count = -(-self.config.get('precise_bn_images', 0) // self.config.batch_size)
    if not count:
      return []
    iterator = self._train_iterator(self.config.seed + PRECISE_BN_SEED)
    images = (next(iterator)['image'] for _ in range(count))
    return [self.put({'image': image}, whole=False)['image'] for image in images]

  @functools.cached_property
  def _precise_bn(self) -> precise_bn.PreciseBN:
    return precise_bn.PreciseBN(self.student, *self._split_student[1:], self.student.rest)

  def precise_statistics(self, params: nnx.State, batch_stats: nnx.State) -> nnx.State:
    """BatchNorm statistics re-estimated on `precise_bn_batches` (unchanged if there are none)."""
    if not self.precise_bn_batches:
      return batch_stats
    found = self._precise_bn(params, batch_stats, self.rest, self.precise_bn_batches)
    return jax.device_put(found, self.replicated)

  def with_precise_bn(self, state: TrainState) -> TrainState:
    """`state` with precise BatchNorm statistics (the loop calls it before each evaluation)."""
    return state.replace(batch_stats=self.precise_statistics(state.params, state.batch_stats))

  # ---------------------------------------------------------------- models

  @functools.cached_property
  def _split_student(self) -> tuple[Student, nnx.State, nnx.State]:
    seed = self.config.seed
    model = models.create_model(
      self.spec.name, self.model_options, rngs=nnx.Rngs(params=seed, dropout=seed)
    )
    return Student.split(model)

  @property
  def student(self) -> Student:
    return self._split_student[0]

  @functools.cached_property
  def rest(self) -> nnx.State:
    """The student's non-trained variables (RNG streams), on the devices."""
    return jax.device_put(self.student.rest, self.replicated)

  def initial_state(self) -> TrainState:
    """The freshly initialised train state (seeded by `config.seed`), in new buffers each
    call, so that a step donating one leaves the next call's intact."""
    params, batch_stats = jax.tree.map(jnp.copy, self._split_student[1:])
    optimizer, _ = self.optimizer
    return TrainState(jnp.zeros((), jnp.int32), params, batch_stats, optimizer.init(params))

  def model(self, params: nnx.State, batch_stats: nnx.State) -> nnx.Module:
    """The student with these weights, in eval mode."""
    return self.student.merge(params, batch_stats, self.student.rest, train=False)

  @functools.cached_property
  def teacher(self) -> Teacher | None:
    """The frozen teacher (None for supervised runs)."""
    if self.config.task != 'distill':
      return None
    model = self._teacher_model or teacher.load_teacher(self.config)[0]
    return Teacher.split(model)

  @functools.cached_property
  def teacher_state(self) -> nnx.State | None:
    return jax.device_put(self.teacher.state, self.replicated) if self.teacher else None

  # ----------------------------------------------------------------- steps

  @functools.cached_property
  def optimizer(self):
    """(optax transformation, learning-rate schedule)."""
    return make_optimizer(self.config.optim, self.config.num_steps)

  def train_step_fn(self):
    """train_step(state, rest, teacher_state, batch) -> (state, metrics), not compiled."""
    optimizer, schedule = self.optimizer
    return make_train_step(
      self.student,
      self.teacher,
      optimizer,
      schedule,
      self.loss_weights,
      attention_p=self.config.loss.attention_p,
      seed=self.config.seed,
    )

  @functools.cached_property
  def train_step(self):
    """The train step compiled with the project's XLA options; donates `state`."""
    return compiler.jit(self.train_step_fn(), donate_argnums=0)

  @functools.cached_property
  def eval_step(self):
    """eval_step(params, batch_stats, rest, teacher_state, batch) -> (sums, outputs)."""
    step = make_eval_step(
      self.student, self.teacher, self.loss_weights, attention_p=self.config.loss.attention_p
    )
    return compiler.jit(step)

  # ----------------------------------------------------------- checkpoints

  @functools.cached_property
  def checkpoints(self) -> checkpoints.Writer:
    """The writer of WORKDIR/checkpoints (last `keep_checkpoints` steps and the best)."""
    directory = os.path.join(self.workdir, 'checkpoints')
    return checkpoints.Writer(directory, keep=self.config.keep_checkpoints)

  def meta(self, step: int) -> dict[str, Any]:
    """The meta item of a checkpoint of this run."""
    return checkpoints.model_meta(
      self.spec.name,
      self.model_options,
      step=step,
      experiment=json.loads(self.config.to_json()),
      provenance=self.provenance,
    )

  @functools.cached_property
  def provenance(self) -> dict[str, str]:
    """What this run trains on (recorded in every checkpoint's meta)."""
    return teacher.trained_on(self.config.data, self.dataset)

  def check_same_data(self, meta: dict[str, Any], what: str) -> None:
    """Raises CheckpointError when `meta` was trained on another build of the data."""
    saved = meta.get('provenance', {}).get('build')
    current = self.provenance['build']
    if saved is not None and saved != current:
      raise checkpoints.CheckpointError(
        f'{what} was trained on {saved}, but the data is now {current} (the folder or the '
        'data options changed); resume on the same data, or use another --workdir.'
      )

  def check_same_model(self, meta: dict[str, Any], what: str) -> None:
    """Raises CheckpointError naming every model option that differs from this run's."""
    saved = {'name': meta.get('model'), **meta.get('options', {})}
    current = json.loads(json.dumps({'name': self.spec.name, **dict(self.model_options)}))
    if saved != current:
      keys = sorted(set(saved) | set(current))
      differences = ', '.join(
        f'{k}: {saved.get(k)!r} -> {current.get(k)!r}'
        for k in keys
        if saved.get(k) != current.get(k)
      )
      raise checkpoints.CheckpointError(
        f'{what} holds another model ({differences}); use another --workdir or the same model '
        'config.'
      )
