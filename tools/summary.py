"""Parameters, mult-adds and pass size by torchinfo's rules, beside the article's Table 3.

python -m tools.summary                       # every model beside the article
python -m tools.summary --model=edgesegnet    # one model, layer by layer
"""

from __future__ import annotations

import sys

from absl import flags

from tools import cli

_MODEL = flags.DEFINE_string('model', 'all', 'a model of the zoo, or "all" for the comparison')
_INPUT_SIZE = flags.DEFINE_integer('input_size', None, "square input size (default: the model's)")


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from flax import nnx

  import models
  from models import summary

  if _MODEL.value in models.GENERATOR_NAMES:
    sys.exit(
      f'error: {_MODEL.value} is not a keypoint model; one of {", ".join(models.MODEL_NAMES)}.'
    )
  names = models.MODEL_NAMES if _MODEL.value == 'all' else (_MODEL.value,)
  summaries = []
  for name in names:
    try:
      model = models.create_model(name, rngs=nnx.Rngs(0))
      shape = None
      if _INPUT_SIZE.value:
        shape = (1, _INPUT_SIZE.value, _INPUT_SIZE.value, model.num_channels)
      summaries.append(summary.summarize(model, shape, per_layer_xla=_MODEL.value != 'all'))
    except ValueError as error:
      sys.exit(f'error: {error}')
  if _MODEL.value == 'all':
    print(
      "Ours beside the article's Table 3, batch 1 (params, mult-adds, pass size by "
      "torchinfo's rules; XLA GFLOPs from cost_analysis)."
    )
    print(summary.format_comparison(summaries))
  else:
    print(summary.format_layers(summaries[0]))


if __name__ == '__main__':
  cli.run(main)
