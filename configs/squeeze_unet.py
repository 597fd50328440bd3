"""Distils Squeeze U-Net (the baseline student) from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/squeeze_unet.py
Variants: `:smoke` (tests), `:study` (the study's schedule and teacher; `python -m
tools.study` runs it with loss L1 and 3 seeds), `:paper` (the
article's schedule). Measured results: docs/results.md (from docs/study/summary.json).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_unet')
  return base.apply_variant(config, arg)
