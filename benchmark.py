"""XLA-compiled CPU inference beside PyTorch on the same weights, and beside the article.

  python benchmark.py                                  # every model, 1 and 2 threads
  python benchmark.py --models=edgesegnet --runs=500 --threads=1
  python benchmark.py --checkpoint=workdirs/edgeseg    # time trained weights
  python benchmark.py --runs=3 --models=squeeze_unet --out=/tmp/bench   # quick

Writes OUT/table3.md, OUT/figure1.md, OUT/ablations.md, OUT/results.json and
OUT/figure1.png.

Each thread count runs in its own process pinned to that many cores
(os.sched_setaffinity before JAX starts: XLA sizes its thread pool from the
cores it may use, and no flag caps it), so JAX and PyTorch get the same
cores. JAX: `models.compiler.InferenceFunction`, an ahead-of-time compiled
function of (flattened weights, input) under the project's XLA options, inputs
already on the device, warm-up, block_until_ready, median of --runs calls; the
same function under XLA's default options is timed too (OUT/ablations.md).
PyTorch: the twin with the same weights, eval mode, inference_mode,
torch.set_num_threads, the better of NCHW and channels_last. Outputs are
compared before timing, and the JAX and PyTorch functions are timed in
alternating blocks so that their ratio comes from the same minutes.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

FIGURE1_SIZES = (4, 8, 16, 32, 64)


def _cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown CPU'


def _stats(times: list[float]) -> dict[str, float]:
  times = np.asarray(times)
  return {
    'median_s': float(np.median(times)),
    'p10_s': float(np.percentile(times, 10)),
    'p90_s': float(np.percentile(times, 90)),
  }


def _time_interleaved(fns: dict, runs: int, rounds: int = 5, pause_s: float = 0.2) -> dict:
  """Times each function `runs` times in alternating blocks, so that drifts in
  the machine's speed (these are shared VMs) fall on all of them alike.

  Before each block: a pause, so that the previous framework's worker threads
  (OpenMP's spin-wait, XLA's pool) have gone idle, then two untimed calls.
  """
  times = {name: [] for name in fns}
  for round_ in range(rounds):
    block = runs // rounds + (round_ < runs % rounds)
    for name, fn in fns.items():
      time.sleep(pause_s)
      for _ in range(2 if round_ else 5):
        fn()
      for _ in range(block):
        start = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - start)
  return {name: _stats(values) for name, values in times.items()}


def _time(fn, runs: int, warmup: int = 5) -> dict[str, float]:
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return _stats(times)


# ---------------------------------------------------------------- worker side


def _peak_gflops(runs: int) -> float:
  """float32 2048x2048 matrix product rate: the machine's practical peak on these cores."""
  import jax
  import jax.numpy as jnp

  n = 2048
  a = jnp.ones((n, n), jnp.float32)
  matmul = jax.jit(jnp.matmul).lower(a, a).compile()
  stats = _time(lambda: matmul(a, a).block_until_ready(), max(runs // 20, 3), warmup=2)
  return 2 * n**3 / stats['median_s'] / 1e9


def _load_weights(name: str, checkpoint: str | None):
  """(Flax model in eval mode, its options) with random or saved weights."""
  from flax import nnx

  import models
  from models import checkpoint as saved

  if checkpoint:
    path = checkpoint
    if os.path.isdir(os.path.join(checkpoint, 'checkpoints')):  # a training workdir
      path = _export_best(checkpoint)
    model, meta = saved.load_model(path)
    if meta['model'] != name:
      raise ValueError(f'--checkpoint {checkpoint} holds a {meta["model"]}, not {name}.')
    return model, saved.tuples_from_json(meta['config'])
  model = models.create_model(name, rngs=nnx.Rngs(0))
  model.eval()
  return model, dict(models.default_config(name))


def _export_best(workdir: str) -> str:
  """Saves the best checkpoint of a training workdir as a model folder (once)."""
  import models
  from models import checkpoint as saved
  from train.checkpoints import Checkpoints, saved_model

  target = os.path.join(workdir, 'best_model')
  if os.path.isdir(target):
    return target
  model, meta = Checkpoints(os.path.join(workdir, 'checkpoints'), keep=10**6).load_model()
  name, options = saved_model(meta)
  saved.save_model(target, model, name=name, config=models.model_config(name, options))
  return target


def _bench_model(name: str, args, threads: int) -> dict:
  import jax
  import jax.numpy as jnp
  import torch

  from models import compiler, summary
  from torch_twins import create_twin, porting

  model, options = _load_weights(name, args.checkpoint)
  size = model.default_input_size
  counted = summary.summarize(model, (args.batch, size, size, 3), per_layer_xla=False)
  images = np.random.default_rng(0).uniform(size=(args.batch, size, size, 3)).astype(np.float32)

  x = jax.device_put(jnp.asarray(images))
  start = time.perf_counter()
  infer = compiler.InferenceFunction(model, x.shape)
  compile_s = time.perf_counter() - start
  jax_kp = np.asarray(infer(x)['kp'])
  # The same function under XLA's default CPU options: what models.compiler buys.
  defaults = compiler.InferenceFunction(model, x.shape, xla_defaults=True)

  torch.set_num_threads(threads)
  twin = create_twin(name, options).eval()
  porting.load_into_twin(model, name, twin)
  nchw = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
  layouts = {
    'nchw': (twin, nchw),
    'channels_last': (
      copy.deepcopy(twin).to(memory_format=torch.channels_last),
      nchw.contiguous(memory_format=torch.channels_last),
    ),
  }
  with torch.inference_mode():
    error = 0.0
    for net, batch in layouts.values():
      error = max(error, float(np.abs(net(batch)['kp'].numpy() - jax_kp).max()))
    if error > 1e-3:
      raise RuntimeError(f'{name}: JAX and PyTorch disagree by {error} on the same weights.')
    # All four timed in alternating blocks: their ratios come from the same minutes.
    stats = _time_interleaved(
      {
        'jax': lambda: jax.block_until_ready(infer(x)),
        'jax_xla_defaults': lambda: jax.block_until_ready(defaults(x)),
        **{layout: (lambda n=net, b=batch: n(b)) for layout, (net, batch) in layouts.items()},
      },
      args.runs,
    )
  jax_stats, defaults_stats = stats['jax'], stats['jax_xla_defaults']
  layout = min(layouts, key=lambda name: stats[name]['median_s'])
  torch_stats = stats[layout]
  # The work the timed function does, as XLA counts it before optimisation (2 per
  # multiply-add, plus elementwise ops). Not 2 x mult-adds: torchinfo counts a
  # stride-2 transposed conv 4x, and students run their 1x1 tails before upsampling.
  # (The compiled executable's count came out below the work done for the teacher: not used.)
  executed_flops = counted.xla_flops
  return {
    'model': name,
    'threads': threads,
    'params': counted.params,
    'mult_adds_m': counted.mult_adds / 1e6,
    'pass_size_mb': counted.pass_size_mb,
    'xla_gflops': executed_flops / 1e9,
    'compile_s': compile_s,
    'jax': jax_stats,
    'jax_xla_defaults': defaults_stats,
    'torch': torch_stats,
    'torch_layout': layout,
    'max_kp_difference': error,
    'jax_over_torch': jax_stats['median_s'] / torch_stats['median_s'],
    'jax_gflops_per_s': executed_flops / jax_stats['median_s'] / 1e9,
  }


def _bench_figure1(args, threads: int) -> list[dict]:
  """A 3x3 conv (64 -> 128) and its depthwise separable counterpart at S x S, both frameworks."""
  import jax
  import jax.numpy as jnp
  import torch
  from flax import nnx

  from models import compiler, layers

  torch.set_num_threads(threads)
  rows = []
  for size in FIGURE1_SIZES:
    x = np.random.default_rng(0).uniform(size=(args.batch, size, size, 64)).astype(np.float32)
    for kind in ('conv', 'dsc'):
      block = layers.conv(64, 128, 3, padding=1, separable=kind == 'dsc', rngs=nnx.Rngs(0))
      graphdef, state = nnx.split(block)
      compiled = (
        compiler.jit(lambda s, x, g=graphdef: nnx.merge(g, s)(x))
        .lower(state, jnp.asarray(x))
        .compile()
      )
      xj = jax.device_put(jnp.asarray(x))
      jax_stats = _time(lambda c=compiled, s=state, xj=xj: c(s, xj).block_until_ready(), args.runs)
      if kind == 'conv':
        net = torch.nn.Conv2d(64, 128, 3, padding=1)
      else:
        net = torch.nn.Sequential(
          torch.nn.Conv2d(64, 64, 3, padding=1, groups=64), torch.nn.Conv2d(64, 128, 1)
        )
      xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
      with torch.inference_mode():
        torch_stats = _time(lambda net=net, xt=xt: net(xt), args.runs)
      rows.append(
        {
          'size': size,
          'kind': kind,
          'threads': threads,
          'jax_s': jax_stats['median_s'],
          'torch_s': torch_stats['median_s'],
        }
      )
  return rows


def _bench_ablations(args) -> list[dict]:
  """What each hand-written form buys over the straightforward XLA one, same shapes."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from jax import lax

  from models import compiler, convolution, layers, ops
  from models.keypoint_head import Deferred, KeypointHead

  rng = np.random.default_rng(0)
  rows = []
  dimensions = ('NHWC', 'HWIO', 'NHWC')

  def array(*shape):
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)

  def timed(fn, *arrays):
    compiled = compiler.jit(fn).lower(*arrays).compile()
    return _time(lambda: jax.block_until_ready(compiled(*arrays)), args.runs)['median_s']

  def compare(what, before, after, before_fn, after_fn, *arrays):
    # Same function first, else the timing means nothing.
    expected, got = jax.tree.leaves(before_fn(*arrays)), jax.tree.leaves(after_fn(*arrays))
    for e, g in zip(expected, got, strict=True):
      error = float(np.abs(np.asarray(g) - np.asarray(e)).max())
      if error > 1e-4 * (float(np.abs(np.asarray(e)).max()) + 1):
        raise RuntimeError(f'ablation {what!r}: the two forms disagree by {error}.')
    rows.append(
      {
        'what': what,
        'before': before,
        'after': after,
        'before_s': timed(before_fn, *arrays),
        'after_s': timed(after_fn, *arrays),
      }
    )

  def grouped(x, k, stride=1, padding=1):
    return lax.conv_general_dilated(
      x, k[:, :, None, :], (stride, stride), ((padding, padding),) * 2,
      dimension_numbers=dimensions, feature_group_count=x.shape[-1],
    )  # fmt: skip

  # Depthwise 3x3 at the sizes the DSC student runs it (64 and 16 channels x 32 and 16 px).
  for channels, size in ((64, 32), (16, 16), (128, 8)):
    compare(
      f'depthwise 3x3, {channels} channels, {size}x{size}',
      'feature_group_count conv',
      'shifted multiply-adds',
      grouped,
      lambda x, k: convolution.depthwise_conv2d(x, k, padding=1),
      array(args.batch, size, size, channels),
      array(3, 3, channels),
    )
  # FOMM's anti-alias downsampling of a 256x256 frame: 13x13 grouped conv vs two matmuls.
  g = ops.anti_alias_kernel_1d(0.25)
  gaussian = jnp.asarray(np.outer(g, g)[:, :, None] * np.ones((1, 1, 3)), jnp.float32)
  compare(
    'anti-alias 256 -> 64, 3 channels',
    '13x13 grouped conv, stride 4',
    'two matrix products',
    lambda x: grouped(x, gaussian, stride=4, padding=6),
    lambda x: ops.anti_alias_downsample(x, 0.25),
    jnp.asarray(rng.uniform(size=(args.batch, 256, 256, 3)), jnp.float32),
  )
  # The teacher's two 7x7 heads on its 64x64x35 hourglass output.
  compare(
    'teacher heads 7x7, 35 -> 10 + 40, 64x64',
    'two convs',
    'one conv, kernels concatenated',
    lambda x, a, b: (convolution.conv2d(x, a), convolution.conv2d(x, b)),
    lambda x, a, b: jnp.split(convolution.conv2d(x, jnp.concatenate([a, b], axis=-1)), [10], -1),
    array(args.batch, 64, 64, 35),
    array(7, 7, 35, 10),
    array(7, 7, 35, 40),
  )
  # FOMM's up blocks (nearest x2, then a 3x3 conv): the largest, where the sub-pixel form
  # is used, and a small wide one, where it is not (`convolution.upsampled_conv_form`).
  for what, after, size, features in (
    ('128 -> 32, 32x32 -> 64x64', 'sub-pixel: four 2x2 convs at 32x32', 32, (128, 32)),
    ('1024 -> 256, 4x4 -> 8x8', 'sub-pixel (not used below 8x8)', 4, (1024, 256)),
  ):
    compare(
      f'FOMM up block, nearest x2 + 3x3, {what}',
      'upsample, then conv',
      after,
      lambda x, k: convolution.conv2d_after_upsample(x, k, factor=2, padding=1, form='upsample'),
      lambda x, k: convolution.conv2d_after_upsample(x, k, factor=2, padding=1, form='subpixel'),
      array(args.batch, size, size, features[0]),
      array(3, 3, *features),
    )
  # EdgeSegNet's tail: the 1x1 projection and head convs after or before the x4 upsampling.
  rngs = nnx.Rngs(0)
  projection, head = layers.Conv(88, 35, 1, rngs=rngs), KeypointHead(35, rngs=rngs)
  outputs = lambda out: (out['kp'], out['jacobian'])  # noqa: E731
  compare(
    'EdgeSegNet tail, 16x16x88 -> x4 -> 1x1 to 35 -> head 1x1 to 10 + 40',
    'upsample, then 1x1 convs at 64x64',
    '1x1 convs composed, at 16x16, then upsample',
    lambda x: outputs(head(projection(ops.upsample_bilinear(x, 4)))),
    lambda x: outputs(head(Deferred(x, projection, upsample=4))),
    array(args.batch, 16, 16, 88),
  )
  first, second = layers.Conv(88, 88, 1, rngs=rngs), layers.Conv(88, 88, 1, rngs=rngs)
  compare(
    'EdgeSegNet refine module 1x1s, 88 -> 88 -> 88, 16x16',
    'two convs, one after the other',
    'one matmul to [K1, K1 @ K2]',
    lambda x: (first(x), second(first(x))),
    lambda x: layers.pointwise_pair(first, second, x),
    array(args.batch, 16, 16, 88),
  )
  # Conv forms picked by convolution.conv_form, on shapes of the zoo.
  for what, form, x, k, stride, padding in (
    ('EdgeSegNet stem 7x7/2, 3 -> 8, 64x64', 'row_shift', (64, 64, 3), (7, 7, 3, 8), 2, 3),
    ('3x3, 8 -> 32, 16x16 (Squeeze encoder-decoder)', 'im2col', (16, 16, 8), (3, 3, 8, 32), 1, 1),
  ):
    compare(
      what,
      'XLA conv',
      form.replace('_', '-') + ' matmul',
      lambda x, k, s=stride, p=padding: convolution.conv2d(
        x, k, stride=s, padding=p, form='direct'
      ),
      lambda x, k, s=stride, p=padding, f=form: convolution.conv2d(
        x, k, stride=s, padding=p, form=f
      ),
      array(args.batch, *x),
      array(*k),
    )

  # Squeeze U-Net's first up block: a 3x3 transposed conv, 512 -> 192 channels at 4x4.
  def flipped_kernel(x, k):
    return lax.conv_general_dilated(
      x, k[::-1, ::-1], (1, 1), ((1, 1), (1, 1)), dimension_numbers=dimensions
    )

  compare(
    'transposed 3x3/1, 512 -> 192, 4x4',
    'conv with the kernel flipped per call',
    'flipped activations, kernel as stored',
    flipped_kernel,
    lambda x, k: convolution.conv_transpose2d(x, k, stride=1, padding=1),
    array(args.batch, 4, 4, 512),
    array(3, 3, 512, 192),
  )

  def zero_inserted_depthwise(x, k):
    x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (1, 2, 1), (1, 2, 1), (0, 0, 0)])
    return convolution.depthwise_conv2d(x, k[::-1, ::-1])

  compare(
    'depthwise transposed 3x3/2, 128 channels, 8x8 -> 16x16',
    'shifted MACs over zero-inserted input',
    'sub-pixel shifted MACs',
    zero_inserted_depthwise,
    lambda x, k: convolution.depthwise_conv_transpose2d(
      x, k, stride=2, padding=1, output_padding=1
    ),
    array(args.batch, 8, 8, 128),
    array(3, 3, 128),
  )
  return rows


def worker(args) -> None:
  """Runs in a process pinned to `args.threads` cores; prints one JSON document."""
  threads = args.threads_worker
  cores = sorted(os.sched_getaffinity(0))[:threads]
  os.sched_setaffinity(0, cores)  # before JAX starts its thread pool
  import jax
  import torch

  record = {
    'threads': threads,
    'cores': cores,
    'peak_gflops': _peak_gflops(args.runs),
    'models': [],
    'figure1': [],
    'versions': {
      'jax': jax.__version__,
      'jaxlib': __import__('jaxlib').__version__,
      'torch': torch.__version__,
    },
  }
  for name in args.models.split(','):
    print(f'  {name}, {threads} thread(s)...', file=sys.stderr, flush=True)
    record['models'].append(_bench_model(name, args, threads))
  if not args.skip_figure1:
    record['figure1'] = _bench_figure1(args, threads)
    record['ablations'] = _bench_ablations(args)
  print(json.dumps(record))


# ---------------------------------------------------------------- parent side


def table3(records: list[dict]) -> str:
  from models import article

  lines = [
    '| model | threads | params | mult-adds (M) | pass size (MB) | XLA GFLOPs | compile (s) '
    '| JAX (ms) | PyTorch (ms) | JAX / PyTorch | JAX GFLOP/s | % of peak | article (ms, '
    'Xeon E5-2640 v3) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for record in records:
    for m in record['models']:
      paper = article.TABLE3[m['model']].runtime_s
      lines.append(
        f'| {m["model"]} | {m["threads"]} | {m["params"]:,} | {m["mult_adds_m"]:.2f} '
        f'| {m["pass_size_mb"]:.2f} | {m["xla_gflops"]:.3f} | {m["compile_s"]:.1f} '
        f'| {1e3 * m["jax"]["median_s"]:.2f} | {1e3 * m["torch"]["median_s"]:.2f} '
        f'({m["torch_layout"]}) | {m["jax_over_torch"]:.2f} | {m["jax_gflops_per_s"]:.1f} '
        f'| {100 * m["jax_gflops_per_s"] / record["peak_gflops"]:.0f}% '
        f'| {f"{1e3 * paper:.1f}" if paper else "-"} |'
      )
  return '\n'.join(lines)


def figure1_table(records: list[dict]) -> str:
  lines = [
    '| threads | S | conv JAX (ms) | DSC JAX (ms) | DSC / conv JAX | conv PyTorch (ms) '
    '| DSC PyTorch (ms) | DSC / conv PyTorch |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for record in records:
    rows = {(r['size'], r['kind']): r for r in record['figure1']}
    for size in FIGURE1_SIZES:
      if (size, 'conv') not in rows:
        continue
      conv, dsc = rows[(size, 'conv')], rows[(size, 'dsc')]
      lines.append(
        f'| {record["threads"]} | {size} | {1e3 * conv["jax_s"]:.3f} | {1e3 * dsc["jax_s"]:.3f} '
        f'| {dsc["jax_s"] / conv["jax_s"]:.2f} | {1e3 * conv["torch_s"]:.3f} '
        f'| {1e3 * dsc["torch_s"]:.3f} | {dsc["torch_s"] / conv["torch_s"]:.2f} |'
      )
  return '\n'.join(lines)


def ablation_table(records: list[dict]) -> str:
  lines = [
    '| threads | what | before | after | before (ms) | after (ms) | speed-up |',
    '|---:|---|---|---|---:|---:|---:|',
  ]
  for record in records:
    whole_models = [
      {
        'what': f'whole model: {m["model"]}',
        'before': 'XLA default CPU options',
        'after': 'models.compiler options',
        'before_s': m['jax_xla_defaults']['median_s'],
        'after_s': m['jax']['median_s'],
      }
      for m in record['models']
    ]
    for row in record.get('ablations', []) + whole_models:
      lines.append(
        f'| {record["threads"]} | {row["what"]} | {row["before"]} | {row["after"]} '
        f'| {1e3 * row["before_s"]:.3f} | {1e3 * row["after_s"]:.3f} '
        f'| {row["before_s"] / row["after_s"]:.1f}x |'
      )
  return '\n'.join(lines)


def figure1_plot(records: list[dict], path: str) -> None:
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  figure, axes = plt.subplots(1, len(records), figsize=(5 * len(records), 3.6), squeeze=False)
  for ax, record in zip(axes[0], records, strict=True):
    for kind, colour in (('conv', 'tab:blue'), ('dsc', 'tab:orange')):
      rows = [r for r in record['figure1'] if r['kind'] == kind]
      sizes = [r['size'] for r in rows]
      ax.plot(sizes, [1e3 * r['jax_s'] for r in rows], 'o-', color=colour, label=f'{kind} JAX')
      ax.plot(
        sizes, [1e3 * r['torch_s'] for r in rows], 's--', color=colour, label=f'{kind} PyTorch'
      )
    ax.set_xscale('log', base=2)
    ax.set_yscale('log')
    ax.set_xlabel('spatial size S')
    ax.set_ylabel('ms per call (batch 1)')
    ax.set_title(f'3x3 conv 64->128 vs depthwise separable, {record["threads"]} thread(s)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)


def main(argv: list[str] | None = None) -> None:
  import models

  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--models', default=','.join(models.MODEL_NAMES))
  parser.add_argument('--batch', type=int, default=1)
  parser.add_argument('--threads', default='1,2', help='comma-separated core counts')
  parser.add_argument('--runs', type=int, default=200)
  parser.add_argument('--checkpoint', default=None, help='saved model folder or training workdir')
  parser.add_argument('--out', default='benchmarks')
  parser.add_argument('--skip_figure1', action='store_true')
  parser.add_argument('--threads_worker', type=int, default=0, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.threads_worker:
    worker(args)
    return
  unknown = [m for m in args.models.split(',') if m not in models.MODEL_NAMES]
  if unknown:
    sys.exit(
      f'error: unknown model(s) {", ".join(unknown)}; valid: {", ".join(models.MODEL_NAMES)}'
    )
  if args.checkpoint and ',' in args.models:
    sys.exit('error: --checkpoint times one model: pass --models=NAME too.')
  if args.checkpoint:
    try:  # once here, so a bad checkpoint is one line, not a worker's traceback
      _load_weights(args.models, args.checkpoint)
    except ValueError as error:  # includes train.checkpoints.CheckpointError
      sys.exit(f'error: {error}')
  available = len(os.sched_getaffinity(0))
  threads = [int(t) for t in args.threads.split(',')]
  if max(threads) > available or min(threads) < 1:
    sys.exit(f'error: --threads {args.threads}: this process may use {available} core(s).')
  os.makedirs(args.out, exist_ok=True)
  records = []
  forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith('--out')]
  for count in threads:
    print(f'{count} thread(s):', file=sys.stderr, flush=True)
    result = subprocess.run(
      [sys.executable, os.path.abspath(__file__), *forwarded, f'--threads_worker={count}'],
      capture_output=True,
      text=True,
      check=False,
    )
    if result.returncode:
      sys.exit(f'error: the {count}-thread run failed:\n{result.stderr[-3000:]}')
    records.append(json.loads(result.stdout.strip().splitlines()[-1]))
  versions = records[0]['versions']
  machine = (
    f'Measured on {_cpu_model()}, {", ".join(str(r["threads"]) for r in records)} thread(s) '
    f'(pinned cores), batch {args.batch}, median of {args.runs} runs; jax {versions["jax"]}, '
    f'jaxlib {versions["jaxlib"]}, torch {versions["torch"]}. Peak (2048x2048 float32 matmul): '
    + ', '.join(f'{r["peak_gflops"]:.0f} GFLOP/s on {r["threads"]}' for r in records)
    + '. Article runtimes: PyTorch on an Intel Xeon E5-2640 v3.'
  )
  text3 = table3(records)
  print(machine)
  print(text3)
  with open(os.path.join(args.out, 'table3.md'), 'w') as f:
    f.write(machine + '\n\n' + text3 + '\n')
  if not args.skip_figure1:
    text1 = figure1_table(records)
    print(text1)
    with open(os.path.join(args.out, 'figure1.md'), 'w') as f:
      f.write(machine + '\n\n' + text1 + '\n')
    figure1_plot(records, os.path.join(args.out, 'figure1.png'))
  text_ablation = ablation_table(records)
  print(text_ablation)
  with open(os.path.join(args.out, 'ablations.md'), 'w') as f:
    f.write(machine + '\n\n' + text_ablation + '\n')
  with open(os.path.join(args.out, 'results.json'), 'w') as f:
    json.dump({'machine': machine, 'records': records}, f, indent=2)
  written = ['table3.md', 'ablations.md', 'results.json']
  if not args.skip_figure1:
    written += ['figure1.md', 'figure1.png']
  print(f'wrote {", ".join(os.path.join(args.out, name) for name in written)}')


if __name__ == '__main__':
  main()
