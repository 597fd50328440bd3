"""Distils the Squeeze Encoder Decoder from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/squeeze_encdec.py
Variants: `configs/squeeze_encdec.py:smoke` (tests), `configs/squeeze_encdec.py:paper`
(the article's schedule). Measured on the 2-core CPU machine with the default teacher in
place (docs/results.md): 3 min 43 s; train loss 0.0057, val loss 0.0040,
val distance 0.0590 (student to truth 0.073).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_encdec')
  return base.apply_variant(config, arg)
