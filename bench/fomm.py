"""Where a FOMM frame's time goes: detector, dense motion network and generator, per framework.

One animated frame is the detector on the driving frame (downsampled, FOMM's
anti-alias filter, to the detector's input size: counted in its time) and
the generator (its dense motion network included) on the source frame and
both keypoint sets; the source's keypoints are found once per video, so they
are not part of a frame. JAX: each part compiled ahead of time
(`models.compiler.CompiledCall`, weight-only work hoisted), inputs on the
device, block_until_ready. PyTorch: the twins, eager, same weights. ONNX
Runtime: the twins exported with the same weights (each detector behind its
downsampling; the frame is the two sessions back to back). Outputs are compared before timing, and
the frameworks are timed in alternating blocks. Import this module only
after pinning the process's cores (`bench.worker`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import torch
from flax import nnx

import models
from bench import timing
from models import compiler, ops, summary
from torch_twins import create_twin, porting
from torch_twins.export import formats, graph
from torch_twins.fomm import AntiAliasInterpolation2d

GENERATOR = 'fomm_generator'
TOLERANCE = 1e-3


def _keypoints(rng: np.random.Generator, num_kp: int) -> dict[str, np.ndarray]:
  return {
    'kp': rng.uniform(-0.8, 0.8, (1, num_kp, 2)).astype(np.float32),
    'jacobian': (np.eye(2) + rng.normal(0, 0.2, (1, num_kp, 2, 2))).astype(np.float32),
  }


def _torch_kp(kp: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
  return {k: torch.from_numpy(v) for k, v in kp.items()}


def _jax_detect(size: int):
  """The detector on a frame of `size`, behind its anti-alias downsampling."""

  def call(detector: nnx.Module, frame: jax.Array) -> dict[str, jax.Array]:
    out = detector(ops.anti_alias_downsample(frame, detector.default_input_size / size))
    return {'kp': out['kp'], 'jacobian': out['jacobian']}

  return call


class _TorchDetect(torch.nn.Module):
  """A detector twin behind FOMM's anti-alias downsampling, on NCHW frames."""

  def __init__(self, twin: torch.nn.Module, scale: float):
    super().__init__()
    self.twin = twin
    self.down = AntiAliasInterpolation2d(3, scale) if scale != 1 else torch.nn.Identity()

  def forward(self, frame: torch.Tensor) -> dict[str, torch.Tensor]:
    out = self.twin(self.down(frame))
    return {'kp': out['kp'], 'jacobian': out['jacobian']}


def _max_difference(ours: Any, theirs: Any) -> float:
  return max(
    float(np.abs(np.asarray(a) - np.asarray(b)).max())
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True)
  )


def _generator_onnx(
  generator: nnx.Module, options: Mapping[str, Any], inputs: dict[str, np.ndarray], *, path: str
) -> tuple[Any, str | None]:
  """(ONNX Runtime session of the generator's twin, None) or (None, why it failed)."""
  try:
    if not os.path.exists(path):  # the other thread count's worker may have written it
      module = graph.deployable(generator, GENERATOR, options)
      formats.convert(module, inputs, 'onnx', path + '.partial')
      os.replace(path + '.partial', path)
    return formats.OnnxRuntime(path, torch.get_num_threads()), None
  except formats.ExportError as error:
    return None, str(error)


def _detector_onnx(
  module: torch.nn.Module, frame: np.ndarray, *, path: str
) -> tuple[Any, str | None]:
  """(ONNX Runtime session of a detector behind its downsampling, None) or (None, why)."""
  try:
    if not os.path.exists(path):
      formats.convert(graph.Deployable(module).eval(), frame, 'onnx', path + '.partial')
      os.replace(path + '.partial', path)
    return formats.OnnxRuntime(path, torch.get_num_threads()), None
  except formats.ExportError as error:
    return None, str(error)


