"""The unsupervised-landmark protocol: how well learnt keypoints predict the true landmarks.

As in the unsupervised landmark papers (Thewlis et al. 2017, Zhang et al.
2018, Jakab et al. 2018), a linear regressor from the K learnt keypoints
(2K numbers and a bias) to the L true landmarks is fitted by least squares
on training frames; its error on held-out frames says how much of the face's
geometry the keypoints carry. Errors are mean Euclidean distances per
landmark, in FOMM's normalised [-1, 1] coordinates and as a fraction of the
inter-ocular distance (the pupils, landmarks 0 and 1 of synthetic faces).
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Tikhonov weight on the (non-bias) coefficients, relative to the features' scale:
# keeps the fit defined when keypoints collapse onto each other (a random detector).
RIDGE = 1e-6


@dataclasses.dataclass(frozen=True)
class LandmarkRegressor:
  """weights (2K + 1, 2L): [flattened keypoints, 1] -> flattened landmarks."""

  weights: np.ndarray

  @classmethod
  def fit(cls, keypoints: np.ndarray, landmarks: np.ndarray) -> LandmarkRegressor:
    """Least squares from (N, K, 2) keypoints to (N, L, 2) landmarks (N frames)."""
    features = _features(keypoints)
    if features.shape[0] < features.shape[1]:
      raise ValueError(
        f'the landmark regression needs at least {features.shape[1]} training frames for '
        f'{keypoints.shape[1]} keypoints, got {features.shape[0]}.'
      )
    targets = landmarks.reshape(len(landmarks), -1).astype(np.float64)
    penalty = RIDGE * len(features) * np.eye(features.shape[1])
    penalty[-1, -1] = 0.0  # the bias is free
    weights = np.linalg.solve(features.T @ features + penalty, features.T @ targets)
    return cls(weights)

  def predict(self, keypoints: np.ndarray) -> np.ndarray:
    """(N, K, 2) keypoints -> (N, L, 2) predicted landmarks."""
    return (_features(keypoints) @ self.weights).reshape(len(keypoints), -1, 2)


def _features(keypoints: np.ndarray) -> np.ndarray:
  flat = keypoints.reshape(len(keypoints), -1).astype(np.float64)
  return np.concatenate([flat, np.ones((len(flat), 1))], axis=1)


def landmark_errors(
  predicted: np.ndarray, landmarks: np.ndarray, *, eyes: tuple[int, int] = (0, 1)
) -> dict[str, float]:
  """Mean per-landmark distance, raw and over the inter-ocular distance of each frame."""
  distance = np.linalg.norm(predicted - landmarks, axis=-1)  # (N, L)
  interocular = np.linalg.norm(landmarks[:, eyes[0]] - landmarks[:, eyes[1]], axis=-1)
  return {
    'error': float(distance.mean()),
    'error_interocular': float((distance.mean(-1) / interocular).mean()),
  }


def regression_errors(
  train_keypoints: np.ndarray,
  train_landmarks: np.ndarray,
  test_keypoints: np.ndarray,
  test_landmarks: np.ndarray,
) -> dict[str, float]:
  """Fits on the training frames, reports the held-out errors (and the fit's own, `train_`)."""
  regressor = LandmarkRegressor.fit(train_keypoints, train_landmarks)
  held_out = landmark_errors(regressor.predict(test_keypoints), test_landmarks)
  fitted = landmark_errors(regressor.predict(train_keypoints), train_landmarks)
  return {**held_out, **{f'train_{k}': v for k, v in fitted.items()}}
