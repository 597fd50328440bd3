"""Synthetic faces, real frames and the grain pipeline."""

import glob
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from configs import base
from data import faces, frames, pipeline
from data.frames import FramesError
from models import ops


def _config(tmp_path, **overrides):
  config = base.data_config()
  config.update(
    {
      'data_dir': str(tmp_path / 'tfds'),
      'train_size': 40,
      'validation_size': 8,
      'test_size': 8,
      **overrides,
    }
  )
  return config


def test_build_is_deterministic_and_sized(tmp_path):
  first = pipeline.prepare(_config(tmp_path / 'a'))
  second = pipeline.prepare(_config(tmp_path / 'b'))
  assert {s: len(first.as_data_source(s)) for s in ('train', 'validation', 'test')} == {
    'train': 40,
    'validation': 8,
    'test': 8,
  }
  files_a = sorted(glob.glob(f'{first.data_dir}/*.array_record*'))
  files_b = sorted(glob.glob(f'{second.data_dir}/*.array_record*'))
  assert len(files_a) == 3
  for a, b in zip(files_a, files_b, strict=True):
    assert pathlib.Path(a).read_bytes() == pathlib.Path(b).read_bytes()
  other = pipeline.prepare(_config(tmp_path / 'c', seed=1))
  assert not np.array_equal(
    first.as_data_source('train')[0]['image'], other.as_data_source('train')[0]['image']
  )


def _find_marks(face, size, marks):
  """Pixel centroid of what drawing `marks` changed (same face, same noise)."""
  plain = faces.render(face, size, np.random.default_rng(1)).astype(float)
  marked = faces.render(face, size, np.random.default_rng(1), marks=marks).astype(float)
  change = np.abs(marked - plain).sum(axis=-1)
  rows, cols = np.nonzero(change > 30)
  weights = change[rows, cols]
  return np.array([np.average(cols, weights=weights), np.average(rows, weights=weights)])


def _to_pixels(point, size):
  return (np.asarray(point) + 1) * (size - 1) / 2


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_stored_jacobian_predicts_where_a_feature_point_is_drawn(seed):
  """A mark at reference offset d of landmark k lands at kp_k + J_k d."""
  size = 128
  face = faces.sample_face(np.random.default_rng(seed), occlusion_rate=0.0)
  kp, jacobian = faces.landmarks(face)
  d = np.array([0.06, -0.04])  # normalised units: about 4 and 2.5 pixels at 128
  for k, (feature, anchor) in enumerate(faces._ANCHORS):
    expected = kp[k] + jacobian[k] @ d
    if np.abs(expected).max() > 0.9:
      continue
    local = np.asarray(anchor) + np.linalg.solve(faces.REFERENCE_FRAMES[k], d)
    found = _find_marks(face, size, ((feature, tuple(local)),))
    np.testing.assert_allclose(found, _to_pixels(expected, size), atol=0.5, err_msg=str(k))


def test_jacobians_are_fomm_like_identity_at_rest_order_one_and_varying():
  mean_face = {k: sum(b) / 2 for k, b in {**faces._IDENTITY, **faces._EXPRESSION}.items()}
  rest = faces.Face(**{**vars(faces.sample_face(np.random.default_rng(0))),
                       'A': sum(faces._SCALE) / 2 * np.eye(2),
                       'features': faces._features(mean_face)})  # fmt: skip
  np.testing.assert_allclose(faces.landmarks(rest)[1], np.broadcast_to(np.eye(2), (10, 2, 2)),
                             atol=1e-6)  # fmt: skip
  jacobians = np.stack(
    [faces.landmarks(faces.sample_face(np.random.default_rng(i)))[1] for i in range(300)]
  )
  assert 0.3 < np.abs(jacobians).mean() < 3.0
  np.testing.assert_allclose(jacobians.mean(0)[:, [0, 1], [0, 1]], 1.0, atol=0.15)
  assert jacobians.std(0).min() > 0.1  # every entry of every landmark varies across faces


