"""The ops FOMM's generator adds agree with PyTorch's: grid_sample, bilinear resize, Gaussians."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import ops

torch.set_num_threads(1)


def _nchw(x):
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@pytest.mark.parametrize('padding_mode', ['zeros', 'reflection'])
@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize(
  'shape, grid_size', [((2, 7, 5, 3), (4, 6)), ((1, 16, 16, 8), (16, 16)), ((3, 5, 9, 1), (9, 4))]
)
def test_grid_sample_matches_torch_inside_and_outside(
  shape, grid_size, align_corners, padding_mode
):
  rng = np.random.default_rng(sum(shape))
  x = rng.normal(size=shape).astype(np.float32)
  # Up to 1.5 either way: a third of the samples fall (partly) outside the image; reflection
  # also folds from as far as 3.5 (more than one image width out: several reflections).
  reach = 3.5 if padding_mode == 'reflection' else 1.5
  grid = rng.uniform(-reach, reach, (shape[0], *grid_size, 2)).astype(np.float32)
  # Exact pixel centres and edges too, where floor() and the border tests flip.
  grid[0, 0, : min(grid_size[1], 5), 0] = [-1.0, 1.0, 0.0, -1.0 - 1.0 / shape[2], 1.0][
    : min(grid_size[1], 5)
  ]
  ours = ops.grid_sample(
    jnp.asarray(x), jnp.asarray(grid), align_corners=align_corners, padding_mode=padding_mode
  )
  theirs = F.grid_sample(
    _nchw(x), torch.from_numpy(grid), mode='bilinear', padding_mode=padding_mode,
    align_corners=align_corners,
  )  # fmt: skip
  np.testing.assert_allclose(ours, theirs.numpy().transpose(0, 2, 3, 1), atol=1e-5, rtol=0)


@pytest.mark.parametrize('padding_mode', ['zeros', 'reflection'])
def test_grid_sample_gradients_match_torch(padding_mode):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 6, 8, 3)).astype(np.float32)
  grid = rng.uniform(-1.2, 1.2, (2, 5, 4, 2)).astype(np.float32)
  weights = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)

  def loss(x, grid):
    return (ops.grid_sample(x, grid, padding_mode=padding_mode) * weights).sum()

  dx, dgrid = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(grid))
  tx, tgrid = _nchw(x).requires_grad_(), torch.from_numpy(grid).requires_grad_()
  out = F.grid_sample(tx, tgrid, align_corners=False, padding_mode=padding_mode)
  (out * _nchw(weights)).sum().backward()
  np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), atol=1e-5)
  np.testing.assert_allclose(dgrid, tgrid.grad.numpy(), atol=1e-4)


@pytest.mark.parametrize('size', [(20, 9), (3, 2), (5, 7), (64, 48)])
def test_resize_bilinear_matches_torch_up_and_down(size):
  x = np.random.default_rng(1).normal(size=(2, 5, 7, 3)).astype(np.float32)
  ours = ops.resize_bilinear(jnp.asarray(x), *size)
  theirs = F.interpolate(_nchw(x), size=size, mode='bilinear', align_corners=False)
  # torch rounds the source position in float32.
  np.testing.assert_allclose(ours, theirs.numpy().transpose(0, 2, 3, 1), atol=1e-5)


def test_kp_to_gaussian_is_fomms_formula():
  kp = np.random.default_rng(2).uniform(-1, 1, (2, 3, 2)).astype(np.float32)
  ours = np.asarray(ops.kp_to_gaussian(jnp.asarray(kp), 6, 5, 0.01))
  ys, xs = np.linspace(-1, 1, 6), np.linspace(-1, 1, 5)
  for b, k, i, j in [(0, 0, 0, 0), (1, 2, 5, 4), (0, 1, 3, 2)]:
    squared = (xs[j] - kp[b, k, 0]) ** 2 + (ys[i] - kp[b, k, 1]) ** 2
    np.testing.assert_allclose(
      ours[b, i, j, k], np.exp(-0.5 * squared / 0.01), rtol=1e-4, atol=1e-7
    )
