"""The article's published figures (PyTorch, Intel Xeon E5-2640 v3, input 3x64x64).

Keyed by this project's model names, so tools can set ours beside theirs.
`None` marks a figure the article did not publish.
"""

from __future__ import annotations

import dataclasses

MEASURED_ON = 'PyTorch on an Intel Xeon E5-2640 v3 @ 2.60GHz (the article)'


@dataclasses.dataclass(frozen=True)
class Table3Row:
  """Model summary and CPU runtime (torchinfo's counting rules)."""

  params: int | None
  mult_adds_m: float | None
  pass_size_mb: float | None
  runtime_s: float | None


TABLE3: dict[str, Table3Row] = {
  # The teacher's row is from earlier in the series: the hourglass alone
  # (no 7x7 heads), at 64x64; see TABLE3_SCOPE.
  'fomm_teacher': Table3Row(14_129_568, 989.31, None, 0.0130),
  'squeeze_unet': Table3Row(2_507_035, 191.55, 5.66, 0.0142),
  'squeeze_unet_dsc': Table3Row(540_499, 40.24, 4.13, 0.0119),
  'squeeze_unet_noskip': Table3Row(None, None, None, 0.0122),
  'squeeze_encdec': Table3Row(781_375, 26.01, 2.78, 0.0102),
  'l3unet': Table3Row(171_065, 62.92, 6.75, 0.0079),
  'edgesegnet': Table3Row(651_617, 125.37, 3.46, 0.0066),
}

# Where the article counted only part of a model: the submodule its row covers.
TABLE3_SCOPE: dict[str, str] = {'fomm_teacher': 'predictor'}
