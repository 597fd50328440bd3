"""A student's keypoints driving FOMM's generator: tools.animate and tools.reconstruction.

Narrow random-weight models at 64x64 (the generator at vox-256's structure
with a handful of channels, its dense motion network downsampling 4x), saved
as checkpoint folders, on a tiny folder of moving synthetic faces. Batches
of 3 on 4-frame videos: the last batch is padded.
"""

import json

import commands
import imageio.v3 as iio
import numpy as np
import pytest
from flax import nnx
from narrow import NARROW, NARROW_GENERATOR

import models
from data import demo_videos, videos
from train import animation, checkpoints, reconstruction

SIZE, BATCH, FRAMES = 64, 3, 4
GENERATOR = NARROW_GENERATOR


def _save(path, name, options, seed):
  model = models.create_model(name, options, rngs=nnx.Rngs(seed))
  checkpoints.save_model(path, model, name=name, options=options)
  return str(path.parent if path.name == 'checkpoints' else path)


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
  """Generator, teacher, student and a 5-keypoint student folders, and a tiny vox folder."""
  tmp = tmp_path_factory.mktemp('animate')
  paths = {
    'generator': _save(tmp / 'generator', 'fomm_generator', GENERATOR, 0),
    'teacher': _save(tmp / 'teacher', 'fomm_teacher', NARROW['fomm_teacher'], 1),
    # Laid out as a training workdir (WORKDIR/checkpoints), as a distilled student is.
    'student': _save(tmp / 'student' / 'checkpoints', 'edgesegnet', NARROW['edgesegnet'], 2),
    'five': _save(tmp / 'five', 'edgesegnet', {**NARROW['edgesegnet'], 'num_kp': 5}, 3),
  }
  # test/t0, test/t1 as frame folders; train/drive as an .mp4.
  demo_videos.write_folder(
    tmp / 'vox', train=('drive',), test=('t0', 't1'), count=FRAMES, size=SIZE
  )
  paths.update(
    vox=str(tmp / 'vox'),
    driving=str(tmp / 'vox' / 'train' / 'drive.mp4'),
    source=str(tmp / 'vox' / 'test' / 't1' / '0000000.png'),
    tmp=tmp,
  )
  return paths


def test_reconstruction_scores_each_detector_on_the_same_frames(folders):
  generator, _ = animation.load_generator(folders['generator'])
  detectors = [animation.load_detector(folders[k])[0] for k in ('teacher', 'student')]
  paths = reconstruction.split_videos(folders['vox'])
  assert list(paths) == ['t0', 't1']
  # The hook for AKD/AED-like metrics: here L1 again, so it must equal the L1 column.
  l1 = {'l1_again': lambda generated, real: np.abs(generated - real).mean((1, 2, 3))}
  results = reconstruction.reconstruct(
    generator, detectors, paths, size=SIZE, batch=BATCH, frame_metrics=l1
  )
  teacher, student = results
  assert teacher['frames'] == student['frames'] == 2 * FRAMES
  assert teacher['kp_distance'] == 0.0 and student['kp_distance'] > 0
  for result in results:
    assert 0 < result['l1'] < 1 and set(result['per_video']) == {'t0', 't1'}
    assert result['l1_again'] == pytest.approx(result['l1'], rel=1e-6)
  table = reconstruction.markdown_table(['teacher', 'student'], results).splitlines()
  assert len(table) == 4 and table[0].endswith('| l1_again |') and table[2].startswith('| teacher')

  # Relative motion from a video's own first frame is the absolute motion (FOMM: kp_source
  # = kp_driving_initial, so the movement scale is 1): the same frames as reconstruction.
  animator = animation.Animator(generator, detectors[1], size=SIZE, batch=BATCH)
  clip = videos.read_video(paths['t0'], SIZE)
  relative, kp = animator.drive(clip[0], clip, relative=True, adapt_movement_scale=True)
  absolute, _ = animator.drive(clip[0], clip, relative=False)
  assert relative.shape == (FRAMES, SIZE, SIZE, 3) and kp['kp'].shape == (FRAMES, 10, 2)
  np.testing.assert_allclose(relative, absolute, atol=1e-5)
  real = clip.astype(np.float32) / 255.0
  assert np.abs(absolute - real).mean() == pytest.approx(student['per_video']['t0'], rel=1e-5)


def test_bad_inputs_are_one_line_each(folders, tmp_path):
  generator, _ = animation.load_generator(folders['generator'])
  not_image = tmp_path / 'face.png'
  not_image.write_text('not an image')
  (tmp_path / 'empty').mkdir()
  five, _ = animation.load_detector(folders['five'])
  cases = [
    (lambda: videos.read_image(not_image, SIZE), 'is not a readable image'),
    (lambda: videos.read_video(tmp_path / 'empty', SIZE), 'holds no frames'),
    (lambda: animation.Animator(generator, five), 'finds 5 keypoints but the generator'),
    (lambda: animation.load_generator(folders['teacher']), 'holds fomm_teacher, a keypoint'),
    (lambda: animation.load_detector(folders['generator']), 'not a keypoint detector'),
  ]
  for call, message in cases:
    with pytest.raises(ValueError, match=message) as error:
      call()
    assert '\n' not in str(error.value)
  student, _ = animation.load_detector(folders['student'])
  with pytest.raises(animation.AnimationError, match='multiples of 32'):
    animation.Animator(generator, student, size=48)
  with pytest.raises(videos.VideoError, match='must be an .mp4 or .gif'):
    videos.check_output(tmp_path / 'out.avi')


