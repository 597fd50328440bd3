"""Loss terms and metrics of the series, as pure functions of model outputs.

Each model output is a dict with `kp` (B, K, 2), `jacobian` (B, K, 2, 2),
`heatmap` (B, K, h, w, post-softmax) and `encoder_features` (B, h', w', C').
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

TERMS = ('kp', 'jacobian', 'heatmap', 'attention')


def mse(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.mean(jnp.square(a - b))


def resample_heatmap(heatmap: jax.Array, height: int, width: int) -> jax.Array:
  """Bilinearly resamples (B, K, h, w) heatmaps onto an (height, width) grid, renormalised."""
  if heatmap.shape[2:] == (height, width):
    return heatmap
  batch, num_kp = heatmap.shape[:2]
  resized = jax.image.resize(heatmap, (batch, num_kp, height, width), 'bilinear')
  return resized / jnp.sum(resized, axis=(2, 3), keepdims=True)


def heatmap_mse(student: jax.Array, teacher: jax.Array) -> jax.Array:
  """MSE of post-softmax heatmaps, the student's brought onto the teacher's grid."""
  return mse(resample_heatmap(student, *teacher.shape[2:]), teacher)


def attention_map(features: jax.Array, p: float = 2.0) -> jax.Array:
  """Zagoruyko & Komodakis' spatial attention: sum over channels of |F_c|^p, (B, h, w)."""
  return jnp.sum(jnp.abs(features) ** p, axis=-1)


def _pool_to(attention: jax.Array, height: int, width: int) -> jax.Array:
  batch, h, w = attention.shape
  if (h, w) == (height, width):
    return attention
  if h % height == 0 and w % width == 0:  # average-pool the larger map
    return attention.reshape(batch, height, h // height, width, w // width).mean(axis=(2, 4))
  return jax.image.resize(attention, (batch, height, width), 'linear')


def attention_transfer(student: jax.Array, teacher: jax.Array, p: float = 2.0) -> jax.Array:
  """Mean squared difference of normalised attention maps, pooled to the smaller size."""
  a_s, a_t = attention_map(student, p), attention_map(teacher, p)
  height = min(a_s.shape[1], a_t.shape[1])
  width = min(a_s.shape[2], a_t.shape[2])
  a_s, a_t = _pool_to(a_s, height, width), _pool_to(a_t, height, width)
  flat_s = a_s.reshape(a_s.shape[0], -1)
  flat_t = a_t.reshape(a_t.shape[0], -1)
  flat_s = flat_s / (jnp.linalg.norm(flat_s, axis=1, keepdims=True) + 1e-12)
  flat_t = flat_t / (jnp.linalg.norm(flat_t, axis=1, keepdims=True) + 1e-12)
  return mse(flat_s, flat_t)


def loss_terms(
  output: dict[str, jax.Array], target: dict[str, jax.Array], *, attention_p: float = 2.0
) -> dict[str, jax.Array]:
  """Every term the target allows: kp and jacobian always; heatmap and attention if given."""
  terms = {'kp': mse(output['kp'], target['kp'])}
  terms['jacobian'] = mse(output['jacobian'], target['jacobian'])
  if 'heatmap' in target:
    terms['heatmap'] = heatmap_mse(output['heatmap'], target['heatmap'])
  if 'encoder_features' in target:
    terms['attention'] = attention_transfer(
      output['encoder_features'], target['encoder_features'], attention_p
    )
  return terms


def weighted_loss(terms: dict[str, jax.Array], weights: dict[str, float]) -> jax.Array:
  """sum_t weight_t * term_t over the terms with a positive weight."""
  return sum(weights[name] * value for name, value in terms.items() if weights.get(name, 0) > 0)


def keypoint_distance(a: jax.Array, b: jax.Array) -> jax.Array:
  """Average keypoint distance (AKD): mean Euclidean distance in normalised coordinates."""
  return jnp.mean(jnp.linalg.norm(a - b, axis=-1))