def test_flip_mirrors_landmarks_and_jacobians_consistently():
  size = 128
  face = faces.sample_face(np.random.default_rng(3), occlusion_rate=0.0)
  kp, jacobian = faces.landmarks(face)
  d = np.array([0.05, 0.03])  # reference offset, normalised units
  k = 5  # left mouth corner: after the flip it is the right one
  feature, anchor = faces._ANCHORS[k]
  local = np.asarray(anchor) + np.linalg.solve(faces.REFERENCE_FRAMES[k], d)
  plain = faces.render(face, size, np.random.default_rng(1))
  marked = faces.render(face, size, np.random.default_rng(1), marks=((feature, tuple(local)),))
  example = {'image': marked, 'kp': kp, 'jacobian': jacobian, 'visible': np.ones(10, bool)}
  flipped = pipeline._flip(example)
  change = np.abs(flipped['image'].astype(float) - plain[:, ::-1].astype(float)).sum(-1)
  rows, cols = np.nonzero(change > 30)
  found = np.array([cols.mean(), rows.mean()])
  new_k = faces.FLIP_PERMUTATION.index(k)
  assert faces.LANDMARKS[new_k] == 'right_mouth_corner'
  mirrored_d = d * np.array([-1, 1])
  expected = flipped['kp'][new_k] + flipped['jacobian'][new_k] @ mirrored_d
  np.testing.assert_allclose(found, _to_pixels(expected, size), atol=0.6)
  # Flipping twice gives the example back.
  again = pipeline._flip(flipped)
  for key in example:
    np.testing.assert_allclose(again[key], example[key])


def test_iterator_state_restores_the_same_batches(tmp_path):
  config = _config(tmp_path)
  builder = pipeline.prepare(config)

  def make():
    return pipeline.make_iterator(
      config,
      'train',
      batch_size=4,
      model_size=64,  # noqa: E731
      train=True,
      seed=3,
      builder=builder,
    )

  straight = make()
  for _ in range(13):  # past an epoch (40 examples = 10 batches)
    next(straight)
  state = straight.get_state()
  expected = [next(straight) for _ in range(4)]
  resumed = make()
  resumed.set_state(state)
  for want in expected:
    got = next(resumed)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_the_processes_rows_make_the_global_batch(tmp_path):
  """Multi-process data parallelism reads, per process, its rows of the same global batch."""
  config = _config(tmp_path)
  builder = pipeline.prepare(config)

  def batches(shard):
    iterator = pipeline.make_iterator(
      config, 'train', batch_size=4, model_size=64, train=True, builder=builder, shard=shard
    )
    return [next(iterator) for _ in range(2)]

  whole = batches((0, 1))
  parts = [batches((k, 2)) for k in (0, 1)]
  for step, batch in enumerate(whole):
    assert [len(part[step]['image']) for part in parts] == [2, 2]
    for key, value in batch.items():
      np.testing.assert_array_equal(np.concatenate([p[step][key] for p in parts]), value)
  with pytest.raises(ValueError, match='must be divisible by the 3 processes'):
    pipeline.make_iterator(
      config, 'train', batch_size=4, model_size=64, train=True, builder=builder, shard=(0, 3)
    )


def test_eval_iterator_is_one_ordered_pass_without_augmentation(tmp_path):
  config = _config(tmp_path)
  builder = pipeline.prepare(config)
  batches = list(
    pipeline.make_iterator(
      config, 'validation', batch_size=3, model_size=64, train=False, builder=builder
    )
  )
  assert [len(b['image']) for b in batches] == [3, 3, 2]
  first = builder.as_data_source('validation')[0]
  np.testing.assert_allclose(batches[0]['image'][0], first['image'] / 255.0, atol=1e-6)
  np.testing.assert_array_equal(batches[0]['kp'][0], first['kp'])


def test_larger_frames_are_anti_alias_downsampled_once(tmp_path):
  config = _config(tmp_path, image_size=128, train_size=4, validation_size=4, test_size=4)
  builder = pipeline.prepare(config)
  batch = next(
    pipeline.make_iterator(
      config, 'test', batch_size=2, model_size=64, train=False, builder=builder
    )
  )
  assert batch['image'].shape == (2, 64, 64, 3)
  stored = np.stack([builder.as_data_source('test')[i]['image'] for i in range(2)]) / 255.0
  np.testing.assert_allclose(batch['image'], ops.anti_alias_downsample(stored, 0.5), atol=1e-5)


