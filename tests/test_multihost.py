"""Data parallelism: one device, two devices, and two processes (JAX's multi-controller runtime)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from train import checkpoints

# Subprocess runs (each imports JAX and compiles): the slow tier. The fast tier checks the
# per-process batch rows in tests/test_data.py.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(shared, workdir, *args, devices=1):
  return subprocess.Popen(
    [
      sys.executable,
      os.path.join(ROOT, 'main.py'),
      '--config=configs/edgeseg.py:smoke',
      f'--workdir={workdir}',
      f'--config.data.data_dir={shared / "data"}',
      f'--config.teacher.checkpoint={shared / "teacher"}',
      '--config.num_steps=4',
      '--config.eval_every=2',
      '--config.checkpoint_every=2',
      '--config.precise_bn_images=8',
      *args,
    ],
    cwd=ROOT,
    env={**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'},
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _finish(*processes):
  outputs = [p.communicate(timeout=420) for p in processes]
  for process, (_, err) in zip(processes, outputs, strict=True):
    assert process.returncode == 0, err[-3000:]
  return outputs


def _metrics(workdir):
  return [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]


def test_one_device_two_devices_and_two_processes_train_alike(shared, tmp_path):
  one, two, hosts = tmp_path / 'one_device', tmp_path / 'two_devices', tmp_path / 'two_processes'
  _finish(_main(shared, one), _main(shared, two, devices=2))
  port = _free_port()
  processes = [
    _main(
      shared,
      hosts,
      '--multihost',
      f'--coordinator_address=127.0.0.1:{port}',
      '--num_processes=2',
      f'--process_id={k}',
    )
    for k in (0, 1)
  ]
  (out0, _), (out1, _) = _finish(*processes)

  # One process with two devices, and two processes with one each, see the same global
  # batches (each process reads only its rows), so they train to the same parameters.
  for step in (2, 4):
    a, b = (_leaves(checkpoints.Reader(run).weights(step)) for run in (two, hosts))
    for x, y in zip(a, b, strict=True):
      np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)
  assert [r['loss'] for r in _metrics(two)] == [r['loss'] for r in _metrics(hosts)]
  # Process 0 alone logs and writes results; the checkpoint was written once.
  assert 'wrote' in out0 and 'wrote' not in out1 and 'validation' not in out1
  assert sorted(os.listdir(hosts / 'checkpoints')) == ['2', '4']

  # One device against two: the same batches, only the order of float reductions
  # (BatchNorm statistics, gradients) differs. Step 1 sees the same weights; Adam's
  # normalised updates then amplify those ulp-level differences a little, step by step.
  runs = {1: _metrics(one), 2: _metrics(two)}
  assert [r['step'] for r in runs[1]] == [r['step'] for r in runs[2]]
  np.testing.assert_allclose(runs[1][0]['loss'], runs[2][0]['loss'], rtol=1e-5)
  for a, b in zip(runs[1], runs[2], strict=True):
    np.testing.assert_allclose(a['loss'], b['loss'], rtol=1e-2)


def _leaves(tree):
  if isinstance(tree, dict):
    return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
  return [np.asarray(tree)]