def test_videos_are_read_cropped_and_written_whole(tmp_path):
  rng = np.random.default_rng(0)
  clip = rng.integers(0, 256, (3, 20, 30, 3), np.uint8)  # not square: centre-cropped
  videos.write_video(tmp_path / 'clip.gif', clip, fps=10)
  read = videos.read_video(tmp_path / 'clip.gif', 16)
  assert read.shape == (3, 16, 16, 3) and read.dtype == np.uint8
  assert videos.read_video(tmp_path / 'clip.gif', 16, max_frames=2).shape[0] == 2
  # yuv420p needs even sides: an odd frame is padded by one pixel.
  videos.write_video(tmp_path / 'odd.mp4', clip[:, :15, :15], fps=10)
  assert iio.imread(tmp_path / 'odd.mp4', plugin='pyav', index=None).shape == (3, 16, 16, 3)
  assert videos.video_fps(tmp_path / 'odd.mp4') == 10
  with pytest.raises(videos.VideoError, match='already exists'):
    videos.write_video(tmp_path / 'odd.mp4', clip)
  (tmp_path / 'empty.gif').write_bytes(b'')
  with pytest.raises(videos.VideoError, match='cannot be read as a video'):
    videos.read_video(tmp_path / 'empty.gif', 16)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['clip.gif', 'empty.gif', 'odd.mp4']
  drawn = videos.side_by_side(read[0], read, np.zeros((3, 10, 2)), read)
  assert drawn.shape == (3, 16, 48, 3) and (drawn[:, 8, 16 + 7] != read[:, 8, 7]).any()


def test_animate_command_writes_the_side_by_side_video(folders, capsys):
  # In-process (the command's subprocess: the refusal below).
  out = folders['tmp'] / 'animated.mp4'
  exit_ = commands.in_process(
    'tools.animate',
    f'--generator={folders["generator"]}',
    f'--detector={folders["student"]}',
    f'--source={folders["source"]}',
    f'--driving={folders["driving"]}',
    f'--out={out}',
    f'--size={SIZE}',
    f'--batch={BATCH}',
    '--side_by_side',
  )
  assert exit_ is None
  assert 'edgesegnet driving' in capsys.readouterr().out
  video = iio.imread(out, plugin='pyav', index=None)
  assert video.shape == (FRAMES, SIZE, 3 * SIZE, 3)
  assert not list(folders['tmp'].glob('*.partial*'))


def test_animate_command_refuses_a_source_that_is_not_an_image(folders, tmp_path):
  source = tmp_path / 'source.png'
  source.write_bytes(b'\x00' * 100)
  out = tmp_path / 'animated.mp4'
  result = commands.run(
    '-m',
    'tools.animate',
    f'--generator={folders["generator"]}',
    f'--detector={folders["student"]}',
    f'--source={source}',
    f'--driving={folders["driving"]}',
    f'--out={out}',
    f'--size={SIZE}',
  )
  line = commands.last_error_line(result)
  assert line.startswith('error: ') and 'is not a readable image' in line
  assert sorted(p.name for p in tmp_path.iterdir()) == ['source.png']


def test_reconstruction_command_writes_the_table_and_json(folders, capsys):
  # In-process (the command's subprocess: the refusal below).
  out = folders['tmp'] / 'reconstruction.json'
  exit_ = commands.in_process(
    'tools.reconstruction',
    f'--generator={folders["generator"]}',
    f'--detector={folders["teacher"]},{folders["student"]}',
    f'--data={folders["vox"]}',
    f'--out={out}',
    f'--size={SIZE}',
    f'--batch={BATCH}',
    '--max_videos=1',
  )
  assert exit_ is None
  rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| ')]
  assert rows[1].startswith('| teacher (fomm_teacher) |') and rows[1].endswith('| 0.0000 |')
  assert rows[2].startswith('| student (edgesegnet) |')
  summary = json.loads(out.read_text())
  assert (summary['videos'], summary['frames']) == (1, FRAMES)
  assert [d['model'] for d in summary['detectors']] == ['fomm_teacher', 'edgesegnet']
  assert all(0 < d['l1'] < 1 for d in summary['detectors'])


def test_reconstruction_command_refuses_a_detector_as_generator(folders, tmp_path):
  out = tmp_path / 'reconstruction.json'
  result = commands.run(
    '-m',
    'tools.reconstruction',
    f'--generator={folders["teacher"]}',
    f'--detector={folders["student"]}',
    f'--data={folders["vox"]}',
    f'--out={out}',
  )
  line = commands.last_error_line(result)
  assert line.startswith('error: ') and 'not a generator' in line
  assert not out.exists()


@pytest.mark.slow
def test_the_smoke_student_drives_the_generator(folders, shared, edgeseg_run):
  """The session's trained smoke teacher and EdgeSegNet student (full width) as detectors."""
  generator, _ = animation.load_generator(folders['generator'])
  workdir, _ = edgeseg_run
  detectors = [animation.load_detector(p)[0] for p in (shared / 'teacher', workdir)]
  paths = reconstruction.split_videos(folders['vox'])
  teacher, student = reconstruction.reconstruct(generator, detectors, paths, size=SIZE, batch=4)
  assert teacher['kp_distance'] == 0.0 and 0 < student['kp_distance'] < 2
  assert 0 < student['l1'] < 1
  animator = animation.Animator(generator, detectors[1], size=SIZE, batch=4)
  clip = videos.read_video(folders['driving'], SIZE)
  source = videos.read_image(folders['source'], SIZE)
  animated, _ = animator.drive(source, clip)
  assert animated.shape == (FRAMES, SIZE, SIZE, 3) and np.isfinite(animated).all()
