"""The training loop: distil a student from the teacher (or train the teacher itself).

`train_and_evaluate(config, workdir)` is the main job. Resume order: the
latest checkpoint in WORKDIR/checkpoints, else `config.init_from`, else from
scratch. Data parallel over every device: a `data` mesh axis shards the
batch, parameters and optimizer state are replicated.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

import models
from data import pipeline
from models import checkpoint as saved_models
from models import compiler, summary
from train import config_checks, plots, teacher
from train.checkpoints import CheckpointError, Checkpoints
from train.step import Student, Teacher, TrainState, make_eval_step, make_optimizer, make_train_step


class TrainingError(RuntimeError):
  """Training cannot go on (a NaN loss); the last good checkpoint stays."""


def _student_options(config) -> dict:
  """The model options, with a teacher architecture taking 64x64 input (see pipeline)."""
  options = config_checks.model_options(config)
  if config.model.name == 'fomm_teacher':
    options['scale_factor'] = 1.0
  return options


def _weights(config) -> dict[str, float]:
  return {name: float(config.loss[name]) for name in ('kp', 'jacobian', 'heatmap', 'attention')}


def _pure(state: TrainState) -> dict:
  """The train state as nested dicts of arrays, for orbax."""
  return {
    'step': state.step,
    'params': nnx.to_pure_dict(state.params),
    'batch_stats': nnx.to_pure_dict(state.batch_stats),
    # orbax stores plain containers; the optimizer's own tree comes back from the template.
    'opt_state': jax.tree.leaves(state.opt_state),
  }


def _from_pure(template: TrainState, pure: dict) -> TrainState:
  params, batch_stats = template.params, template.batch_stats
  nnx.replace_by_pure_dict(params, pure['params'])
  nnx.replace_by_pure_dict(batch_stats, pure['batch_stats'])
  opt_state = jax.tree.unflatten(jax.tree.structure(template.opt_state), pure['opt_state'])
  return TrainState(jnp.asarray(pure['step']), params, batch_stats, opt_state)


def _comparable(config: ml_collections.ConfigDict) -> dict:
  """What a checkpoint must agree on to be resumed or warm-started from: the model."""
  return json.loads(json.dumps(config.model.to_dict()))


def _check_same_model(meta: dict, config: ml_collections.ConfigDict, what: str) -> None:
  """Raises CheckpointError naming every model option that differs."""
  saved, current = meta['config']['model'], _comparable(config)
  if saved != current:
    raise CheckpointError(
      f'{what} holds another model ({_differences(saved, current)}); use another --workdir '
      'or the same model config.'
    )


def _differences(saved: dict, current: dict) -> str:
  keys = sorted(set(saved) | set(current))
  return ', '.join(
    f'{k}: {saved.get(k)!r} -> {current.get(k)!r}' for k in keys if saved.get(k) != current.get(k)
  )


class _MetricsFile:
  def __init__(self, path: str):
    self.path = path

  def write(self, record: dict) -> None:
    if jax.process_index() == 0:
      with open(self.path, 'a') as f:
        f.write(json.dumps(record) + '\n')

  def truncate(self, step: int) -> None:
    """Drops records after `step` (a killed run may have logged past its last checkpoint)."""
    if jax.process_index() == 0 and os.path.exists(self.path):
      kept = [r for r in self.read() if r['step'] <= step]
      with open(self.path, 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in kept)

  def read(self) -> list[dict]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]


def _scalars(tree: dict) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(tree).items()}


def evaluate(
  eval_step, state: TrainState, rest, teacher_state, config, builder, put, *, split='validation'
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Averages of the loss terms and distances over `split`, plus the first batch's keypoints."""
  iterator = pipeline.make_iterator(
    config.data,
    split,
    batch_size=config.eval_batch_size,
    model_size=64,
    train=False,
    builder=builder,
  )
  totals: dict[str, float] = {}
  shown = None
  for batch in iterator:
    sums, outputs = eval_step(state.params, state.batch_stats, rest, teacher_state, put(batch))
    for key, value in _scalars(sums).items():
      totals[key] = totals.get(key, 0.0) + value
    if shown is None:
      shown = {'image': batch['image'], **jax.device_get(outputs)}
      if 'kp' in batch:
        shown['gt_kp'] = batch['kp']
  count = totals.pop('count')
  return {key: value / count for key, value in totals.items()}, shown


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (or resumes), evaluates and writes checkpoints, metrics, results and plots.

  Returns:
    The results (the Table 4 row and the model's size).
  """
  config_checks.validate(config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  logging.info('workdir %s; devices %s', workdir, jax.devices())

  mesh = Mesh(np.array(jax.devices()), ('data',))
  replicated = NamedSharding(mesh, P())
  sharded = NamedSharding(mesh, P('data'))

  def put(batch):
    """Shards a host batch over `data` (replicates one whose size the devices do not split)."""
    size = next(iter(batch.values())).shape[0]
    target = sharded if size % jax.device_count() == 0 else replicated
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(target, x), batch)

  print(
    f'data: preparing {config.data.name} in {os.path.abspath(config.data.data_dir)}', flush=True
  )
  builder = pipeline.prepare(config.data)

  frozen = None
  if config.task == 'distill':
    teacher_model, teacher_meta = teacher.obtain_teacher(config)
    frozen = Teacher.split(teacher_model)
    logging.info('teacher from %s', config.teacher.checkpoint)
  teacher_state = jax.device_put(frozen.state, replicated) if frozen else None

  model = models.create_model(
    config.model.name,
    _student_options(config),
    rngs=nnx.Rngs(params=config.seed, dropout=config.seed),
  )
  student, params, batch_stats = Student.split(model)
  optimizer, schedule = make_optimizer(config.optim, config.num_steps)
  state = TrainState(jnp.zeros((), jnp.int32), params, batch_stats, optimizer.init(params))

  train_iter = pipeline.make_iterator(
    config.data,
    'train',
    batch_size=config.batch_size,
    model_size=64,
    train=True,
    seed=config.seed,
    builder=builder,
  )
  checkpoints = Checkpoints(os.path.join(workdir, 'checkpoints'), keep=config.keep_checkpoints)
  metrics_file = _MetricsFile(os.path.join(workdir, 'metrics.jsonl'))
  state = _resume_or_init(config, state, checkpoints, train_iter, workdir)
  metrics_file.truncate(int(state.step))

  state = jax.device_put(state, replicated)
  rest = jax.device_put(student.rest, replicated)
  weights = _weights(config)
  train_step = compiler.jit(
    make_train_step(
      student,
      frozen,
      optimizer,
      schedule,
      weights,
      attention_p=config.loss.attention_p,
      seed=config.seed,
    ),
    donate_argnums=0,
  )
  eval_step = compiler.jit(
    make_eval_step(student, frozen, weights, attention_p=config.loss.attention_p)
  )

  start = int(state.step)
  last = config.num_steps
  meta = {'config': json.loads(config.to_json()), 'seed': config.seed}
  val_metrics, shown = None, None
  progress = tqdm(
    total=last,
    initial=start,
    desc=f'{config.model.name}',
    unit='step',
    dynamic_ncols=True,
    disable=jax.process_index() != 0,
  )
  window_start = time.perf_counter()
  window_steps = 0
  for step in range(start + 1, last + 1):
    state, metrics = train_step(state, rest, teacher_state, put(next(train_iter)))
    window_steps += 1
    is_last = step == last
    if step % config.log_every == 0 or is_last or step % config.checkpoint_every == 0:
      scalars = _scalars(metrics)
      if not all(math.isfinite(v) for v in scalars.values()):
        progress.close()
        raise TrainingError(
          f'non-finite training loss at step {step} ({scalars}); nothing was saved after the '
          'last checkpoint. Lower optim.lr or set optim.clip_norm, then rerun to resume.'
        )
      elapsed = time.perf_counter() - window_start
      rate = window_steps * config.batch_size / max(elapsed, 1e-9)
      metrics_file.write({'step': step, 'split': 'train', **scalars, 'images_per_s': rate})
      progress.set_postfix(loss=f'{scalars["loss"]:.4g}', img_s=f'{rate:.0f}')
      window_start, window_steps = time.perf_counter(), 0
    if step % config.eval_every == 0 or is_last:
      val_metrics, shown = evaluate(eval_step, state, rest, teacher_state, config, builder, put)
      metrics_file.write({'step': step, 'split': 'validation', **val_metrics})
      tqdm.write(
        f'step {step}: validation ' + ', '.join(f'{k} {v:.4g}' for k, v in val_metrics.items())
      )
      window_start = time.perf_counter()  # images/s measures training, not evaluation
    if step % config.checkpoint_every == 0 or is_last:
      val_loss = val_metrics['loss'] if val_metrics and step % config.eval_every == 0 else None
      if is_last and val_metrics:
        val_loss = val_metrics['loss']
      checkpoints.save(
        step, _pure(state), train_iter.get_state(), {**meta, 'step': step, 'val_loss': val_loss}
      )
    progress.update(1)
  progress.close()

  if val_metrics is None:  # resumed at the very end: evaluate what was restored
    val_metrics, shown = evaluate(eval_step, state, rest, teacher_state, config, builder, put)
  checkpoints.close()
  results = _results(config, state, val_metrics, metrics_file.read())
  if jax.process_index() == 0:
    _write_outputs(config, workdir, results, metrics_file.read(), shown)
    if config.export_model:
      _export(config, student, state, rest)
  return results


def _resume_or_init(config, state, checkpoints, train_iter, workdir) -> TrainState:
  latest = checkpoints.latest_step()
  abstract = jax.tree.map(np.asarray, _pure(state))
  if latest is not None:
    _check_same_model(checkpoints.meta(latest), config, f'{workdir} (checkpoints)')
    pure, data_state, _ = checkpoints.restore(latest, abstract)
    train_iter.set_state(data_state)
    print(f'resuming from step {latest} in {checkpoints.directory}', flush=True)
    return _from_pure(state, pure)
  if config.init_from:
    return _warm_start(config, state, abstract)
  return state


def _warm_start(config, state: TrainState, abstract: dict) -> TrainState:
  """Student weights from another run's workdir (its best checkpoint) or a saved model."""
  path = os.path.abspath(config.init_from)
  if os.path.isdir(os.path.join(path, 'meta')):  # a saved model
    model, meta = saved_models.load_model(path)
    if meta['model'] != config.model.name:
      raise CheckpointError(f'init_from {path} is a {meta["model"]}, not a {config.model.name}.')
    pure = {
      'params': nnx.to_pure_dict(nnx.state(model, nnx.Param)),
      'batch_stats': nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)),
    }
  else:
    directory = (
      os.path.join(path, 'checkpoints')
      if os.path.isdir(os.path.join(path, 'checkpoints'))
      else path
    )
    if not os.path.isdir(directory):
      raise CheckpointError(f'init_from {path}: no such folder.')
    source = Checkpoints(directory, keep=1_000_000)
    step = source.best_step()
    if step is None:
      raise CheckpointError(f'init_from {path}: no checkpoints in {directory}.')
    _check_same_model(source.meta(step), config, f'init_from {path}')
    pure, _, _ = source.restore(step, abstract)
  params, batch_stats = state.params, state.batch_stats
  nnx.replace_by_pure_dict(params, pure['params'])
  nnx.replace_by_pure_dict(batch_stats, pure['batch_stats'])
  print(f'warm start from {path}', flush=True)
  return TrainState(state.step, params, batch_stats, state.opt_state)


