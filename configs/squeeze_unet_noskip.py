"""Distils Squeeze U-Net without skips from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/squeeze_unet_noskip.py
Variants: `configs/squeeze_unet_noskip.py:smoke` (tests), `configs/squeeze_unet_noskip.py:paper`
(the article's schedule). Measured on the 2-core CPU machine with the default teacher in
place (docs/results.md): 5 min 31 s; train loss 0.0068, val loss 0.0045, val distance 0.0684
(student to truth 0.081).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_unet_noskip')
  return base.apply_variant(config, arg)
