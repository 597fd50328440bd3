"""Distils Squeeze U-Net (the baseline student) from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/squeeze_unet.py
Variants: `configs/squeeze_unet.py:smoke` (tests), `configs/squeeze_unet.py:paper` (the article's
schedule). Measured on the 2-core CPU machine with the default teacher in place (docs/results.md):
12 min 49 s (the test suite shared the CPU); train loss 0.0022, val loss 0.0017, val distance
0.0389 (student to truth 0.051).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_unet')
  return base.apply_variant(config, arg)
