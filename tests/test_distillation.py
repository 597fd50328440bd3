"""Distillation works: a short run moves a student's val distance to its teacher well down.

Measured (2026-12-07, the session's smoke teacher and data, EdgeSegNet, 15 steps
of 4 images, the fast tier's compile options): val distance 0.178 at
initialisation, 0.093 (L1), 0.093 (L2), 0.094 (L3) after; ratios 0.52-0.53
(after 30 steps, which this test ran before: 0.37; on 2026-11-28, with that
day's smoke teacher, 30 steps gave 0.72-0.74). The threshold, 0.85, leaves room
for other machines' float differences and fails if the loss stops reaching the
student (ratio ~1). The heatmap term (post-softmax maps, values ~1/3000) is tiny
at weight 1, so the three losses move the student alike here; the test also
checks that each run optimised exactly its loss's terms.
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
  config = smoke_config('edgeseg', shared, num_steps=15, eval_every=15, checkpoint_every=15)
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
