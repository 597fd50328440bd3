"""Plain PyTorch twins of every model of the zoo, and weight porting both ways.

Written from the same specification as `models/`, the way the article's
authors would have written them (NCHW, nn.Conv2d, nn.ConvTranspose2d,
nn.BatchNorm2d), with the same module names, so that `porting` maps weights
by per-layer rules. Each model's `ModelSpec.twin` names its twin class.
torch is needed here and in the tests and benchmark, never by `models/`,
training or data.
"""

from torch_twins.registry import create_twin, twin_class

__all__ = ['create_twin', 'twin_class']
