"""The unsupervised-landmark protocol on cases with known answers."""

import numpy as np
import pytest

from train import landmark_regression as lr


def test_a_linear_map_of_the_landmarks_is_recovered_exactly():
  rng = np.random.default_rng(0)
  landmarks = rng.uniform(-0.8, 0.8, (300, 10, 2))
  # Keypoints: an invertible affine mix of the landmarks' coordinates (what a detector
  # that learnt the geometry, in its own order and frame, would give).
  mix = rng.normal(size=(20, 20)) + 3 * np.eye(20)
  keypoints = (landmarks.reshape(300, -1) @ mix + 0.1).reshape(300, 10, 2)
  errors = lr.regression_errors(keypoints[:200], landmarks[:200], keypoints[200:], landmarks[200:])
  assert errors['error'] < 1e-4 and errors['train_error'] < 1e-4


def test_keypoints_without_the_geometry_leave_the_error_of_predicting_the_mean():
  rng = np.random.default_rng(1)
  landmarks = rng.uniform(-0.8, 0.8, (4000, 10, 2))
  noise = rng.normal(size=(4000, 10, 2))  # unrelated to the landmarks
  errors = lr.regression_errors(noise[:3000], landmarks[:3000], noise[3000:], landmarks[3000:])
  # The mean of uniform(-0.8, 0.8)^2 points predicts them with E|d| = 0.8 * 0.7652 (the
  # mean distance from the centre of a square of half-side 1 is (sqrt2 + asinh 1) / 3).
  expected = 0.8 * (np.sqrt(2) + np.arcsinh(1)) / 3
  assert errors['error'] == pytest.approx(expected, rel=0.03)


def test_the_interocular_error_divides_by_each_frames_eye_distance():
  landmarks = np.zeros((2, 10, 2))
  landmarks[:, 1, 0] = [0.5, 0.25]  # eye distances 0.5 and 0.25
  predicted = landmarks + np.array([0.05, 0.0])  # every landmark 0.05 off
  errors = lr.landmark_errors(predicted, landmarks)
  assert errors['error'] == pytest.approx(0.05)
  assert errors['error_interocular'] == pytest.approx((0.1 + 0.2) / 2)


def test_too_few_frames_to_fit_is_one_line():
  with pytest.raises(ValueError, match='at least 21 training frames'):
    lr.LandmarkRegressor.fit(np.zeros((5, 10, 2)), np.zeros((5, 10, 2)))