def _results(config, state, val_metrics, records) -> dict[str, Any]:
  train = [r['loss'] for r in records if r['split'] == 'train']
  evals = [r['step'] for r in records if r['split'] == 'validation']
  window_start = evals[-2] if len(evals) > 1 else 0
  recent = [r['loss'] for r in records if r['split'] == 'train' and r['step'] > window_start]
  # The live model's buffers were donated to the train step: count a fresh one of the same config.
  fresh = models.create_model(config.model.name, _student_options(config), rngs=nnx.Rngs(0))
  counted = summary.summarize(fresh, per_layer_xla=False)
  return {
    'model': config.model.name,
    'task': config.task,
    'steps': int(state.step),
    'train_loss': float(np.mean(recent or train or [float('nan')])),
    'val_loss': val_metrics['loss'],
    'val_distance': val_metrics['distance'],
    **{k: v for k, v in val_metrics.items() if k not in ('loss', 'distance')},
    'params': counted.params,
    'mult_adds_m': counted.mult_adds / 1e6,
    'images_per_s': float(
      np.median([r['images_per_s'] for r in records if r['split'] == 'train'] or [0])
    ),
  }


def _write_outputs(config, workdir, results, records, shown) -> None:
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2)
  plots.loss_curves(records, os.path.join(workdir, 'loss_curves.png'), title=config.model.name)
  if shown is not None:
    plots.keypoints_grid(shown, os.path.join(workdir, 'val_keypoints.png'), title=config.model.name)
  row = (
    f'{results["model"]}: train loss {results["train_loss"]:.4f}, val loss '
    f'{results["val_loss"]:.4f}, val distance {results["val_distance"]:.4f}; '
    f'{results["params"]:,} params, {results["mult_adds_m"]:.2f} M mult-adds'
  )
  print(row, flush=True)
  print(f'wrote {workdir}/results.json, loss_curves.png, val_keypoints.png', flush=True)


