"""Procedural face-like images with 10 landmarks and their local jacobians (NumPy only).

Every facial feature is a unit shape (disc) mapped into the image by an affine
map p = A (c_f + F_f u) + t: A and t are the pose (rotation, anisotropic
scale, shear, translation), c_f and F_f the feature's place and shape in the
canonical face (identity and expression change them). Landmark k sits at a
fixed anchor a_k of its feature. Like FOMM's, a landmark's jacobian is a
dimensionless local linear map from a reference frame to the image: the
reference R_k is the feature's frame in the mean face at the canonical pose
(`REFERENCE_FRAMES`), so

  kp_k = A (c_f + F_f a_k) + t      (normalised [-1, 1] coordinates, x first)
  J_k  = A F_f R_k^-1               (identity for the mean face at the canonical
                                     pose; rotation, scale, shear and expression
                                     move it, entries of order 1)

and a mark drawn at reference offset d of landmark k (local offset
a_k + R_k^-1 d of its feature) appears at kp_k + J_k d: `tests/test_data.py`
renders such marks and finds them there. Coordinates use FOMM's grid: pixel
column j of a W-wide image is at x = 2 j / (W - 1) - 1.

Everything is a pure function of a NumPy random generator, so an example is
reproducible from (seed, split, index) alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np

NUM_KP = 10
LANDMARKS = (
    'left_pupil', 'right_pupil', 'left_brow', 'right_brow', 'nose_tip',
    'left_mouth_corner', 'right_mouth_corner', 'upper_lip', 'lower_lip', 'chin',
)  # fmt: skip
# A horizontal flip swaps left and right: new landmark i is old landmark FLIP[i].
FLIP_PERMUTATION = (1, 0, 3, 2, 4, 6, 5, 7, 8, 9)
# (feature, anchor in the feature's unit frame) of each landmark.
_ANCHORS = (
    ('iris_l', (0.0, 0.0)), ('iris_r', (0.0, 0.0)), ('brow_l', (0.0, 0.0)),
    ('brow_r', (0.0, 0.0)), ('nose', (0.0, 0.8)), ('mouth', (-1.0, 0.0)),
    ('mouth', (1.0, 0.0)), ('mouth', (0.0, -1.0)), ('mouth', (0.0, 1.0)), ('face', (0.0, 1.0)),
)  # fmt: skip


def _rotation(angle: float) -> np.ndarray:
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, -s], [s, c]])


# Face proportions (identity) and expression, in canonical-face units; drawn
# uniformly between the bounds. The mean face takes every midpoint.
_IDENTITY = {
    'face_w': (0.9, 1.1), 'face_h': (1.15, 1.35), 'eye_x': (0.32, 0.44), 'eye_y': (-0.32, -0.2),
    'eye_w': (0.16, 0.22), 'eye_h': (0.1, 0.13), 'iris_r': (0.07, 0.09), 'brow_w': (0.18, 0.26),
    'brow_h': (0.035, 0.06), 'nose_y': (0.05, 0.15), 'nose_w': (0.08, 0.12),
    'nose_h': (0.12, 0.18), 'mouth_y': (0.5, 0.62), 'mouth_w': (0.28, 0.38),
}  # fmt: skip
_EXPRESSION = {
    'open_l': (0.35, 1.0), 'open_r': (0.35, 1.0), 'gaze_x': (-1.0, 1.0), 'gaze_y': (-1.0, 1.0),
    'raise': (-0.03, 0.12), 'smile': (0.0, 1.0), 'mouth_open': (0.0, 1.0),
    'tilt': (-0.15, 0.15), 'brow_tilt': (-0.25, 0.25),
}  # fmt: skip
_SCALE = (0.42, 0.62)  # the pose's overall scale; the canonical pose is its midpoint
EXPRESSION_RANGES = _EXPRESSION  # public, for `data.face_clips`, which animates them


def _features(shape: dict[str, float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Each feature's centre c_f and frame F_f in the canonical face."""
  s = shape
  gaze = np.array([s['gaze_x'], s['gaze_y']])
  features = {'face': (np.zeros(2), np.diag([s['face_w'], s['face_h']]))}
  features['hair'] = (np.array([0.0, -0.35]), np.diag([s['face_w'] * 1.08, s['face_h'] * 0.85]))
  for side, sign in (('l', -1.0), ('r', 1.0)):
    opening = s[f'open_{side}']
    eye_c = np.array([sign * s['eye_x'], s['eye_y']])
    eye_f = _rotation(-sign * s['tilt']) @ np.diag([s['eye_w'], s['eye_h'] * opening])
    features[f'eye_{side}'] = (eye_c, eye_f)
    iris_c = eye_c + gaze * np.array([s['eye_w'] * 0.45, s['eye_h'] * opening * 0.3])
    features[f'iris_{side}'] = (iris_c, s['iris_r'] * np.eye(2))
    features[f'pupil_{side}'] = (iris_c, 0.45 * s['iris_r'] * np.eye(2))
    brow_c = np.array([sign * s['eye_x'], s['eye_y'] - 0.2 - s['raise']])
    brow_f = _rotation(sign * s['brow_tilt']) @ np.diag([s['brow_w'], s['brow_h']])
    features[f'brow_{side}'] = (brow_c, brow_f)
  features['nose'] = (np.array([0.0, s['nose_y']]), np.diag([s['nose_w'], s['nose_h']]))
  mouth_f = np.diag([s['mouth_w'] * (1 + 0.25 * s['smile']), 0.04 + 0.12 * s['mouth_open']])
  features['mouth'] = (np.array([0.0, s['mouth_y'] - 0.04 * s['smile']]), mouth_f)
  inner = mouth_f @ np.diag([0.85, 0.6 * s['mouth_open']])
  features['mouth_inner'] = (features['mouth'][0], inner)
  return features


