"""The accounting reproduces the article's counts and follows torchinfo's rules."""

import functools

import commands
import pytest
from flax import nnx

import models
from models import summary


@functools.cache
def _summary(name):
  model = models.create_model(name, rngs=nnx.Rngs(0))
  return summary.summarize(model, per_layer_xla=False)


def test_squeeze_unet_counts():
  s = _summary('squeeze_unet')
  assert s.params == 2_507_035
  # The layout in circulation: 161.38 M and 5.62 MB (the article reports
  # 191.55 M and 5.66 MB; see docs/architectures.md).
  assert round(s.mult_adds / 1e6, 2) == 161.38
  assert round(s.pass_size_mb, 2) == 5.62


def test_teacher_hourglass_reproduces_the_series():
  s = _summary('fomm_teacher')
  assert s.params == 14_215_368
  params, mult_adds, _ = s.subtotals()['predictor']
  assert params == 14_129_568
  assert round(mult_adds / 1e6, 2) == 989.31
  assert s.subtotals()['head'][0] == 17_160 + 68_640


@pytest.mark.parametrize('name', [n for n in models.MODEL_NAMES if models.spec(n).table3.params])
def test_within_tolerance_of_the_article(name):
  s = _summary(name)
  scope = models.spec(name).table3_scope
  params, mult_adds, _ = s.subtotals()[scope] if scope else (s.params, s.mult_adds, 0)
  paper = models.spec(name).table3
  assert abs(params - paper.params) / paper.params <= 0.10
  assert abs(mult_adds / 1e6 - paper.mult_adds_m) / paper.mult_adds_m <= 0.25


def test_rows_follow_torchinfo_rules():
  rows = {row.path: row for row in _summary('squeeze_unet').rows}
  stem = rows['stem']
  assert stem.output_shape == (1, 32, 32, 64)
  assert stem.params == 3 * 64 * 9 + 64
  assert stem.mult_adds == stem.params * 32 * 32
  assert stem.pass_size_bytes == 32 * 32 * 64 * 4 * 2
  norm = rows['encoder.0.0.squeeze.norm']
  assert norm.params == 2 * 16 and norm.mult_adds == 2 * 16  # running stats do not count
  # A transposed conv counts (weights + biases) x output positions, like a conv.
  up = rows['decoder.2.upsample']
  assert up.kind == 'ConvTranspose' and up.output_shape == (1, 8, 8, 64)
  assert up.mult_adds == (256 * 64 * 9 + 64) * 8 * 8


def test_depthwise_layers_are_counted_like_pytorch_grouped_convs():
  rows = {row.path: row for row in _summary('squeeze_unet_dsc').rows}
  depthwise = rows['stem.depthwise']
  assert depthwise.kind == 'DepthwiseConv'
  assert depthwise.params == 3 * 9 + 3
  assert depthwise.mult_adds == depthwise.params * 32 * 32


def _command(*args):
  return commands.run('-m', 'tools.summary', *args)


def test_per_layer_xla_flops_are_reported_and_labelled(capsys):
  # In-process (the subprocess: the last test); the space form of a flag works too.
  assert commands.in_process('tools.summary', '--model', 'squeeze_encdec') is None
  out = capsys.readouterr().out
  assert 'torchinfo rules' in out and 'cost_analysis' in out
  assert 'Total params:                  756,395' in out
  s = summary.summarize(models.create_model('squeeze_encdec', rngs=nnx.Rngs(0)))
  stem = s.rows[0]
  # XLA counts 2 FLOPs per multiply-add but skips taps that fall on the zero
  # padding, so a padded conv lands a little under 2 x torchinfo's count.
  weights = stem.params - 64
  assert 0.95 * 2 * weights * 32 * 32 <= stem.xla_flops <= 2 * stem.mult_adds
  assert s.xla_flops > sum(r.xla_flops for r in s.rows if r.kind != 'BatchNorm') / 2


def test_comparison_table_lists_every_model(capsys):
  table = summary.format_comparison([_summary(name) for name in models.MODEL_NAMES])
  for name in models.MODEL_NAMES:
    assert f'| {name} |' in table
  assert '| fomm_teacher: predictor only |  | 14,129,568 | 14,129,568 | +0.0% | 989.31 |' in table


@pytest.mark.parametrize(
  'args,message',
  [
    (['--model=nope'], "error: unknown model 'nope'; valid models"),
    (['--model=edgesegnet', '--input_size=50'], 'error: edgesegnet: cannot take a 50x50 input'),
    (['--model=edgesegnet', 'extra'], 'error: unexpected argument(s) extra'),
  ],
)
def test_cli_errors_are_one_clear_line(args, message):
  assert commands.one_line(commands.in_process('tools.summary', *args)).startswith(message)


def test_the_command_fails_with_its_one_line_and_exit_status():
  command = _command('--model=nope')
  assert command.returncode != 0 and 'Traceback' not in command.stderr
  line = command.stderr.strip().splitlines()[-1]
  assert line.startswith("error: unknown model 'nope'; valid models"), command.stderr
