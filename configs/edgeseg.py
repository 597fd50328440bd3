"""Distils EdgeSegNet from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/edgeseg.py
Variants: `configs/edgeseg.py:smoke` (tests), `configs/edgeseg.py:paper` (the article's
schedule).

Measured on the 2-core CPU machine (docs/results.md): 11 min 17 s from a clean checkout
(dataset 1.2 min, default teacher 5.2 min, EdgeSegNet 4.8 min); train loss 0.0033, val loss
0.0023, val distance 0.0458 (student to truth 0.058, teacher to truth 0.048).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('edgesegnet')
  return base.apply_variant(config, arg)
