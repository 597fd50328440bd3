"""Distils L3U-Net (data folding) from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/l3unet.py
Variants: `configs/l3unet.py:smoke` (tests), `configs/l3unet.py:paper` (the article's
schedule). Expected runtime and result on the 2-core CPU machine: docs/results.md (measured).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('l3unet')
  return base.apply_variant(config, arg)
