"""The teacher: FOMM's keypoint detector trained on synthetic_faces' landmarks (supervised).

Command:
  python main.py --config=configs/teacher.py
Measured on the 2-core CPU machine (inside the main job, docs/results.md): 5.2 minutes;
train loss 0.0058, val loss 0.0034, val keypoint distance to the true landmarks 0.0484.

FOMM's architecture with narrower widths than vox-256 (block_expansion 8,
max_features 128; about 50 images/s of training on 2 cores) so that 800 steps
of 16 train in about 5 minutes on a CPU; it takes 64x64
frames (scale_factor 1: the pipeline downsamples larger frames once). Its
workdir, workdirs/teacher, is where the distillation configs look for it
(`config.teacher.checkpoint`); they read its best checkpoint the way they
read a converted FOMM checkpoint.
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('fomm_teacher')
  config.task = 'supervised'
  config.model.update({'block_expansion': 8, 'max_features': 128, 'scale_factor': 1.0})
  config.optim.lr = 2e-3
  config.optim.milestones = (600,)
  config.batch_size = 16
  config.num_steps = 800
  config.eval_every = 400
  config.checkpoint_every = 400
  config = base.apply_variant(config, arg)
  if arg == 'smoke':
    config.model.update({'block_expansion': 4, 'max_features': 16, 'num_blocks': 3})
    config.optim.milestones = ()
  return config