def _export(config, student: Student, state: TrainState, rest) -> None:
  model = student.merge(state.params, state.batch_stats, rest, train=False)
  options = _student_options(config)
  path = os.path.abspath(config.export_model)
  if os.path.exists(path):
    import shutil

    shutil.rmtree(path)  # the export always reflects the latest training
  saved_models.save_model(
    path,
    model,
    name=config.model.name,
    config=models.model_config(config.model.name, options),
    metadata={'trained_by': 'train.loop', 'steps': int(state.step)},
  )
  print(f'exported {config.model.name} to {path}', flush=True)


def evaluate_only(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """--mode=eval: restores the best checkpoint of `workdir` and evaluates it."""
  config_checks.validate(config)
  checkpoints = Checkpoints(os.path.join(os.path.abspath(workdir), 'checkpoints'), keep=10**6)
  step = checkpoints.best_step()
  if step is None:
    raise CheckpointError(f'no checkpoints in {checkpoints.directory}; train first.')
  builder = pipeline.prepare(config.data)
  frozen = None
  if config.task == 'distill':
    frozen = Teacher.split(teacher.obtain_teacher(config)[0])
  model = models.create_model(config.model.name, _student_options(config), rngs=nnx.Rngs(0))
  student, params, batch_stats = Student.split(model)
  optimizer, _ = make_optimizer(config.optim, config.num_steps)
  state = TrainState(jnp.zeros((), jnp.int32), params, batch_stats, optimizer.init(params))
  _check_same_model(checkpoints.meta(step), config, f'{workdir} (checkpoints)')
  pure, _, _ = checkpoints.restore(step, jax.tree.map(np.asarray, _pure(state)))
  state = _from_pure(state, pure)
  eval_step = compiler.jit(
    make_eval_step(student, frozen, _weights(config), attention_p=config.loss.attention_p)
  )
  metrics, _ = evaluate(
    eval_step, state, student.rest, frozen.state if frozen else None, config, builder, lambda b: b
  )
  print(f'step {step} (best by val loss): ' + ', '.join(f'{k} {v:.4g}' for k, v in metrics.items()))
  with open(os.path.join(workdir, 'eval_results.json'), 'w') as f:
    json.dump({'step': step, **metrics}, f, indent=2)
  return metrics
