"""FOMM trained here, unsupervised: keypoint detector and generator together, from scratch.

Command:
  python main.py --config=configs/fomm.py
Variants: `:smoke` (tests: tiny clips, narrow models, a few steps).

FOMM's training (modules/model.py, config/vox-256.yaml) on the synthetic
talking-face clips (`synthetic_face_clips`) at the students' 64x64: pairs of
frames of one clip, the generator re-posing the source by the detector's
keypoints, a reconstruction loss over an image pyramid and the equivariance
losses under random affine + thin-plate-spline transforms; GAN off, as in
FOMM's vox config; Adam (lr 2e-4, betas 0.5 and 0.999) with x0.1 at 60% and 90%.
The detector is the supervised teacher's (configs/teacher.py: block_expansion 16,
max_features 512 at 64x64), so the two teachers differ only in how they learnt.

The reconstruction term: FOMM compares VGG19 features (ImageNet weights, which
cannot be downloaded here): give them with `--config.loss.vgg19=PATH`
(train.vgg19_weights). Without them, `loss.pixel` picks a weight-free term on
the same pyramid: 'l1' or 'ssim' (docs/results.md says which was chosen and why).
The finished run writes WORKDIR/detector and WORKDIR/generator, model folders
that distillation (`--config.teacher.checkpoint=WORKDIR/detector`),
`tools.animate` and `tools.reconstruction` read.
"""

import ml_collections

from configs import base


def get_config(arg: str | None = None):
  if arg not in (None, '', 'smoke'):
    raise ValueError(f'configs/fomm.py: unknown argument {arg!r}; valid: smoke.')
  config = base.get_base_config('fomm_teacher')
  config.task = 'fomm'
  config.model.update({'block_expansion': 16, 'max_features': 512, 'scale_factor': 1.0})
  # FOMM's generator (models/fomm_generator.py) at 64x64: vox-256's layout, narrower,
  # its dense motion network at 32x32 (scale 0.5, four hourglass blocks down to 2x2).
  config.generator = ml_collections.ConfigDict(
    {
      'block_expansion': 32,
      'max_features': 256,
      'num_down_blocks': 2,
      'num_bottleneck_blocks': 3,
      'dense_motion_block_expansion': 32,
      'dense_motion_max_features': 512,
      'dense_motion_num_blocks': 4,
      'dense_motion_scale_factor': 0.5,
    }
  )
  config.data = base.clip_data_config()  # 2,000 / 50 / 50 clips of 32 frames at 64x64
  config.loss = ml_collections.ConfigDict(
    {
      'scales': (1.0, 0.5, 0.25, 0.125),  # FOMM's pyramid
      'vgg19': '',  # a torchvision VGG19 state dict: FOMM's perceptual loss
      'perceptual': (10.0, 10.0, 10.0, 10.0, 10.0),  # per VGG19 slice, FOMM's
      'pixel': 'ssim',  # without vgg19: 'ssim' or 'l1' on the pyramid (docs/fomm_training.md)
      'pixel_weight': 10.0,  # per pyramid level
      'equivariance_value': 10.0,
      'equivariance_jacobian': 10.0,
    }
  )
  config.transform = ml_collections.ConfigDict(
    {'sigma_affine': 0.05, 'sigma_tps': 0.005, 'points_tps': 5}
  )
  config.optim.update({'name': 'adam', 'lr': 2e-4, 'b1': 0.5, 'b2': 0.999})
  config.batch_size = 16
  config.num_steps = 5000
  config.optim.milestones = (3000, 4500)
  config.eval_every = 500
  config.checkpoint_every = 250
  config.log_every = 25
  config.eval_batch_size = 32
  config.precise_bn_images = 0
  # The landmark regression (train.landmark_regression) at each evaluation: fitted on
  # the first frames of this many training clips, tested on every validation frame.
  config.regression_clips = 200
  config.regression_frames_per_clip = 4
  config.teacher.checkpoint = ''  # FOMM learns alone
  if arg == 'smoke':
    config.model.update({'block_expansion': 4, 'max_features': 16, 'num_blocks': 3})
    config.generator.update(
      {
        'block_expansion': 4,
        'max_features': 16,
        'num_bottleneck_blocks': 1,
        'dense_motion_block_expansion': 4,
        'dense_motion_max_features': 16,
        'dense_motion_num_blocks': 2,
      }
    )
    config.data.update({'image_size': 64, 'train_size': 8, 'validation_size': 2})
    config.data.update({'test_size': 2, 'frames_per_clip': 6, 'data_dir': 'datasets/smoke'})
    config.optim.milestones = ()
    config.optim.lr = 2e-3
    config.batch_size = 4
    config.num_steps = 12
    config.eval_every = config.checkpoint_every = 6
    config.log_every = 1
    config.eval_batch_size = 6
    config.regression_clips = 8
    config.regression_frames_per_clip = 3
  return config
