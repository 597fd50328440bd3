"""Distils EdgeSegNet from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/edgeseg.py
Variants: `:smoke` (tests), `:study` (the study's schedule and teacher; `python -m
tools.study` runs it with losses L1, L2 and L3, 3 seeds each), `:paper` (the
article's schedule). Measured results: docs/results.md (from docs/study/summary.json).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('edgesegnet')
  return base.apply_variant(config, arg)
