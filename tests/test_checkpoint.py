"""A saved model restores exactly, and damaged folders fail with a clear error."""

import json
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

import models
from models import checkpoint


def _saved(tmp_path, name='l3unet', config=None):
  model = models.create_model(name, config, rngs=nnx.Rngs(5))
  for _, node in nnx.iter_graph(model):
    if isinstance(node, nnx.BatchNorm):
      node.mean[...] = node.mean[...] + 0.5  # non-trivial running statistics
  path = tmp_path / 'model'
  checkpoint.save_model(path, model, name=name, config=models.model_config(name, config))
  return model, path


def test_round_trip_restores_weights_and_statistics(tmp_path):
  model, path = _saved(tmp_path, config={'fold': 4})
  restored, meta = checkpoint.load_model(path)
  assert meta['model'] == 'l3unet' and meta['config']['fold'] == 4
  assert restored.fold == 4
  saved = nnx.state(model, checkpoint.SAVED)
  loaded = nnx.state(restored, checkpoint.SAVED)
  for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(loaded), strict=True):
    np.testing.assert_array_equal(a, b)


def test_refuses_to_overwrite(tmp_path):
  model, path = _saved(tmp_path)
  with pytest.raises(FileExistsError, match='already exists'):
    checkpoint.save_model(path, model, name='l3unet', config=models.default_config('l3unet'))


def test_damaged_weights_fail_clearly(tmp_path):
  _, path = _saved(tmp_path)
  shutil.rmtree(path / 'state')
  with pytest.raises(ValueError, match='cannot restore the weights in'):
    checkpoint.load_model(path)


def test_metadata_naming_another_architecture_fails_clearly(tmp_path):
  _, path = _saved(tmp_path)
  meta_file = next((path / 'meta').iterdir())
  meta = json.loads(meta_file.read_text())
  meta['model'] = 'resnet'
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(ValueError, match='does not name a known model'):
    checkpoint.load_model(path)
  meta['model'] = 'edgesegnet'
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(ValueError, match='unknown option'):
    checkpoint.load_model(path)