def _reference_frames() -> np.ndarray:
  """(10, 2, 2): each landmark's feature frame in the mean face at the canonical pose."""
  mean = {name: sum(bounds) / 2 for name, bounds in {**_IDENTITY, **_EXPRESSION}.items()}
  features, scale = _features(mean), sum(_SCALE) / 2
  return np.stack([scale * features[feature][1] for feature, _ in _ANCHORS])


# A landmark's jacobian maps offsets in this frame (normalised image units around
# the landmark of the mean face at the canonical pose) to offsets in the image.
REFERENCE_FRAMES = _reference_frames()


@dataclasses.dataclass(frozen=True)
class Face:
  """One face: pose, feature frames and colours, plus what is drawn around it."""

  A: np.ndarray  # (2, 2) canonical -> normalised image
  t: np.ndarray  # (2,)
  features: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (centre c_f, frame F_f)
  shape: dict[str, float]  # identity and expression the features were built from
  colours: dict[str, np.ndarray]
  background: tuple[np.ndarray, np.ndarray, np.ndarray]  # two colours and a direction
  clutter: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, bool], ...]  # centre, M, colour, box
  occluder: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # centre, M, colour
  hair: bool
  light: tuple[float, float]  # strength, angle
  contrast: float
  brightness: float
  blur: float  # Gaussian sigma in pixels of a 64-pixel image
  noise: float
  pose: np.ndarray  # rotation, scale, aspect, shear, tx, ty (stored with examples)
  expression: np.ndarray  # eye opening l/r, gaze x/y, brow raise, smile, mouth opening


# The ranges `sample_face` draws the pose from (rotation, overall scale, anisotropic
# scale, shear, translation x and y); `data.face_clips` moves within them.
POSE_RANGES = {
    'angle': (-0.5, 0.5), 'scale': _SCALE, 'aspect': (-0.15, 0.15), 'shear': (-0.2, 0.2),
    'tx': (-0.28, 0.28), 'ty': (-0.28, 0.28),
}  # fmt: skip


def pose_map(angle: float, scale: float, aspect: float, shear: float) -> np.ndarray:
  """The pose's linear part A (canonical face -> normalised image)."""
  shear_map = np.array([[1, shear], [0, 1]])
  return scale * _rotation(angle) @ shear_map @ np.diag([1 + aspect, 1 - aspect])


def _expression_vector(shape: dict[str, float]) -> np.ndarray:
  return np.array([shape[name] for name in _EXPRESSION if 'tilt' not in name], np.float32)


def posed(face: Face, shape: dict[str, float], pose: np.ndarray) -> Face:
  """`face` (colours and scene kept) with identity and expression `shape` at `pose`.

  Args:
    face: from `sample_face`.
    shape: every key of `_IDENTITY` and `_EXPRESSION`.
    pose: rotation, scale, aspect, shear, tx, ty (as `Face.pose`).
  """
  angle, scale, aspect, shear, tx, ty = (float(v) for v in pose)
  return dataclasses.replace(
    face,
    A=pose_map(angle, scale, aspect, shear),
    t=np.array([tx, ty]),
    features=_features(shape),
    shape=dict(shape),
    pose=np.array([angle, scale, aspect, shear, tx, ty], np.float32),
    expression=_expression_vector(shape),
  )


