"""FOMM's teacher on VoxCeleb-layout videos, end to end, as a user with vox-cpk.pth.tar runs it."""

import json
import os
import re

import commands
import jax
import numpy as np
import pytest
import torch
from fomm_twin import narrow_fomm_twin
from PIL import Image

from configs import vox
from data import demo_videos, frames, pipeline
from train import config_checks, teacher

SIZE = 256


def draw_vox_folder(root, *, train=('id00', 'id01', 'id02', 'id03'), test=('id10',), count=6):
  """ROOT/{train,test}/<video>/<frame>.png, the last training video as an .mp4 instead."""
  demo_videos.write_folder(root, train=train, test=test, count=count, size=SIZE)


@pytest.fixture(scope='module')
def vox_folder(tmp_path_factory):
  """A vox-png folder and FOMM's checkpoint format from the twin, converted in-process."""
  from torch_twins import fomm_checkpoint

  tmp = tmp_path_factory.mktemp('vox')
  draw_vox_folder(tmp / 'vox-png')
  twin = narrow_fomm_twin()
  torch.save({'kp_detector': twin.state_dict()}, tmp / 'vox-cpk.pth.tar')
  fomm_checkpoint.convert(str(tmp / 'vox-cpk.pth.tar'), str(tmp / 'fomm_vox'))
  return tmp, twin


@pytest.fixture(scope='module')
def vox_run(tmp_path_factory):
  """As a user runs it: tools.convert_fomm, then main.py on the vox smoke config (slow)."""
  tmp = tmp_path_factory.mktemp('vox_run')
  draw_vox_folder(tmp / 'vox-png')
  twin = narrow_fomm_twin()
  torch.save({'kp_detector': twin.state_dict()}, tmp / 'vox-cpk.pth.tar')
  converted = commands.run(
    '-m',
    'tools.convert_fomm',
    f'--checkpoint={tmp / "vox-cpk.pth.tar"}',
    f'--out={tmp / "fomm_vox"}',
  )
  assert converted.returncode == 0, converted.stderr[-3000:]
  flags = [
    f'--config.data.manual_dir={tmp / "vox-png"}',
    f'--config.teacher.checkpoint={tmp / "fomm_vox"}',
    f'--config.data.data_dir={tmp / "datasets"}',
    f'--workdir={tmp / "run"}',
  ]
  distilled = commands.run('main.py', '--config=configs/vox.py:smoke', *flags, timeout=600)
  assert distilled.returncode == 0, distilled.stderr[-3000:]
  return tmp, twin, distilled


def _config(tmp, **data):
  config = vox.get_config('smoke')
  config.data.update({'manual_dir': str(tmp / 'vox-png'), 'data_dir': str(tmp / 'datasets')})
  config.data.update(data)
  config.teacher.checkpoint = str(tmp / 'fomm_vox')
  return config


@pytest.mark.slow
def test_distilling_fomm_on_vox_frames_writes_results(vox_run):
  tmp, _, distilled = vox_run
  results = json.loads((tmp / 'run' / 'results.json').read_text())
  assert results['model'] == 'edgesegnet' and np.isfinite(results['val_distance'])
  # The smoke schedule is in epochs of the folder's own size: 3 train videos x 2 repeats
  # in batches of 4 is 1 step per epoch, 3 epochs.
  assert results['steps'] == 3, results
  assert 'frames train: 12 frames of 3 videos stored' in distilled.stdout


def test_teacher_sees_what_fomm_sees(vox_folder):
  """The converted teacher on a stored frame, through the pipeline's anti-alias to 64x64,
  equals FOMM's twin on the same 256x256 frame (which downsamples it itself)."""
  tmp, twin = vox_folder
  config = _config(tmp)
  builder = pipeline.prepare(config.data)
  batch = next(
    pipeline.make_iterator(
      config.data, 'test', batch_size=2, model_size=64, train=False, builder=builder
    )
  )
  model, _ = teacher.load_teacher(config)
  ours = jax.jit(lambda x: model(x))(batch['image'])
  stored = np.stack([frames.decode(builder.as_data_source('test')[i]['image']) for i in (0, 1)])
  assert stored.shape == (2, SIZE, SIZE, 3)
  with torch.inference_mode():
    theirs = twin(torch.from_numpy(stored.transpose(0, 3, 1, 2).astype(np.float32) / 255.0))
  for key in ('kp', 'jacobian'):
    np.testing.assert_allclose(ours[key], theirs[key].numpy(), atol=1e-4, rtol=0, err_msg=key)


