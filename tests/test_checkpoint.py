"""A saved model restores exactly through the one loader, and damaged folders fail clearly."""

import json
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

import models
from train import checkpoints


def _saved(tmp_path, name='l3unet', config=None):
  model = models.create_model(name, config, rngs=nnx.Rngs(5))
  for _, node in nnx.iter_graph(model):
    if isinstance(node, nnx.BatchNorm):
      node.mean[...] = node.mean[...] + 0.5  # non-trivial running statistics
  path = tmp_path / 'model'
  checkpoints.save_model(path, model, name=name, options=models.model_config(name, config))
  return model, path


def _leaves(model):
  return jax.tree.leaves(nnx.state(model, nnx.Param, nnx.BatchStat))


def test_round_trip_restores_weights_and_statistics(tmp_path):
  model, path = _saved(tmp_path, config={'fold': 4})
  restored, meta = checkpoints.restore_model(path)
  assert meta['model'] == 'l3unet' and meta['options']['fold'] == 4 and meta['step'] == 0
  assert restored.fold == 4
  for a, b in zip(_leaves(model), _leaves(restored), strict=True):
    np.testing.assert_array_equal(a, b)


def test_tuple_options_come_back_as_tuples(tmp_path):
  _, path = _saved(tmp_path, name='squeeze_encdec')
  restored, meta = checkpoints.restore_model(path)
  assert isinstance(meta['options']['decoder'], list)  # JSON
  options = models.model_config('squeeze_encdec', meta['options'])
  assert options.decoder == models.default_config('squeeze_encdec').decoder
  assert isinstance(options.decoder[0], tuple)


def test_reader_writes_nothing(tmp_path):
  _, path = _saved(tmp_path)
  before = sorted(p.relative_to(path) for p in path.rglob('*'))
  checkpoints.restore_model(path)
  assert sorted(p.relative_to(path) for p in path.rglob('*')) == before


def test_refuses_to_overwrite(tmp_path):
  model, path = _saved(tmp_path)
  with pytest.raises(checkpoints.CheckpointError, match='already exists'):
    checkpoints.save_model(path, model, name='l3unet', options=models.default_config('l3unet'))


def test_damaged_weights_fail_clearly(tmp_path):
  _, path = _saved(tmp_path)
  shutil.rmtree(path / '0' / 'state')
  with pytest.raises(checkpoints.CheckpointError, match=r'0/state cannot be restored'):
    checkpoints.restore_model(path)


def test_missing_step_names_the_steps_held(tmp_path):
  _, path = _saved(tmp_path)
  with pytest.raises(checkpoints.CheckpointError, match=r'no checkpoint of step 7 .*held: 0'):
    checkpoints.restore_model(path, step=7)


def test_metadata_naming_another_architecture_fails_clearly(tmp_path):
  _, path = _saved(tmp_path)
  meta_file = next((path / '0' / 'meta').iterdir())
  meta = json.loads(meta_file.read_text())
  meta['model'] = 'resnet'
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(checkpoints.CheckpointError, match='does not name a model of the zoo'):
    checkpoints.restore_model(path)
  meta['model'] = 'edgesegnet'
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(checkpoints.CheckpointError, match='unknown option'):
    checkpoints.restore_model(path)
  del meta['options']
  meta_file.write_text(json.dumps(meta))
  with pytest.raises(checkpoints.CheckpointError, match='not written by this version'):
    checkpoints.restore_model(path)


def test_weights_that_do_not_fit_the_options_fail_clearly(tmp_path):
  _, path = _saved(tmp_path)
  with pytest.raises(checkpoints.CheckpointError, match='do not fit l3unet'):
    checkpoints.restore_model(path, options={'post_features': (48, 48, 40)})
