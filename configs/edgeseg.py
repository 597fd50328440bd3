"""Distils EdgeSegNet from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/edgeseg.py
Variants: `configs/edgeseg.py:smoke` (tests), `configs/edgeseg.py:paper` (the article's
schedule).

Measured on the 2-core CPU machine (docs/results.md): 19 min 23 s from a clean checkout
(dataset 1.5 min, default teacher 9 min, EdgeSegNet 8.3 min); train loss 0.0030, val loss
0.0023, val distance 0.0449 (student to truth 0.057, teacher to truth 0.047).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('edgesegnet')
  return base.apply_variant(config, arg)