@pytest.mark.parametrize(
  'overrides,split,batch,size,message',
  [
    ({'name': 'voxceleb'}, 'train', 4, 64, "unknown dataset 'voxceleb'; valid datasets"),
    ({}, 'val', 4, 64, "unknown split 'val' of synthetic_faces; valid splits"),
    ({}, 'validation', 9, 64, 'batch size 9 is larger than the validation split (8 examples)'),
    ({'image_size': 96}, 'train', 4, 64, "cannot be downsampled to the model's 64x64"),
    ({'name': 'frames'}, 'train', 4, 64, 'needs --config.data.manual_dir'),
  ],
)
def test_bad_requests_fail_before_any_work(tmp_path, overrides, split, batch, size, message):
  config = _config(tmp_path, **overrides)
  with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
    pipeline.make_iterator(config, split, batch_size=batch, model_size=size, train=True)
  assert not os.path.exists(tmp_path / 'tfds' / 'synthetic_faces')


def _write_frames(root, part, videos, frames=3, size=80):
  rng = np.random.default_rng(0)
  for video in videos:
    folder = root / part / video
    folder.mkdir(parents=True)
    for i in range(frames):
      Image.fromarray(rng.integers(0, 255, (size, size + 20, 3), np.uint8)).save(
        folder / f'{i:07d}.png'
      )


def test_frames_builder_splits_by_video_and_skips_corrupt_files(tmp_path, capsys):
  root = tmp_path / 'vox'
  _write_frames(root, 'train', [f'id{i}' for i in range(8)])
  _write_frames(root, 'test', ['id_test'])
  (root / 'train' / 'id0' / '0000003.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
  config = _config(
    tmp_path,
    name='frames',
    manual_dir=str(root),
    image_size=64,
    validation_fraction=0.25,
    max_bad_fraction=0.2,
  )
  builder = pipeline.prepare(config)
  assert 'frames train:' in capsys.readouterr().out
  splits = {s: builder.as_data_source(s) for s in ('train', 'validation', 'test')}
  videos = {s: {e['video_id'] for e in src} for s, src in splits.items()}
  assert not videos['train'] & videos['validation']
  assert videos['train'] | videos['validation'] == {f'id{i}'.encode() for i in range(8)}
  assert videos['test'] == {b'id_test'}
  assert sum(len(s) for s in splits.values()) == 8 * 3 + 3  # the corrupt 4th file was skipped
  example = splits['test'][0]
  assert frames.decode(example['image']).shape == (64, 64, 3)  # cropped, resized, encoded
  assert example['frame_index'] in (0, 1, 2)
  batch = next(
    pipeline.make_iterator(
      config, 'train', batch_size=2, model_size=64, train=True, builder=builder
    )
  )
  assert batch['image'].shape == (2, 64, 64, 3) and 'kp' not in batch


def test_frames_fail_clearly_on_missing_empty_or_mostly_bad_folders(tmp_path):
  config = _config(tmp_path, name='frames', manual_dir=str(tmp_path / 'nowhere'))
  with pytest.raises(FramesError, match='nowhere/train does not exist; expected the layout'):
    pipeline.prepare(config)
  empty = tmp_path / 'empty'
  (empty / 'train' / 'id0').mkdir(parents=True)
  (empty / 'test').mkdir()
  config.manual_dir = str(empty)
  with pytest.raises(FramesError, match='no videos in .*empty/train; expected the layout'):
    pipeline.prepare(config)
  bad = tmp_path / 'bad'
  _write_frames(bad, 'train', ['a', 'b'], frames=2)
  _write_frames(bad, 'test', ['c'], frames=2)
  for path in (bad / 'train').glob('*/*.png'):
    path.write_bytes(b'not an image')
  config.update({'manual_dir': str(bad), 'data_dir': str(tmp_path / 'tfds2')})
  with pytest.raises(FramesError, match='are unreadable .more than max_bad_fraction=0.01'):
    pipeline.prepare(config)
