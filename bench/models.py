"""One model timed in JAX beside its PyTorch twin and its exported files; Figure 1's sweep.

JAX: `models.compiler.InferenceFunction`, an ahead-of-time compiled function
of (flattened weights, input) under the project's XLA options, inputs already
on the device, block_until_ready; the same function under XLA's default
options, and with its weight-only work in every call, is timed too.
PyTorch: the twin with the same weights, eval mode, inference_mode, the
better of NCHW and channels_last. ONNX Runtime and LiteRT: the twin exported
with the same weights (`bench.runtimes`). Outputs are compared before timing,
and all are timed in alternating blocks so that their ratios come from the
same minutes. Import this module only after pinning the process's cores
(`bench.worker`).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from bench import runtimes as deployed
from bench import timing
from bench.weights import load_weights
from models import compiler, layers, summary
from torch_twins import create_twin, porting

FIGURE1_SIZES = (4, 8, 16, 32, 64)


def bench_model(
  name: str,
  *,
  batch: int,
  runs: int,
  threads: int,
  checkpoint: str | None,
  exported_dir: str,
  runtimes: tuple[str, ...] = tuple(deployed.RUNTIMES),
) -> dict[str, Any]:
  """Times model `name` (random or `checkpoint`'s weights) on `threads` cores in JAX, PyTorch and
  the deployment `runtimes` (files exported to `exported_dir`)."""
  model, options = load_weights(name, checkpoint)
  size = model.default_input_size
  counted = summary.summarize(model, (batch, size, size, 3), per_layer_xla=False)
  images = np.random.default_rng(0).uniform(size=(batch, size, size, 3)).astype(np.float32)

  x = jax.device_put(jnp.asarray(images))
  start = time.perf_counter()
  infer = compiler.InferenceFunction(model, x.shape)
  compile_s = time.perf_counter() - start
  jax_kp = np.asarray(infer(x)['kp'])
  # The same function under XLA's default CPU options: what models.compiler buys.
  defaults = compiler.InferenceFunction(model, x.shape, xla_defaults=True)
  # With the weight-only work in every call, as before models.hoisting: what hoisting buys.
  unhoisted = compiler.InferenceFunction(model, x.shape, hoist=False)

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
    for net, inputs in layouts.values():
      error = max(error, float(np.abs(net(inputs)['kp'].numpy() - jax_kp).max()))
    if error > 1e-3:
      raise RuntimeError(f'{name}: JAX and PyTorch disagree by {error} on the same weights.')
    calls, runtime_kp, failed = deployed.exported(
      model, name, options, images, threads=threads, folder=exported_dir, runtimes=runtimes
    )
    runtime_error = {key: float(np.abs(kp - jax_kp).max()) for key, kp in runtime_kp.items()}
    if any(value > 1e-3 for value in runtime_error.values()):
      raise RuntimeError(f'{name}: JAX and the exported files disagree: {runtime_error}.')
    # All four timed in alternating blocks: their ratios come from the same minutes.
    stats = timing.time_interleaved(
      {
        'jax': lambda: jax.block_until_ready(infer(x)),
        'jax_xla_defaults': lambda: jax.block_until_ready(defaults(x)),
        'jax_unhoisted': lambda: jax.block_until_ready(unhoisted(x)),
        **{layout: (lambda n=net, b=inputs: n(b)) for layout, (net, inputs) in layouts.items()},
        **calls,
      },
      runs,
    )
  jax_stats, defaults_stats = stats['jax'], stats['jax_xla_defaults']
  layout = min(layouts, key=lambda key: stats[key]['median_s'])
  torch_stats = stats[layout]
  # The work the timed function does, as XLA counts it before optimisation (2 per
  # multiply-add, plus elementwise ops). Not 2 x mult-adds: torchinfo counts a
  # stride-2 transposed conv 4x, and students run their 1x1 tails before upsampling.
  # (The compiled executable's count came out below the work done for the teacher: not used.)
  executed_flops = counted.xla_flops
  timed_runtimes = {key: stats[key] for key in calls}
  best = min(timed_runtimes, key=lambda key: timed_runtimes[key]['median_s'], default=None)
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
    'jax_unhoisted': stats['jax_unhoisted'],
    'hoisted_ops': infer.hoisted,
    'torch': torch_stats,
    'torch_layout': layout,
    'max_kp_difference': error,
    'jax_over_torch': jax_stats['median_s'] / torch_stats['median_s'],
    'runtimes': timed_runtimes,
    'runtimes_failed': failed,
    'runtimes_max_kp_difference': runtime_error,
    'jax_over_best_runtime': (
      jax_stats['median_s'] / timed_runtimes[best]['median_s'] if best else None
    ),
    'jax_gflops_per_s': executed_flops / jax_stats['median_s'] / 1e9,
  }


def _torch_block(kind: str) -> torch.nn.Module:
  if kind == 'conv':
    return torch.nn.Conv2d(64, 128, 3, padding=1)
  return torch.nn.Sequential(
    torch.nn.Conv2d(64, 64, 3, padding=1, groups=64), torch.nn.Conv2d(64, 128, 1)
  )


def bench_figure1(*, batch: int, runs: int, threads: int) -> list[dict[str, Any]]:
  """A 3x3 conv (64 -> 128) and its depthwise separable counterpart at S x S, both frameworks."""
  torch.set_num_threads(threads)
  rows = []
  for size in FIGURE1_SIZES:
    x = np.random.default_rng(0).uniform(size=(batch, size, size, 64)).astype(np.float32)
    for kind in ('conv', 'dsc'):
      block = layers.conv(64, 128, 3, padding=1, separable=kind == 'dsc', rngs=nnx.Rngs(0))
      graphdef, state = nnx.split(block)
      compiled = (
        compiler.jit(lambda s, x, g=graphdef: nnx.merge(g, s)(x))
        .lower(state, jnp.asarray(x))
        .compile()
      )
      xj = jax.device_put(jnp.asarray(x))
      jax_stats = timing.time_fn(
        lambda c=compiled, s=state, xj=xj: c(s, xj).block_until_ready(), runs
      )
      net = _torch_block(kind)
      xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
      with torch.inference_mode():
        torch_stats = timing.time_fn(lambda net=net, xt=xt: net(xt), runs)
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