def test_frames_are_stored_encoded_sampled_and_named_by_their_folder(vox_folder, tmp_path):
  tmp, _ = vox_folder
  config = _config(tmp)
  builder = pipeline.prepare(config.data)
  assert builder.info.metadata['videos'] == {'train': [4, 4, 4], 'validation': [4], 'test': [4]}
  source = builder.as_data_source('train')
  example = source[0]
  png = (tmp / 'vox-png' / 'train' / example['video_id'].decode() / '0000000.png').read_bytes()
  assert example['image'] == png  # a vox-png frame is kept byte for byte
  assert [source[i]['frame_index'] for i in range(4)] == [0, 2, 3, 5]  # evenly spaced of 6
  assert pipeline.epoch_size(config.data, builder) == 3 * 2
  # Two folders never share a build: a copy elsewhere gets its own name.
  other = tmp_path / 'copy'
  draw_vox_folder(other, train=('a', 'b'), test=('c',), count=2)
  names = {pipeline.make_builder(dict_update(config.data, manual_dir=str(other))).info.full_name}
  (other / 'test' / 'c' / '0000000.png').write_bytes(b'changed')  # a folder that changed
  names.add(pipeline.make_builder(dict_update(config.data, manual_dir=str(other))).info.full_name)
  assert len(names | {builder.info.full_name}) == 3


def dict_update(config, **values):
  config = config.copy_and_resolve_references()
  config.update(values)
  return config


def test_one_epoch_samples_every_video_num_repeats_times(vox_folder):
  tmp, _ = vox_folder
  still = {k: 0.0 for k in ('brightness', 'contrast', 'saturation', 'hue')}
  config = _config(tmp, flip=False, jitter=still)
  builder = pipeline.prepare(config.data)
  iterator = pipeline.make_iterator(
    config.data, 'train', batch_size=2, model_size=64, train=True, builder=builder
  )
  seen = [int(i) for _ in range(3) for i in next(iterator)['frame_index']]
  assert len(seen) == 6 and all(i in (0, 2, 3, 5) for i in seen)


def test_bad_folders_are_skipped_counted_or_refused(vox_folder, tmp_path):
  root = tmp_path / 'vox-png'
  draw_vox_folder(root, count=3)
  (root / 'train' / 'empty_video').mkdir()
  gif = demo_videos.moving_face(7, 5, SIZE)
  Image.fromarray(gif[0]).save(
    root / 'test' / 'id11.gif',
    save_all=True,
    append_images=[Image.fromarray(frame) for frame in gif[1:]],
  )
  (root / 'train' / 'id01' / '0000001.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
  config = vox.get_config('smoke').data
  config.update({'manual_dir': str(root), 'data_dir': str(tmp_path / 'd'), 'max_bad_fraction': 0.2})
  builder = pipeline.prepare(config)
  counts = builder.info.metadata['videos']
  assert sorted(counts['train'] + counts['validation']) == [2, 3, 3, 3]  # one bad frame skipped
  assert counts['test'] == [3, 4]  # id10's 3 frames, the .gif's 4 of 5 (evenly spaced)

  # Too many bad frames: one line, and no dataset left half-written.
  config.update({'max_bad_fraction': 0.01, 'data_dir': str(tmp_path / 'strict')})
  with pytest.raises(frames.FramesError, match='unreadable .more than max_bad_fraction=0.01'):
    pipeline.prepare(config)
  assert not list((tmp_path / 'strict').glob('frames/*/*/dataset_info.json'))

  # No train/ folder: refused before any work, through main.py's main as one line.
  (tmp_path / 'no_train' / 'test').mkdir(parents=True)
  exit_ = commands.in_process(
    'main',
    '--config=configs/vox.py:smoke',
    f'--config.data.manual_dir={tmp_path / "no_train"}',
    f'--config.teacher.checkpoint={vox_folder[0] / "fomm_vox"}',
    f'--config.data.data_dir={tmp_path / "d2"}',
    f'--workdir={tmp_path / "w"}',
  )
  assert 'no_train/train does not exist; expected the layout' in commands.one_line(exit_)
  assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize(
  'key,value,message',
  [
    ('encoding', 'webp', "data.encoding='webp'; valid: png, jpeg."),
    ('frames_per_video', 0, 'data.frames_per_video must be at least 1'),
    ('num_repeats', 0, 'data.num_repeats must be at least 1'),
    ('validation_fraction', 1.0, 'data.validation_fraction must lie in'),
  ],
)
def test_bad_frames_options_fail_with_one_line(key, value, message):
  config = vox.get_config('smoke')
  config.data[key] = value
  with pytest.raises(config_checks.ConfigError, match=re.escape(message)):
    config_checks.validate(config)


def test_teacher_and_data_must_match(vox_folder, tmp_path):
  tmp, _ = vox_folder
  config = _config(tmp)
  config.data.name = 'synthetic_faces'
  with pytest.raises(teacher.TeacherError, match='on real video, but the data is synthetic'):
    teacher.load_teacher(config)
  config.teacher.allow_other_data = True
  teacher.load_teacher(config)  # meant: used as it is
  meta = json.loads(next((tmp / 'fomm_vox').glob('*/meta/metadata')).read_text())
  provenance = meta['provenance']
  assert provenance['kind'] == 'converted_fomm' and len(provenance['sha256']) == 64
  assert os.path.basename(provenance['source']) == 'vox-cpk.pth.tar'
