"""Distils Squeeze U-Net with depthwise separable convs from the teacher (loss L1).

Command:
  python main.py --config=configs/squeeze_unet_dsc.py
Variants: `:smoke` (tests), `:study` (the study's schedule and teacher; `python -m
tools.study` runs it with loss L1 and 1 seed), `:paper` (the
article's schedule). Measured results: docs/results.md (from docs/study/summary.json).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_unet_dsc')
  return base.apply_variant(config, arg)
