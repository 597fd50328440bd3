"""Moving synthetic faces (`synthetic_face_clips`) and FOMM's pairs of frames from them."""

import glob
import pathlib

import numpy as np
import pytest

from configs import base
from data import clip_pairs, face_clips, faces, pipeline

SIZE, FRAMES = 32, 6
SPLIT_SIZES = {'train': 4, 'validation': 2, 'test': 2}


def _config(data_dir, **overrides):
  config = base.data_config()
  config.update(
    {
      'name': 'synthetic_face_clips',
      'data_dir': str(data_dir),
      'image_size': SIZE,
      'frames_per_clip': FRAMES,
      **{f'{split}_size': size for split, size in SPLIT_SIZES.items()},
      **overrides,
    }
  )
  return config


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  config = _config(tmp_path_factory.mktemp('clips'))
  return config, pipeline.prepare(config)


def _frames_as_float(builder):
  """(clips, T, S, S, 3): every train clip's frames as the pairs carry them."""
  source = builder.as_data_source('train')
  return np.stack([source[i]['video'] for i in range(len(source))]).astype(np.float32) / 255.0


def _locate(frame, videos):
  """(clip, frame index, mirrored) of a frame among the videos' frames."""
  for mirrored, candidate in ((False, frame), (True, frame[:, ::-1])):
    hits = np.argwhere(np.all(videos == candidate, axis=(2, 3, 4)))
    if len(hits):
      return int(hits[0][0]), int(hits[0][1]), mirrored
  raise AssertionError('the frame is no frame of any clip')


def test_builds_are_identical_and_a_clip_is_a_pure_function(built, tmp_path):
  config, first = built
  second = pipeline.prepare(_config(tmp_path))
  files = [sorted(glob.glob(f'{b.data_dir}/*.array_record*')) for b in (first, second)]
  assert len(files[0]) == 3
  for a, b in zip(*files, strict=True):
    assert pathlib.Path(a).read_bytes() == pathlib.Path(b).read_bytes()
  assert {s: len(first.as_data_source(s)) for s in SPLIT_SIZES} == SPLIT_SIZES
  stored = first.as_data_source('validation')[1]  # stored in order: position i is clip i
  clip = face_clips.make_clip(0, 1, 1, FRAMES, SIZE)
  assert clip['video'].shape == (FRAMES, SIZE, SIZE, 3) and clip['video'].dtype == np.uint8
  assert clip['kp'].shape == (FRAMES, 10, 2) and clip['jacobian'].shape == (FRAMES, 10, 2, 2)
  assert clip['visible'].shape == (FRAMES, 10) and clip['visible'].dtype == np.bool_
  for key, value in clip.items():
    np.testing.assert_array_equal(stored[key], value)
  # A shorter clip is the longer one's start; other seeds and indices give other clips.
  np.testing.assert_array_equal(face_clips.make_clip(0, 1, 1, 3, SIZE)['video'], clip['video'][:3])
  assert not np.array_equal(face_clips.make_clip(1, 1, 1, FRAMES, SIZE)['video'], clip['video'])
  assert not np.array_equal(face_clips.make_clip(0, 1, 2, FRAMES, SIZE)['video'], clip['video'])


def _find_mark(face, size, feature, local):
  """Pixel centroid of what drawing one mark changed (same face, same noise)."""
  plain = faces.render(face, size, np.random.default_rng(1)).astype(float)
  marked = faces.render(face, size, np.random.default_rng(1), marks=((feature, local),))
  change = np.abs(marked.astype(float) - plain).sum(axis=-1)
  rows, cols = np.nonzero(change > 30)
  weights = change[rows, cols]
  return np.array([np.average(cols, weights=weights), np.average(rows, weights=weights)])


def test_landmarks_and_jacobians_are_exact_in_frames_of_a_moving_clip():
  """A mark at reference offset d of landmark k lands at kp_k + J_k d, frame after frame."""
  size, d = 128, np.array([0.06, -0.04])
  frames = face_clips.sample_clip(np.random.default_rng(5), 24)
  stored = face_clips.make_clip(0, 0, 3, 24, 16)
  again = face_clips.sample_clip(np.random.default_rng([0, 0, 3, face_clips._STREAM]), 24)
  np.testing.assert_array_equal(stored['kp'], np.stack([faces.landmarks(f)[0] for f in again]))
  for t in (0, 11, 23):
    kp, jacobian = faces.landmarks(frames[t])
    for k, (feature, anchor) in enumerate(faces._ANCHORS):
      expected = kp[k] + jacobian[k] @ d
      if np.abs(expected).max() > 0.9:
        continue
      local = tuple(np.asarray(anchor) + np.linalg.solve(faces.REFERENCE_FRAMES[k], d))
      found = _find_mark(frames[t], size, feature, local)
      np.testing.assert_allclose(
        found, (expected + 1) * (size - 1) / 2, atol=0.5, err_msg=f'frame {t}, landmark {k}'
      )


