"""Joint posterior draws of a linear-Gaussian latent trajectory by backward sampling
(forward-filter backward-sample, Fruhwirth-Schnatter 1994; Carter & Kohn 1994). Pure JAX.

Works from the output of :func:`spikessm.kernels.kalman.filter_smooth` /
:func:`~spikessm.kernels.kalman.filter_only` for the model
``x_t = F_t x_{t-1} + a_t + w_t, w_t ~ N(0, Q_t)``::

    x_{T-1} ~ N(mu_{T-1}, Sig_{T-1})
    x_t | x_{t+1} ~ N(mu_t + G_t (x_{t+1} - m_{t+1}),  C_t),   G_t = Sig_t F' P_{t+1}^-1
    C_t = Sig_t - G_t P_{t+1} G_t' = (I - G_t F) Sig_t (I - G_t F)' + G_t Q G_t'

(``mu, Sig`` filtered, ``m, P`` predicted moments). ``C_t`` is drawn through the factor
``[(I - G_t F) L_t, G_t L_q]`` (``Sig_t = L_t L_t'``, ``Q = L_q L_q'``), a sum of PSD
terms, so no Cholesky factor of a possibly near-singular ``C_t`` is ever needed.
Memory: O(T d^2) for the gains and factors plus the draws (n, T, d); the (T d x T d)
joint covariance is never formed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve


def backward_sample(key, filtered_means, filtered_covs, predicted_means, predicted_covs, F, Q,
                    n_draws: int):
    """Draw ``n_draws`` trajectories from the joint smoothing distribution.

    Args:
      key: a ``jax.random`` key.
      filtered_means (T, d), filtered_covs (T, d, d), predicted_means (T, d),
      predicted_covs (T, d, d): filter output (``predicted_*[t]`` is the prediction of x_t).
      F (d, d): dynamics; Q (d, d): process noise (time-invariant).
      n_draws: number of draws (static).

    Returns:
      (n_draws, T, d) draws.
    """
    T, d = filtered_means.shape
    eye = jnp.eye(d, dtype=filtered_means.dtype)
    Sig = filtered_covs[:-1]
    Lp = jnp.linalg.cholesky(predicted_covs[1:])
    G = jnp.swapaxes(cho_solve((Lp, True), F @ Sig), -1, -2)  # (T-1, d, d)
    Ls = jnp.linalg.cholesky(0.5 * (Sig + jnp.swapaxes(Sig, -1, -2)))
    Lq = jnp.linalg.cholesky(Q)
    M = jnp.concatenate([(eye - G @ F) @ Ls, G @ Lq], axis=-1)  # (T-1, d, 2d)
    k_last, k_rest = jax.random.split(key)
    z_last = jax.random.normal(k_last, (n_draws, d), filtered_means.dtype)
    x_last = filtered_means[-1] + z_last @ jnp.linalg.cholesky(filtered_covs[-1]).T
    z = jax.random.normal(k_rest, (T - 1, n_draws, 2 * d), filtered_means.dtype)

    def step(x_next, inp):
        mu, m_next, G_t, M_t, z_t = inp
        x = mu + (x_next - m_next) @ G_t.T + z_t @ M_t.T
        return x, x

    _, xs = jax.lax.scan(step, x_last,
                         (filtered_means[:-1], predicted_means[1:], G, M, z), reverse=True)
    return jnp.concatenate([jnp.swapaxes(xs, 0, 1), x_last[:, None]], axis=1)


__all__ = ["backward_sample"]
