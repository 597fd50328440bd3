"""Distils L3U-Net (data folding) from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/l3unet.py
Variants: `configs/l3unet.py:smoke` (tests), `configs/l3unet.py:paper` (the article's
schedule). Measured on the 2-core CPU machine with the default teacher in place (docs/results.md):
4 min 25 s; train loss 0.0071, val loss 0.0055, val distance 0.0756 (student to truth 0.090).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('l3unet')
  return base.apply_variant(config, arg)