def test_motion_is_smooth_large_and_inside_the_renderers_ranges():
  clips = [face_clips.sample_clip(np.random.default_rng(i), 32) for i in range(40)]
  kp = np.stack([[faces.landmarks(face)[0] for face in clip] for clip in clips])  # (40, 32, 10, 2)
  step = np.linalg.norm(np.diff(kp, axis=1), axis=-1).mean()
  first, second = np.triu_indices(32, 1)
  apart = np.linalg.norm(kp[:, first] - kp[:, second], axis=-1).mean()
  assert apart > 0.08  # random frames of a clip differ clearly (3 pixels at 64x64)...
  assert step < 0.25 * apart  # ...while consecutive frames barely do
  poses = np.stack([[face.pose for face in clip] for clip in clips])  # (40, 32, 6)
  swing = np.ptp(poses, axis=1)
  assert np.median(swing[:, 0]) > 0.25  # rotation (radians)
  assert np.median(np.linalg.norm(swing[:, 4:], axis=-1)) > 0.2  # translation
  for j, (lo, hi) in enumerate(faces.POSE_RANGES.values()):
    assert lo <= poses[..., j].min() and poses[..., j].max() <= hi
  shapes = [face.shape for clip in clips for face in clip]
  for name, (lo, hi) in faces.EXPRESSION_RANGES.items():
    values = np.array([shape[name] for shape in shapes])
    assert lo <= values.min() and values.max() <= hi, name
  mouth = np.array([[face.shape['mouth_open'] for face in clip] for clip in clips])
  assert np.median(mouth.min(1)) < 0.15 and np.median(mouth.max(1)) > 0.85  # opens and closes


def test_identity_and_scene_are_fixed_within_a_clip_and_vary_across_clips():
  clip = face_clips.sample_clip(np.random.default_rng(0), 8)
  identity = [name for name in faces._IDENTITY] + ['tilt', 'brow_tilt']
  for face in clip[1:]:
    assert all(face.shape[name] == clip[0].shape[name] for name in identity)
    for name in ('colours', 'background', 'clutter', 'hair', 'light', 'contrast', 'blur'):
      assert repr(getattr(face, name)) == repr(getattr(clip[0], name)), name
    assert face.occluder is None
  videos = [face_clips.make_clip(0, 0, i, 8, SIZE)['video'].astype(float) for i in range(4)]
  corners = np.stack([v[:, [0, 0, -1, -1], [0, -1, 0, -1]] for v in videos])  # (4, 8, 4, 3)
  within = np.abs(corners - corners[:, :1]).mean()
  across = np.abs(corners[:, 0] - corners[:1, 0]).mean(axis=(1, 2))[1:]
  assert within < 8 and across.min() > 3 * within


def test_pairs_are_two_frames_of_one_clip_in_fomm_order(built):
  config, builder = built
  config = _config(config.data_dir, flip=False, num_repeats=2)
  config.jitter = {name: 0.0 for name in config.jitter}
  assert pipeline.epoch_size(config, builder) == 8
  videos = _frames_as_float(builder)
  iterator = clip_pairs.make_pair_iterator(config, batch_size=4, seed=0, builder=builder)
  batches = [next(iterator) for _ in range(2)]  # one epoch: 4 clips x 2 repeats
  seen = []
  for batch in batches:
    for key in ('source', 'driving'):
      assert batch[key].shape == (4, SIZE, SIZE, 3) and batch[key].dtype == np.float32
      assert batch[key].min() >= 0.0 and batch[key].max() <= 1.0
    for source, driving in zip(batch['source'], batch['driving'], strict=True):
      (clip, first, _), (other, second, _) = _locate(source, videos), _locate(driving, videos)
      assert clip == other and first <= second  # sorted, as FOMM draws them
      seen.append(clip)
  assert sorted(seen) == [0, 0, 1, 1, 2, 2, 3, 3]  # every clip num_repeats times per epoch


