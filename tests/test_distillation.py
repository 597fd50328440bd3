"""Distillation works: a short run moves a student's val distance to its teacher well down.

Measured (2026-11-28, smoke teacher and data, EdgeSegNet, 30 steps of 4 images):
val distance 0.295 at initialisation, 0.213 (L1), 0.213 (L2), 0.218 (L3) after;
ratios 0.72-0.74. The threshold, 0.85, leaves room for other machines' float
differences and fails if the loss stops reaching the student (ratio ~1). The
heatmap term (post-softmax maps, values ~1/3000) is tiny at weight 1, so the
three losses move the student alike here; the test also checks that each run
optimised exactly its loss's terms.
"""

import json

import pytest
from smoke import smoke_config

from train import evaluate, loop, study
from train.experiment import Experiment


# L3 has every loss term (keypoints, jacobians, heatmaps, attention): the fast tier's.
@pytest.mark.parametrize(
  'loss',
  [pytest.param('L1', marks=pytest.mark.slow), pytest.param('L2', marks=pytest.mark.slow), 'L3'],
)
def test_a_short_run_moves_the_student_toward_its_teacher(shared, tmp_path, loss):
  config = smoke_config('edgeseg', shared, num_steps=30, eval_every=30, checkpoint_every=30)
  config.loss.update(study.LOSSES[loss])
  experiment = Experiment(config)
  start = experiment.initial_state()
  before, _ = evaluate.evaluate(experiment, start.params, start.batch_stats)
  after = loop.train_and_evaluate(config, str(tmp_path / loss))
  assert after['val_distance'] < 0.85 * before['distance'], (before, after)
  # The loss the run optimised has exactly the loss's terms (L2's heatmap term, L3's
  # attention term too), each finite and positive.
  lines = (tmp_path / loss / 'metrics.jsonl').read_text().splitlines()
  logged = [json.loads(line) for line in lines][-1]
  terms = {k[len('loss_') :] for k, v in logged.items() if k.startswith('loss_')}
  assert terms == {k for k, w in study.LOSSES[loss].items() if w > 0}
  assert all(0 < logged[f'loss_{t}'] < float('inf') for t in terms)
