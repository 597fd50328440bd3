"""Distils Squeeze U-Net without skips from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/squeeze_unet_noskip.py
Variants: `:smoke` (tests), `:study` (the study's schedule and teacher; `python -m
tools.study` runs it with loss L1 and 1 seed), `:paper` (the
article's schedule). Measured results: docs/results.md (from docs/study/summary.json).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_unet_noskip')
  return base.apply_variant(config, arg)