def sample_face(rng: np.random.Generator, *, occlusion_rate: float = 0.1) -> Face:
  """Draws identity, expression, pose, scene and photometric nuisances."""
  u = rng.uniform
  # Identity: proportions and colours.
  shape = {name: u(*bounds) for name, bounds in _IDENTITY.items()}
  skin = np.array([u(0.45, 0.95), u(0.3, 0.8), u(0.2, 0.7)])
  skin[1] = min(skin[1], skin[0])
  skin[2] = min(skin[2], skin[1])
  colours = {
    'skin': skin,
    'nose': skin * u(0.75, 0.9),
    'hair': rng.uniform(0.0, 0.5, 3),
    'brow': rng.uniform(0.0, 0.35, 3),
    'sclera': np.full(3, u(0.85, 1.0)),
    'iris': rng.uniform(0.1, 0.7, 3),
    'pupil': np.full(3, u(0.0, 0.1)),
    'lips': np.array([u(0.5, 0.9), u(0.1, 0.4), u(0.15, 0.45)]),
    'mouth': np.array([u(0.1, 0.3), u(0.0, 0.1), u(0.0, 0.1)]),
  }
  # Expression: each moves the landmarks its feature carries.
  shape.update({name: u(*bounds) for name, bounds in _EXPRESSION.items()})
  features = _features(shape)

  # Pose: canonical face -> normalised image coordinates.
  angle, scale = u(*POSE_RANGES['angle']), u(*POSE_RANGES['scale'])
  aspect, shear = u(*POSE_RANGES['aspect']), u(*POSE_RANGES['shear'])
  A = pose_map(angle, scale, aspect, shear)
  t = rng.uniform(*POSE_RANGES['tx'], 2)

  clutter = []
  for _ in range(rng.integers(2, 7)):
    size = rng.uniform(0.1, 0.6, 2)
    clutter.append(
        (rng.uniform(-1, 1, 2), _rotation(u(0, np.pi)) @ np.diag(size), rng.uniform(0, 1, 3),
         bool(rng.integers(2)))
    )  # fmt: skip
  occluder = None
  if u() < occlusion_rate:
    centre = rng.uniform(-0.15, 0.15, 2)
    radius = u(0.12, 0.25)
    # Placed near a landmark, filled below once the landmarks are known.
    occluder = (centre, radius * _rotation(u(0, np.pi)) @ np.diag([1, u(0.5, 1)]),
                rng.uniform(0, 1, 3))  # fmt: skip
  face = Face(
      A=A, t=t, features=features, shape=shape, colours=colours,
      background=(rng.uniform(0, 1, 3), rng.uniform(0, 1, 3), rng.uniform(-1, 1, 2)),
      clutter=tuple(clutter), occluder=occluder, hair=bool(u() < 0.7),
      light=(u(0, 0.35), u(0, 2 * np.pi)), contrast=u(0.75, 1.15), brightness=u(-0.1, 0.1),
      blur=u(0, 0.9), noise=u(0, 0.03),
      pose=np.array([angle, scale, aspect, shear, *t], np.float32),
      expression=_expression_vector(shape),
  )  # fmt: skip
  if occluder is not None:  # move the occluder next to a random landmark
    kp, _ = landmarks(face)
    target = kp[rng.integers(NUM_KP)]
    face = dataclasses.replace(face, occluder=(target + occluder[0], occluder[1], occluder[2]))
  return face


def landmarks(face: Face) -> tuple[np.ndarray, np.ndarray]:
  """(10, 2) landmarks and (10, 2, 2) jacobians in normalised coordinates."""
  kp = np.zeros((NUM_KP, 2))
  jacobian = np.zeros((NUM_KP, 2, 2))
  for k, (feature, anchor) in enumerate(_ANCHORS):
    centre, frame = face.features[feature]
    kp[k] = face.A @ (centre + frame @ np.asarray(anchor)) + face.t
    jacobian[k] = face.A @ frame @ np.linalg.inv(REFERENCE_FRAMES[k])
  return kp.astype(np.float32), jacobian.astype(np.float32)


def visibility(face: Face, kp: np.ndarray) -> np.ndarray:
  """True where a landmark is inside the image and not under the occluder."""
  visible = np.all(np.abs(kp) <= 1.0, axis=1)
  if face.occluder is not None:
    centre, frame, _ = face.occluder
    local = np.linalg.solve(frame, (kp - centre).T).T
    visible &= np.linalg.norm(local, axis=1) > 1.0
  return visible


def _grid(size: int) -> np.ndarray:
  xs = 2.0 * np.arange(size) / (size - 1) - 1.0
  return np.stack(np.meshgrid(xs, xs, indexing='xy'), axis=-1)  # (H, W, 2), x first


