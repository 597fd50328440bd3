"""Distils a student from FOMM's own detector on your videos in FOMM's layout (e.g. VoxCeleb).

Command (README, "Distil FOMM's detector on your own frames"):
  python -m tools.convert_fomm --checkpoint=vox-cpk.pth.tar --out=checkpoints/fomm_vox
  python main.py --config=configs/vox.py --config.data.manual_dir=PATH/vox-png \\
      --config.teacher.checkpoint=checkpoints/fomm_vox
Any student by `--config.model.name=squeeze_unet` (default EdgeSegNet, loss L1).

The `frames` dataset stores at most `data.frames_per_video` evenly spaced frames per
video at 256x256 (FOMM's vox input), PNG-encoded; training samples every video
`data.num_repeats` times per epoch, as FOMM does, and FOMM's anti-alias downsampling
brings each augmented frame to the students' 64x64, the teacher seeing the same one.
The schedule is in epochs of that size (train.epochs). Variants: `:smoke` (tests, a
tiny folder), `:paper` (the article's optimiser on FOMM's vox.yaml sampling:
num_repeats 100, 100 epochs, x0.1 at 60 and 90).
"""

from configs import base


def get_config(arg: str | None = None):
  if arg == 'study':
    raise ValueError("configs/vox.py has no 'study' variant; valid: smoke, paper.")
  config = base.get_base_config('edgesegnet')
  config = base.apply_variant(config, arg)
  config.data.update({'name': 'frames', 'image_size': 256})
  config.teacher.checkpoint = 'checkpoints/fomm_vox'  # from tools.convert_fomm
  config.teacher.train_variant = ''
  if arg == 'smoke':
    config.data.update({'frames_per_video': 4, 'num_repeats': 2})
    config.epochs, config.milestone_epochs = 3, ()
  elif arg == 'paper':
    config.data.num_repeats = 100
  else:  # sized for a CPU: 10 epochs of every video 10 times
    config.data.num_repeats = 10
    config.epochs, config.milestone_epochs = 10, (6, 9)
  return config
