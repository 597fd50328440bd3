"""Distils EdgeSegNet from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/edgeseg.py
Variants: `configs/edgeseg.py:smoke` (tests), `configs/edgeseg.py:paper` (the article's
schedule). Expected runtime and result on the 2-core CPU machine: docs/results.md (measured).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('edgesegnet')
  return base.apply_variant(config, arg)
