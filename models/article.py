"""The shape of the article's published figures; each model's rows live in its `ModelSpec`.

Table 3: PyTorch on an Intel Xeon E5-2640 v3, input 3x64x64, torchinfo's
counting rules. Table 4: distillation from FOMM's teacher on VoxCeleb.
`None` marks a figure the article did not publish.
"""

from __future__ import annotations

import dataclasses

MEASURED_ON = 'PyTorch on an Intel Xeon E5-2640 v3 @ 2.60GHz (the article)'


@dataclasses.dataclass(frozen=True)
class Table3Row:
  """Model summary and CPU runtime (torchinfo's counting rules)."""

  params: int | None = None
  mult_adds_m: float | None = None
  pass_size_mb: float | None = None
  runtime_s: float | None = None


@dataclasses.dataclass(frozen=True)
class Table4Row:
  """Distillation results: train loss, val loss, val keypoint distance to the teacher."""

  train_loss: float
  val_loss: float
  val_distance: float
