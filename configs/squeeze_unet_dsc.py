"""Distils Squeeze U-Net with depthwise separable convs from the teacher (loss L1).

Command:
  python main.py --config=configs/squeeze_unet_dsc.py
Variants: `configs/squeeze_unet_dsc.py:smoke` (tests), `configs/squeeze_unet_dsc.py:paper`
(the article's schedule). Measured on the 2-core CPU machine with the default teacher in
place (docs/results.md): 5 min 37 s; train loss 0.0038, val distance 0.0509 (student to truth
0.064); its final val loss, 43.8, is all jacobian term: 3 validation images that its
BatchNorm running statistics blow up (docs/results.md; step 400: 0.0051, the best checkpoint).
"""

from configs import base


def get_config(arg: str | None = None):
  config = base.get_base_config('squeeze_unet_dsc')
  return base.apply_variant(config, arg)
