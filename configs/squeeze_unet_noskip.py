"""Distils Squeeze U-Net without skips from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/squeeze_unet_noskip.py
Variants: `configs/squeeze_unet_noskip.py:smoke` (tests), `configs/squeeze_unet_noskip.py:paper`
(the article's schedule). Not yet run at the default schedule (the article's Table 4 does
not include it; docs/results.md lists the students that were run, with their times).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_unet_noskip')
  return base.apply_variant(config, arg)
