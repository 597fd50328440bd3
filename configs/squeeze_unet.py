"""Distils Squeeze U-Net (the baseline student) from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/squeeze_unet.py
Variants: `configs/squeeze_unet.py:smoke` (tests), `configs/squeeze_unet.py:paper` (the article's
schedule). Expected runtime and result on the 2-core CPU machine: docs/results.md (measured).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_unet')
  return base.apply_variant(config, arg)
