"""FOMM's training losses against FOMM's own formulas (the PyTorch twin), and their zeros."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
from flax import nnx
from narrow import NARROW, NARROW_GENERATOR

import models
from configs import fomm as fomm_config
from torch_twins import create_twin, porting
from torch_twins import fomm_losses as twin_losses
from train import fomm_losses as fl
from train import fomm_step

torch.set_num_threads(1)
TRANSFORM = {'sigma_affine': 0.05, 'sigma_tps': 0.005, 'points_tps': 5}


def _nchw(x):
  return torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))


def _transforms(seed=0, batch=3, sigma_affine=0.2, sigma_tps=0.05):
  """The same draw on both sides (larger than FOMM's sigmas, so that the TPS part tells)."""
  ours = fl.Transform.random(
    jax.random.key(seed), batch, sigma_affine=sigma_affine, sigma_tps=sigma_tps, points_tps=5
  )
  theirs = twin_losses.Transform(
    torch.from_numpy(np.asarray(ours.theta)), torch.from_numpy(np.asarray(ours.control_params)), 5
  )
  return ours, theirs


def test_transform_warps_and_jacobians_match_fomms():
  ours, theirs = _transforms()
  points = np.random.default_rng(0).uniform(-1, 1, (3, 7, 2)).astype(np.float32)
  torch_points = torch.from_numpy(points).requires_grad_()
  np.testing.assert_allclose(
    ours.warp_coordinates(jnp.asarray(points)),
    theirs.warp_coordinates(torch_points).detach().numpy(),
    atol=1e-6,
  )
  np.testing.assert_allclose(
    ours.jacobian(jnp.asarray(points)), theirs.jacobian(torch_points).detach().numpy(), atol=1e-5
  )


def test_transformed_frame_matches_fomms_reflection_padded_warp():
  ours, theirs = _transforms(sigma_affine=0.3)  # far enough that reflection is used
  frames = np.random.default_rng(1).uniform(0, 1, (3, 16, 20, 3)).astype(np.float32)
  np.testing.assert_allclose(
    ours.transform_frame(jnp.asarray(frames)),
    theirs.transform_frame(_nchw(frames)).numpy().transpose(0, 2, 3, 1),
    atol=1e-5,
  )


def _keypoints(rng, batch=3, count=5):
  return {
    'kp': jnp.asarray(rng.uniform(-0.8, 0.8, (batch, count, 2)), jnp.float32),
    'jacobian': jnp.asarray(np.eye(2) + rng.normal(0, 0.3, (batch, count, 2, 2)), jnp.float32),
  }


def test_equivariance_is_zero_when_keypoints_move_with_a_known_transform():
  """kp = T(kp'), J = dT(kp') J': the detector followed the warp exactly."""
  transform, _ = _transforms()
  transformed = _keypoints(np.random.default_rng(2))
  driving = {
    'kp': transform.warp_coordinates(transformed['kp']),
    'jacobian': transform.jacobian(transformed['kp']) @ transformed['jacobian'],
  }
  assert float(fl.equivariance_value(driving, transformed, transform)) < 1e-7
  assert float(fl.equivariance_jacobian(driving, transformed, transform)) < 1e-5
  # ... and not zero when the keypoints do not follow it.
  assert float(fl.equivariance_value(transformed, transformed, transform)) > 1e-2


def test_equivariance_terms_match_fomms_on_fixed_inputs():
  ours, theirs = _transforms()
  rng = np.random.default_rng(3)
  driving, transformed = _keypoints(rng), _keypoints(rng)

  def torch_kp(kp):
    return {k: torch.from_numpy(np.asarray(v)) for k, v in kp.items()}

  moved = torch_kp(transformed)
  moved['kp'].requires_grad_()
  for ours_fn, theirs_fn in (
    (fl.equivariance_value, twin_losses.equivariance_value),
    (fl.equivariance_jacobian, twin_losses.equivariance_jacobian),
  ):
    np.testing.assert_allclose(
      ours_fn(driving, transformed, ours),
      theirs_fn(torch_kp(driving), moved, theirs).detach().numpy(),
      rtol=1e-5,
    )


def test_pyramid_has_fomms_scales_and_values():
  frames = np.random.default_rng(4).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
  scales = (1.0, 0.5, 0.25, 0.125)
  ours = fl.image_pyramid(jnp.asarray(frames), scales)
  theirs = twin_losses.ImagePyramid(scales)(_nchw(frames))
  assert [level.shape[1] for level in ours] == [64, 32, 16, 8]
  for a, b in zip(ours, theirs, strict=True):
    np.testing.assert_allclose(a, b.numpy().transpose(0, 2, 3, 1), atol=1e-5)
  assert float(fl.pyramid_l1(ours, ours)) == 0.0
  assert float(fl.pyramid_ssim(ours, ours)) < 1e-6


def test_ssim_is_one_for_equal_images_falls_with_noise_and_matches_the_twin():
  rng = np.random.default_rng(5)
  image = jnp.asarray(rng.uniform(0, 1, (1, 16, 16, 3)), jnp.float32)
  noisy = [image + s * jnp.asarray(rng.normal(size=image.shape), jnp.float32) for s in (0.05, 0.2)]
  assert float(fl.ssim(image, image)) == pytest.approx(1.0, abs=1e-6)
  assert 1.0 > float(fl.ssim(image, noisy[0])) > float(fl.ssim(image, noisy[1]))
  theirs = twin_losses.ssim(_nchw(image), _nchw(noisy[0]))
  np.testing.assert_allclose(fl.ssim(image, noisy[0]), theirs.numpy(), rtol=1e-5)


@pytest.mark.parametrize('pixel', ['ssim', 'l1'])
def test_the_training_loss_matches_fomms_generator_full_model(pixel):
  """The whole forward pass of a training step (train-mode BatchNorm) on ported weights."""
  config = fomm_config.get_config()
  config.loss.pixel = pixel
  detector_options = {**NARROW['fomm_teacher'], 'scale_factor': 1.0, 'num_kp': 5}
  generator_options = {
    **NARROW_GENERATOR,
    'num_kp': 5,
    'dense_motion_scale_factor': 0.5,
    'dense_motion_num_blocks': 2,
  }
  rngs = nnx.Rngs(0)
  pair = fomm_step.FommPair(
    models.create_model('fomm_teacher', detector_options, rngs=rngs),
    models.create_model('fomm_generator', generator_options, rngs=rngs),
  )
  twins = [
    create_twin('fomm_teacher', detector_options).train(),
    create_twin('fomm_generator', generator_options).train(),
  ]
  porting.load_into_twin(pair.kp_detector, 'fomm_teacher', twins[0])
  porting.load_into_twin(pair.generator, 'fomm_generator', twins[1])
  pair.train()
  rng = np.random.default_rng(6)
  source, driving = (rng.uniform(0, 1, (2, 16, 16, 3)).astype(np.float32) for _ in range(2))
  key = jax.random.key(7)
  loss = ml_collections.ConfigDict(config.loss.to_dict())
  graph, state = nnx.split(pair)
  terms = jax.jit(
    lambda state, batch: fomm_step.loss_terms(
      nnx.merge(graph, state), batch, key, loss, TRANSFORM, None
    )[0]
  )(state, {'source': source, 'driving': driving})
  draw = fl.Transform.random(key, 2, **TRANSFORM)
  full = twin_losses.GeneratorFullModel(*twins, loss, ml_collections.ConfigDict(TRANSFORM))
  theirs = full(
    _nchw(source),
    _nchw(driving),
    torch.from_numpy(np.asarray(draw.theta)),
    torch.from_numpy(np.asarray(draw.control_params)),
  )
  assert set(terms) == set(theirs)
  for name, value in theirs.items():
    np.testing.assert_allclose(terms[name], value.detach().numpy(), rtol=2e-4, err_msg=name)