def bench_fomm(
  *,
  runs: int,
  threads: int,
  exported_dir: str,
  size: int = 256,
  generator_options: Mapping[str, Any] | None = None,
  detectors: Mapping[str, Mapping[str, Any]] | None = None,
  onnxruntime: bool = True,
) -> dict[str, Any]:
  """Times a FOMM frame's parts on `threads` cores; one JSON-ready record.

  Args:
    runs: timed calls per measurement.
    threads: the cores this process is pinned to (PyTorch and ORT get as many).
    exported_dir: where the .onnx files are written once, for every worker.
    size: the frames' side (vox: 256).
    generator_options: overrides of the generator's defaults (tests: narrow).
    detectors: name -> option overrides, the first one the teacher the frame is
      measured with; default the zoo, at its widths, with its `input_options`.
    onnxruntime: time the ONNX exports too (generator, each detector, the frame).
  """
  torch.set_num_threads(threads)
  generator_options = models.model_config(GENERATOR, dict(generator_options or {}))
  generator = models.create_model(GENERATOR, generator_options, rngs=nnx.Rngs(0))
  generator.eval()
  num_kp = generator.dense_motion_network.num_kp
  detectors = detectors or {name: {} for name in models.MODEL_NAMES}
  rng = np.random.default_rng(0)
  source = rng.uniform(size=(1, size, size, 3)).astype(np.float32)
  frame = rng.uniform(size=(1, size, size, 3)).astype(np.float32)
  kp_source, kp_driving = _keypoints(rng, num_kp), _keypoints(rng, num_kp)
  on_device = jax.device_put((source, frame, kp_source, kp_driving))
  jsource, jframe, jkp_source, jkp_driving = on_device

  # JAX: the generator, its dense motion network alone, and each detector.
  jax_calls = {
    'generator': compiler.CompiledCall(
      generator, lambda g, s, ks, kd: g(s, ks, kd)['prediction'], jsource, jkp_source, jkp_driving
    ),
    'motion': compiler.CompiledCall(
      generator.dense_motion_network,
      lambda m, s, kd, ks: {k: m(s, kd, ks)[k] for k in ('deformation', 'occlusion_map')},
      jsource,
      jkp_driving,
      jkp_source,
    ),
  }
  twin = create_twin(GENERATOR, generator_options).eval()
  porting.load_into_twin(generator, GENERATOR, twin)
  tsource = torch.from_numpy(source.transpose(0, 3, 1, 2).copy())
  tframe = torch.from_numpy(frame.transpose(0, 3, 1, 2).copy())
  tkp_source, tkp_driving = _torch_kp(kp_source), _torch_kp(kp_driving)
  torch_calls = {
    'generator': lambda: twin(tsource, kp_driving=tkp_driving, kp_source=tkp_source)['prediction'],
    'motion': lambda: twin.dense_motion_network(tsource, tkp_driving, tkp_source),
  }
  detector_rows = {}
  for name, overrides in detectors.items():
    config = models.study_config(name, dict(overrides))
    detector = models.create_model(name, config, rngs=nnx.Rngs(0))
    detector.eval()
    jax_calls[f'detector:{name}'] = compiler.CompiledCall(detector, _jax_detect(size), jframe)
    detector_twin = create_twin(name, config).eval()
    porting.load_into_twin(detector, name, detector_twin)
    scale = detector.default_input_size / size
    torch_calls[f'detector:{name}'] = _TorchDetect(detector_twin, scale).eval()
    detector_rows[name] = {
      'input_size': detector.default_input_size,
      'mult_adds_g': summary.summarize(
        detector, (1, detector.default_input_size, detector.default_input_size, 3),
        per_layer_xla=False,
      ).mult_adds / 1e9,
    }  # fmt: skip
  teacher = next(iter(detectors))
  teacher_call = jax_calls[f'detector:{teacher}']

  def jax_frame() -> jax.Array:
    # The whole frame with the teacher: detect on the driving frame, then generate.
    return jax_calls['generator'](jsource, jkp_source, teacher_call(jframe))

  torch_frame_detect = torch_calls[f'detector:{teacher}']

  def torch_frame() -> torch.Tensor:
    kp = torch_frame_detect(tframe)
    return twin(tsource, kp_driving=kp, kp_source=tkp_source)['prediction']

  runtime_failed = {}
  ort_calls = {}
  ort_inputs = {
    'source': source,
    'kp_source': kp_source['kp'],
    'jacobian_source': kp_source['jacobian'],
    'kp_driving': kp_driving['kp'],
    'jacobian_driving': kp_driving['jacobian'],
  }
  with torch.inference_mode():
    ours = {key: jax.block_until_ready(call(*_args(key, on_device))) for key, call in
            jax_calls.items()}  # fmt: skip
    theirs = {
      'generator': torch_calls['generator']().numpy().transpose(0, 2, 3, 1),
      'motion': _motion_nhwc(torch_calls['motion']()),
      **{key: torch_calls[key](tframe) for key in torch_calls if key.startswith('detector:')},
    }
    differences = {key: _max_difference(ours[key], theirs[key]) for key in ours}
    if onnxruntime:
      path = os.path.join(exported_dir, f'{GENERATOR}_{size}_{_tag(generator_options)}.onnx')
      session, why = _generator_onnx(generator, generator_options, ort_inputs, path=path)
      if session is None:
        runtime_failed['onnxruntime:generator'] = why
      else:
        differences['onnxruntime:generator'] = _max_difference(
          ours['generator'], session.run(ort_inputs)['prediction']
        )
        ort_calls['generator'] = lambda: session.run(ort_inputs)
      for name, overrides in detectors.items():
        key = f'detector:{name}'
        detector_path = os.path.join(
          exported_dir, f'{name}_frame{size}_{_tag(dict(overrides))}.onnx'
        )
        detector_session, why = _detector_onnx(torch_calls[key], frame, path=detector_path)
        if detector_session is None:
          runtime_failed[f'onnxruntime:{name}'] = why
          continue
        differences[f'onnxruntime:{key}'] = _max_difference(ours[key], detector_session(frame))
        ort_calls[key] = lambda d=detector_session: d(frame)
        if name == teacher and session is not None:
          ort_calls['frame'] = lambda d=detector_session: session.run(
            {**ort_inputs, **_driving(d(frame))}
          )
    bad = {key: value for key, value in differences.items() if value > TOLERANCE}
    if bad:
      raise RuntimeError(f'FOMM: the frameworks disagree on the same weights and inputs: {bad}.')
    fns = {}
    for key, call in jax_calls.items():
      args = _args(key, on_device)
      fns[f'jax|{key}'] = lambda call=call, args=args: jax.block_until_ready(call(*args))
    fns['jax|frame'] = lambda: jax.block_until_ready(jax_frame())
    fns['torch|generator'] = torch_calls['generator']
    fns['torch|motion'] = torch_calls['motion']
    for key in detectors:
      fns[f'torch|detector:{key}'] = lambda m=torch_calls[f'detector:{key}']: m(tframe)
    fns['torch|frame'] = torch_frame
    fns.update({f'onnxruntime|{key}': call for key, call in ort_calls.items()})
    stats = timing.time_interleaved(fns, runs, rounds=min(5, runs))
  times: dict[str, dict[str, Any]] = {}
  for key, value in stats.items():
    framework, part = key.split('|')
    times.setdefault(framework, {})[part] = value
  generator_inputs = (source, kp_source, kp_driving)
  return {
    'threads': threads,
    'size': size,
    'teacher': teacher,
    'generator_mult_adds_g': summary.call_mult_adds(generator, generator_inputs) / 1e9,
    'motion_mult_adds_g': summary.call_mult_adds(
      generator.dense_motion_network, (source, kp_driving, kp_source)
    )
    / 1e9,
    'detectors': detector_rows,
    'times': times,
    'max_differences': differences,
    'runtimes_failed': runtime_failed,
    'hoisted_ops': {key: call.hoisted for key, call in jax_calls.items()},
  }


def _driving(kp: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {'kp_driving': kp['kp'], 'jacobian_driving': kp['jacobian']}


def _tag(options: Mapping[str, Any]) -> str:
  """A short, stable name for `options` (the .onnx file is shared between workers)."""
  import hashlib

  return hashlib.sha1(repr(sorted(dict(options).items())).encode()).hexdigest()[:8]


def _args(key: str, on_device: tuple) -> tuple:
  source, frame, kp_source, kp_driving = on_device
  if key == 'generator':
    return source, kp_source, kp_driving
  if key == 'motion':
    return source, kp_driving, kp_source
  return (frame,)


def _motion_nhwc(out: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
  return {
    'deformation': out['deformation'].numpy(),  # the twin's is channels last already
    'occlusion_map': out['occlusion_map'].numpy().transpose(0, 2, 3, 1),
  }
