"""Every model of the zoo at narrow widths: the same layers, blocks and op forms as its
default (every stage, skip, fold, transposed conv and head is there), with a handful of
channels each, so that per-model tests compile and run in seconds.

Counts against the article are checked at full width (they need no forward pass);
the full-width matrices of parity and export are in the slow tier.
"""

import pytest

import models

NARROW = {
  # FOMM's detector with its anti-alias downsampling (scale 0.25) and 7x7 heads.
  'fomm_teacher': {'block_expansion': 4, 'max_features': 16, 'num_blocks': 3},
  'squeeze_unet': {
    'stem_features': 8,
    'encoder': ((4, 8), (4, 8), (8, 16), (8, 16)),
    'decoder': ((8, 16, 1), (4, 8, 1), (4, 8, 2), (4, 8, 2)),
    'final_features': 8,
    'head_features': 8,
  },
  'squeeze_unet_dsc': {
    'stem_features': 8,
    'encoder': ((4, 8), (4, 8), (8, 16), (8, 16)),
    'decoder': ((8, 16, 1), (4, 8, 1), (4, 8, 2), (4, 8, 2)),
    'final_features': 8,
    'head_features': 8,
  },
  'squeeze_unet_noskip': {
    'stem_features': 8,
    'encoder': ((4, 8), (4, 8), (8, 16), (8, 16)),
    'decoder': ((8, 16, 1), (4, 8, 1), (4, 8, 2), (4, 8, 2)),
    'final_features': 8,
    'head_features': 8,
  },
  'squeeze_encdec': {
    'stem_features': 8,
    'encoder': ((4, 8), (4, 8), (8, 16), (8, 16)),
    'decoder': ((4, 16, 2), (4, 8, 2), (4, 8, 2)),
    'head_features': 8,
  },
  'l3unet': {
    'prep_features': (8, 8, 8),
    'encoder_features': (4, 8, 8),
    'bottleneck_features': 8,
    'decoder_features': (8, 8, 8),
    'dec0_features': 8,
    'post_features': (8, 8, 8),
    'head_features': 8,
  },
  'edgesegnet': {
    'stem_features': 4,
    'bottleneck_features': 8,
    'refine_features': 8,
    'head_features': 8,
  },
}
assert set(NARROW) == set(models.MODEL_NAMES), 'a new model needs its narrow widths here'

# FOMM's generator: every block of vox-256's (down, bottleneck and up blocks, the dense
# motion network's hourglass, mask and occlusion) with a handful of channels.
NARROW_GENERATOR = {
  'block_expansion': 8,
  'max_features': 32,
  'num_bottleneck_blocks': 2,
  'dense_motion_block_expansion': 4,
  'dense_motion_max_features': 16,
  'dense_motion_num_blocks': 3,
}


# Per-model tests run narrow in the fast tier and at the zoo's widths in the slow one.
WIDTHS = (pytest.param('narrow'), pytest.param('full', marks=pytest.mark.slow))
# The models they take: every one, but Squeeze U-Net without its skips (its one branch of
# its own: the decoder takes no encoder features) in the slow tier only; squeeze_unet,
# narrow, is its fast sibling.
NAMES = tuple(
  pytest.param(name, marks=pytest.mark.slow) if name == 'squeeze_unet_noskip' else name
  for name in models.MODEL_NAMES
)


def model_at(name, width, rngs, **options):
  """Model `name` at 'narrow' or 'full' (its default) widths."""
  return models.create_model(name, {**(NARROW[name] if width == 'narrow' else {}), **options},
                             rngs=rngs)  # fmt: skip


def options_at(name, width):
  """The options `model_at(name, width, ...)` overrides (for twins and configs)."""
  return dict(NARROW[name]) if width == 'narrow' else {}
