"""Every model of the zoo, one `ModelSpec` each: what code anywhere needs to know about it.

The spec is the one place for a model's facts: its constructor and default
options, the frame size the study feeds it, its PyTorch twin (named by
import path, so `models/` never imports torch), the porting renames, and
the article's Table 3 / Table 4 rows. Everything else asks `spec(name)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections
from flax import nnx

from models import edgesegnet, fomm, fomm_generator, l3unet, squeeze_unet
from models.article import Table3Row, Table4Row
from models.base import KeypointModel


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """One model of the zoo.

  Attributes:
    name: the registry name (`config.model.name`).
    cls: the Flax module.
    kind: 'keypoints' (a `KeypointModel`: the teacher and the students, in
      MODEL_NAMES, which the study, the parity tests and the commands iterate)
      or 'generator' (FOMM's image generator, in GENERATOR_NAMES).
    default_config: its default options.
    description: one line for tables and help.
    input_size: the square frame size the study feeds it (the pipeline
      anti-alias downsamples larger stored frames to this once).
    input_options: options that feeding `input_size` frames fixes (FOMM's
      teacher: its own anti-alias downsampling off, since frames arrive
      downsampled); applied to every model built for training or teaching.
    twin: 'module:Class' of the PyTorch twin, imported only by torch_twins.
    torch_renames: Flax path prefix -> PyTorch name prefix, for porting.
    torch_derived_buffers: PyTorch buffers the Flax model derives from its options.
    table3: the article's Table 3 row (or the part named by `table3_scope`);
      every keypoint model has one.
    table3_scope: the submodule the article's Table 3 row covers, if not all.
    table4: the article's Table 4 row, for the students it distilled.
  """

  name: str
  cls: type[nnx.Module]
  default_config: Callable[[], ml_collections.ConfigDict]
  description: str
  twin: str
  table3: Table3Row | None = None
  kind: str = 'keypoints'
  input_size: int = 64
  input_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  torch_renames: tuple[tuple[str, str], ...] = ()
  torch_derived_buffers: frozenset[str] = frozenset()
  table3_scope: str | None = None
  table4: Table4Row | None = None


_SPECS = (
  ModelSpec(
    'fomm_teacher',
    fomm.FommKeypointDetector,
    fomm.default_config,
    "FOMM's KPDetector (teacher)",
    twin='torch_twins.fomm:KPDetector',
    # From earlier in the series: the hourglass alone (no 7x7 heads), at 64x64.
    table3=Table3Row(14_129_568, 989.31, None, 0.0130),
    table3_scope='predictor',
    input_options={'scale_factor': 1.0},
    torch_renames=(('head.', ''),),
    torch_derived_buffers=frozenset({'down.weight'}),
  ),
  ModelSpec(
    'squeeze_unet',
    squeeze_unet.SqueezeUNet,
    squeeze_unet.default_config,
    'Squeeze U-Net',
    twin='torch_twins.squeeze_unet:SqueezeUNet',
    table3=Table3Row(2_507_035, 191.55, 5.66, 0.0142),
    table4=Table4Row(0.0025, 0.0054, 0.0094),
  ),
  ModelSpec(
    'squeeze_unet_dsc',
    squeeze_unet.SqueezeUNet,
    squeeze_unet.dsc_config,
    'Squeeze U-Net with dep_sep_conv',
    twin='torch_twins.squeeze_unet:SqueezeUNet',
    table3=Table3Row(540_499, 40.24, 4.13, 0.0119),
  ),
  ModelSpec(
    'squeeze_unet_noskip',
    squeeze_unet.SqueezeUNet,
    squeeze_unet.noskip_config,
    'Squeeze U-Net without skips',
    twin='torch_twins.squeeze_unet:SqueezeUNet',
    table3=Table3Row(runtime_s=0.0122),
  ),
  ModelSpec(
    'squeeze_encdec',
    squeeze_unet.SqueezeUNet,
    squeeze_unet.encdec_config,
    'Squeeze Encoder Decoder',
    twin='torch_twins.squeeze_unet:SqueezeUNet',
    table3=Table3Row(781_375, 26.01, 2.78, 0.0102),
    table4=Table4Row(0.0309, 0.0343, 0.0575),
  ),
  ModelSpec(
    'l3unet',
    l3unet.L3UNet,
    l3unet.default_config,
    'L3U-Net',
    twin='torch_twins.l3unet:L3UNet',
    table3=Table3Row(171_065, 62.92, 6.75, 0.0079),
    table4=Table4Row(0.0080, 0.0084, 0.0131),
  ),
  ModelSpec(
    'edgesegnet',
    edgesegnet.EdgeSegNet,
    edgesegnet.default_config,
    'EdgeSegNet',
    twin='torch_twins.edgesegnet:EdgeSegNet',
    table3=Table3Row(651_617, 125.37, 3.46, 0.0066),
    table4=Table4Row(0.0016, 0.0039, 0.0077),
  ),
  ModelSpec(
    'fomm_generator',
    fomm_generator.OcclusionAwareGenerator,
    fomm_generator.default_config,
    "FOMM's OcclusionAwareGenerator with its DenseMotionNetwork",
    twin='torch_twins.fomm_generator:OcclusionAwareGenerator',
    kind='generator',
    input_size=256,
    torch_derived_buffers=frozenset({'dense_motion_network.down.weight'}),
  ),
)
MODELS: dict[str, ModelSpec] = {s.name: s for s in _SPECS}
# The keypoint models (teacher and students): what the study, tests and commands iterate.
MODEL_NAMES: tuple[str, ...] = tuple(s.name for s in _SPECS if s.kind == 'keypoints')
GENERATOR_NAMES: tuple[str, ...] = tuple(s.name for s in _SPECS if s.kind == 'generator')


def spec(name: str) -> ModelSpec:
  """The spec of model `name`; raises ValueError naming the valid models."""
  if name not in MODELS:
    raise ValueError(f'unknown model {name!r}; valid models: {", ".join(MODELS)}.')
  return MODELS[name]


def default_config(name: str) -> ml_collections.ConfigDict:
  """The default options of model `name`."""
  return spec(name).default_config()


def _like(default: Any, value: Any) -> Any:
  """`value` with lists made tuples where the default is a tuple (JSON and flags give lists)."""
  if isinstance(default, tuple) and isinstance(value, list | tuple):
    inner = default[0] if default else None
    return tuple(_like(inner, v) for v in value)
  return value


def model_config(
  name: str, overrides: Mapping[str, Any] | ml_collections.ConfigDict | None = None
) -> ml_collections.ConfigDict:
  """The default options of `name` updated with `overrides`, checked by key.

  Overrides may come from JSON (lists where the option is a tuple); they are
  turned back into the option's type.

  Raises:
    ValueError: for an unknown model or an unknown option (naming the valid ones).
  """
  config = default_config(name)
  overrides = dict(overrides.items()) if overrides is not None else {}
  overrides.pop('name', None)  # config.model carries the name beside the options
  unknown = sorted(set(overrides) - set(config.keys()))
  if unknown:
    raise ValueError(
      f'unknown option(s) {", ".join(unknown)} for model {name!r}; '
      f'valid options: {", ".join(sorted(config.keys()))}.'
    )
  config.update({k: _like(config[k], v) for k, v in overrides.items()})
  return config


def study_config(
  name: str, overrides: Mapping[str, Any] | ml_collections.ConfigDict | None = None
) -> ml_collections.ConfigDict:
  """`model_config` with the spec's `input_options`: the model as training and teaching feed it."""
  return model_config(name, {**dict((overrides or {}).items()), **spec(name).input_options})


def create_model(
  name: str,
  config: Mapping[str, Any] | ml_collections.ConfigDict | None = None,
  *,
  rngs: nnx.Rngs,
) -> KeypointModel | nnx.Module:
  """Builds model `name` with its defaults overridden by `config`.

  Args:
    name: one of MODEL_NAMES or GENERATOR_NAMES.
    config: options to override (a subset of `default_config(name)`'s keys;
      a `name` key is ignored).
    rngs: random streams; `params` initialises weights, `dropout` drives dropout.

  Returns:
    The model, in training mode (call `.eval()` for inference).
  """
  options = model_config(name, config)
  model = spec(name).cls(**options, rngs=rngs)
  model.name = name
  return model
