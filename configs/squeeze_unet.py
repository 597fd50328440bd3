"""Distils Squeeze U-Net (the baseline student) from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/squeeze_unet.py
Variants: `configs/squeeze_unet.py:smoke` (tests), `configs/squeeze_unet.py:paper` (the article's
schedule). Measured on the 2-core CPU machine with the default teacher in place (docs/results.md):
6 min 05 s; train loss 0.0023, val loss 0.0018, val distance 0.0390 (student to truth 0.052).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_unet')
  return base.apply_variant(config, arg)
