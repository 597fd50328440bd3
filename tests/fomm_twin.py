"""A narrow FOMM detector twin with non-trivial weights, for the converter and vox tests."""

import torch

from torch_twins import create_twin

# A narrow teacher keeps the tests fast; its widths saturate at max_features,
# which the shape inference must recognise. scale_factor 0.25: it takes 256x256 frames.
SMALL = {'block_expansion': 8, 'max_features': 32, 'num_blocks': 5}


def narrow_fomm_twin(seed=0, **config):
  """The twin in eval mode: BatchNorm statistics and scales drawn, jacobians and keypoints
  spread (peaked heatmaps), so that conversions are checked on telling outputs."""
  torch.manual_seed(seed)
  twin = create_twin('fomm_teacher', {**SMALL, **config})
  draw_batchnorm(twin, scales=True)
  with torch.no_grad():
    twin.jacobian.weight.normal_(0, 0.05)
    twin.kp.weight.mul_(30)
  return twin.eval()


def draw_batchnorm(twin, *, scales: bool = False) -> None:
  """Draws a twin's BatchNorm statistics (and scales), so that no normalisation is the identity."""
  with torch.no_grad():
    for module in twin.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.running_mean.normal_(0, 0.1)
        module.running_var.uniform_(0.5, 1.5)
        if scales:
          module.weight.uniform_(0.5, 1.5)
