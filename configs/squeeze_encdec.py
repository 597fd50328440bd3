"""Distils the Squeeze Encoder Decoder from the teacher (loss L1: keypoints + jacobians).

Command:
  python main.py --config=configs/squeeze_encdec.py
Variants: `configs/squeeze_encdec.py:smoke` (tests), `configs/squeeze_encdec.py:paper`
(the article's schedule). Measured on the 2-core CPU machine with the default teacher in
place (docs/results.md): 6 min 56 s; train loss 0.0056, val loss 0.0039,
val distance 0.0596 (student to truth 0.071).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_encdec')
  return base.apply_variant(config, arg)