def _disc_alpha(grid: np.ndarray, centre: np.ndarray, M: np.ndarray, pixel: float,
                box: bool = False) -> tuple[np.ndarray, tuple[slice, slice]]:  # fmt: skip
  """Anti-aliased coverage of the image of the unit disc (or square) under p = M u + centre.

  Returns the coverage inside the shape's pixel bounding box and that box,
  so that small features cost a few pixels, not the whole image.
  """
  stretch = np.linalg.svd(M, compute_uv=False).min()
  size = grid.shape[0]
  if stretch < 0.05 * pixel:  # a degenerate (closed) shape covers nothing
    return np.zeros((0, 0, 1)), (slice(0, 0), slice(0, 0))
  extent = np.abs(M).sum(axis=1) + 2 * pixel  # covers the unit square's image too
  lo = np.clip(np.floor((centre - extent + 1) / pixel), 0, size).astype(int)
  hi = np.clip(np.ceil((centre + extent + 1) / pixel) + 1, 0, size).astype(int)
  window = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))  # rows follow y, columns x
  local = (grid[window] - centre) @ np.linalg.inv(M).T
  radius = np.abs(local).max(axis=-1) if box else np.linalg.norm(local, axis=-1)
  # Distance to the edge in pixels, through the map's smaller stretch.
  return np.clip(0.5 - (radius - 1.0) * stretch / pixel, 0.0, 1.0)[..., None], window


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
  if sigma < 0.25:
    return image
  half = int(np.ceil(3 * sigma))
  taps = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
  taps /= taps.sum()
  padded = np.pad(image, ((half, half), (half, half), (0, 0)), mode='edge')
  rows = sum(w * padded[i : i + image.shape[0]] for i, w in enumerate(taps))
  return sum(w * rows[:, i : i + image.shape[1]] for i, w in enumerate(taps))


def render(
  face: Face,
  size: int,
  rng: np.random.Generator,
  *,
  marks: tuple[tuple[str, tuple[float, float]], ...] = (),
) -> np.ndarray:
  """Draws `face` as a (size, size, 3) uint8 image.

  Args:
    face: from `sample_face`.
    size: image height and width.
    rng: source of the pixel noise.
    marks: (feature, local offset) pairs drawn as small pure-red dots on top,
      without blur or noise (for tests that locate features).
  """
  grid = _grid(size)
  pixel = 2.0 / (size - 1)
  colour_a, colour_b, direction = face.background
  ramp = np.clip(0.5 + 0.5 * grid @ direction, 0, 1)[..., None]
  image = colour_a * (1 - ramp) + colour_b * ramp

  def draw(centre, M, colour, box=False, mask=None):
    alpha, window = _disc_alpha(grid, centre, M, pixel, box)
    if mask is not None:
      alpha = alpha * mask[window]
    image[window] = image[window] * (1 - alpha) + alpha * colour
    coverage = np.zeros((size, size, 1))
    coverage[window] = alpha
    return coverage

  for centre, M, colour, box in face.clutter:
    draw(centre, M, colour, box)

  def feature(name, colour, mask=None):
    centre, frame = face.features[name]
    return draw(face.A @ centre + face.t, face.A @ frame, colour, mask=mask)

  if face.hair:
    feature('hair', face.colours['hair'])
  feature('face', face.colours['skin'])
  for side in ('l', 'r'):
    eye = feature(f'eye_{side}', face.colours['sclera'])
    feature(f'iris_{side}', face.colours['iris'], mask=eye)
    feature(f'pupil_{side}', face.colours['pupil'], mask=eye)
    feature(f'brow_{side}', face.colours['brow'])
  feature('nose', face.colours['nose'])
  feature('mouth', face.colours['lips'])
  feature('mouth_inner', face.colours['mouth'])
  if face.occluder is not None:
    draw(*face.occluder)

  strength, angle = face.light
  shade = 1.0 + strength * (grid @ np.array([np.cos(angle), np.sin(angle)]))[..., None]
  image = (image * shade - 0.5) * face.contrast + 0.5 + face.brightness
  image = _blur(image, face.blur * size / 64)
  image = image + rng.normal(0, face.noise, image.shape)
  for name, offset in marks:
    centre, frame = face.features[name]
    position = face.A @ (centre + frame @ np.asarray(offset)) + face.t
    draw(position, 2.5 * pixel * np.eye(2), np.array([1.0, 0.0, 0.0]))
  return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def make_example(seed: int, split: int, index: int, size: int) -> dict[str, np.ndarray]:
  """The example (seed, split, index): image, landmarks, jacobians and generation parameters."""
  rng = np.random.default_rng([seed, split, index])
  face = sample_face(rng)
  kp, jacobian = landmarks(face)
  return {
    'image': render(face, size, rng),
    'kp': kp,
    'jacobian': jacobian,
    'visible': visibility(face, kp),
    'pose': face.pose,
    'expression': face.expression,
  }
