"""Converts FOMM's PyTorch keypoint detector checkpoint into the Flax teacher.

  python -m tools.convert_fomm --checkpoint=vox-cpk.pth.tar --out=checkpoints/fomm_vox \
    [--generator_out=checkpoints/fomm_vox_generator]

Accepts FOMM's full checkpoint (the state dict under `kp_detector`) or a bare
state dict; the teacher's configuration is read off the tensor shapes, and
the --num_kp style flags check it (`torch_twins.fomm_checkpoint`). With
--generator_out, FOMM's generator (with its dense motion network) becomes a
second folder, `fomm_generator` (`torch_twins.fomm_generator_checkpoint`);
a checkpoint without one converts the detector alone and says so. The file
is loaded with `weights_only=True`: a checkpoint never runs code. Then
distil with `--config.teacher.checkpoint=OUT`.
"""

from __future__ import annotations

import sys

from absl import flags

from tools import cli

_CHECKPOINT = flags.DEFINE_string(
  'checkpoint', None, 'FOMM checkpoint (.pth.tar) or state dict', required=True
)
_OUT = flags.DEFINE_string('out', None, 'folder to write the Flax teacher to (new)', required=True)
_GENERATOR_OUT = flags.DEFINE_string(
  'generator_out', None, "folder to write FOMM's generator to (new); default: detector only"
)
_TEMPERATURE = flags.DEFINE_float('temperature', 0.1, 'heatmap softmax temperature')
_PAD = flags.DEFINE_integer('pad', 0, "padding of FOMM's 7x7 heads")
_CHECKED = {
  name: flags.DEFINE_integer(name, None, 'check the inferred value')
  for name in ('num_kp', 'block_expansion', 'max_features', 'num_blocks')
}
_CHECKED['scale_factor'] = flags.DEFINE_float('scale_factor', None, 'check the inferred value')


def main(argv: list[str]) -> None:
  cli.no_positional(argv)
  from torch_twins import fomm_checkpoint

  known = {name: holder.value for name, holder in _CHECKED.items()}
  known.update(temperature=_TEMPERATURE.value, pad=_PAD.value)
  try:
    if _GENERATOR_OUT.value is None:
      written = {'fomm_teacher': fomm_checkpoint.convert(_CHECKPOINT.value, _OUT.value, **known)}
    else:
      from torch_twins import fomm_generator_checkpoint

      written = fomm_generator_checkpoint.convert_with_generator(
        _CHECKPOINT.value, _OUT.value, _GENERATOR_OUT.value, **known
      )
  except ValueError as error:  # ConversionError, CheckpointError
    sys.exit(f'error: {error}')
  for name, (config, params) in written.items():
    out = _OUT.value if name == 'fomm_teacher' else _GENERATOR_OUT.value
    print(f'wrote {out}: {name} with {params:,} parameters')
    print('config: ' + ', '.join(f'{k}={v}' for k, v in config.items()))


if __name__ == '__main__':
  cli.run(main)
