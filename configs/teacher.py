"""The teacher: FOMM's keypoint detector trained on synthetic_faces' landmarks (supervised).

Command:
  python main.py --config=configs/teacher.py
Variants: `:smoke` (tests), `:study` (the study's teacher, trained once and shared by
all its students; `python -m tools.study` trains it first: TEACHER_STUDY_STEPS steps,
longer than its students' so that it ends better than they do), `:paper`.

FOMM's KPDetector at block_expansion 16 and max_features 512: 3,581,656 parameters
and 406 M mult-adds at 64x64, more than every student (Squeeze U-Net, the largest,
has 2,507,035), so distillation compresses. FOMM's vox-256 widths (32 and 1024)
stay available: `--config.model.block_expansion=32 --config.model.max_features=1024`.
It takes 64x64 frames (scale_factor 1: the pipeline downsamples larger frames
once). Its workdir, workdirs/teacher, is where the distillation configs look for
it (`config.teacher.checkpoint`); they read its best checkpoint the way they read
a converted FOMM checkpoint. Measured results: docs/results.md.
"""

from configs import base

TEACHER_STUDY_STEPS = 4000


def get_config(arg: str | None = None):
  config = base.get_base_config('fomm_teacher')
  config.task = 'supervised'
  config.model.update({'block_expansion': 16, 'max_features': 512, 'scale_factor': 1.0})
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
  elif arg == 'study':
    base.study_schedule(config, TEACHER_STUDY_STEPS, (0.6, 0.9))  # the article's shape
  return config