def test_flips_and_jitter_apply_to_both_frames_alike(built):
  config, builder = built
  # Without jitter: both frames mirrored or neither; the time flip swaps their order.
  config = _config(config.data_dir)
  config.jitter = {name: 0.0 for name in config.jitter}
  videos = _frames_as_float(builder)
  iterator = clip_pairs.make_pair_iterator(config, batch_size=4, seed=1, builder=builder)
  mirrored, reversed_ = set(), set()
  for _ in range(6):
    batch = next(iterator)
    for source, driving in zip(batch['source'], batch['driving'], strict=True):
      clip, first, flip_a = _locate(source, videos)
      other, second, flip_b = _locate(driving, videos)
      assert clip == other and flip_a == flip_b
      mirrored.add(flip_a)
      if first != second:
        reversed_.add(first > second)
  assert mirrored == {False, True} and reversed_ == {False, True}
  # On a still clip, one draw of every augmentation makes source and driving identical.
  still = [{'video': np.repeat(videos[0, :1] * 255, FRAMES, axis=0).astype(np.uint8)}]
  strong = {'brightness': 0.5, 'contrast': 0.5, 'saturation': 0.5, 'hue': 0.3}
  pair = clip_pairs._Pair(still, flip=True, jitter=strong)
  for seed in range(8):
    out = pair.random_map(0, np.random.default_rng(seed))
    np.testing.assert_array_equal(out['source'], out['driving'])
    assert np.abs(out['source'] - videos[0, 0]).max() > 0.05  # the jitter did change it


def test_pair_iterator_resumes_bit_identically_and_shards_rows(built):
  config, builder = built

  def make(shard=(0, 1)):
    return clip_pairs.make_pair_iterator(config, batch_size=2, seed=3, builder=builder, shard=shard)

  straight = make()
  for _ in range(3):  # past an epoch (4 clips = 2 batches)
    next(straight)
  state = straight.get_state()
  expected = [next(straight) for _ in range(3)]
  resumed = make()
  resumed.set_state(state)
  for want in expected:
    got = next(resumed)
    for key in ('source', 'driving'):
      np.testing.assert_array_equal(got[key], want[key])
  whole, parts = make(), [make((k, 2)) for k in (0, 1)]
  for _ in range(2):
    batch, rows = next(whole), [next(part) for part in parts]
    for key in ('source', 'driving'):
      np.testing.assert_array_equal(np.concatenate([row[key] for row in rows]), batch[key])


def test_clip_frames_reads_clips_in_order(built):
  config, builder = built
  clips = clip_pairs.clip_frames(builder, 'test')
  assert [clip_id for clip_id, _, _ in clips] == [0, 1]
  assert len(clip_pairs.clip_frames(builder, 'test', max_clips=1)) == 1
  for clip_id, video, kp in clips:
    expected = face_clips.make_clip(config.seed, 2, clip_id, FRAMES, SIZE)
    np.testing.assert_array_equal(video, expected['video'])
    np.testing.assert_array_equal(kp, expected['kp'])


def test_misuse_fails_with_one_clear_line(built, tmp_path):
  config, builder = built
  with pytest.raises(ValueError, match='holds clips, not images: read it with data.clip_pairs'):
    pipeline.make_iterator(config, 'train', batch_size=2, model_size=SIZE, train=True)
  images = _config(tmp_path, name='synthetic_faces')
  with pytest.raises(ValueError, match='pairs of frames need a clip dataset'):
    clip_pairs.make_pair_iterator(images, batch_size=2, seed=0)
  with pytest.raises(ValueError, match=r'batch size 5 is larger than the train split \(4 clips\)'):
    clip_pairs.make_pair_iterator(config, batch_size=5, seed=0, builder=builder)
  with pytest.raises(ValueError, match='must be divisible by the 3 processes'):
    clip_pairs.make_pair_iterator(config, batch_size=4, seed=0, builder=builder, shard=(0, 3))
  with pytest.raises(ValueError, match='frames_per_clip at least 2'):
    pipeline.make_builder(_config(tmp_path, frames_per_clip=1))
  too_big = base.clip_data_config()
  too_big.train_size = 3_000  # TFDS would need TensorFlow to write it
  with pytest.raises(ValueError, match='takes 1150 MiB, over the 1,000 MiB that TFDS writes'):
    pipeline.make_builder(too_big)
  default = pipeline.make_builder(base.clip_data_config()).builder_config
  assert default.name == '64px_32f_2000_50_50_seed0'  # the builder's own defaults
