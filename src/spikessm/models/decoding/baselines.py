"""Baseline decoders to judge the point-process filters against.

* :func:`bayesian_decoder`: static per-bin Bayesian decoder (Zhang et al. 1998): the
  posterior over a grid of positions from each bin's Poisson likelihood times a prior
  (e.g. the occupancy), independently for every bin (no dynamics).
* :func:`kalman_decoder`: linear-Gaussian (Kalman) decoder (Wu et al. 2006): the state is
  the position, ``x_t = A x_{t-1} + b + w_t``, the counts ``y_t = H x_t + c + v_t``, all
  parameters fitted by least squares on training data, decoding by the information-form
  Kalman kernel (:mod:`spikessm.kernels.kalman`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

from ..._checks import as_float_array, check_bin_width, check_int
from ..._jax import x64
from ...kernels import kalman as K
from .ppaf import check_spikes
from .results import PPAFResult, StaticDecoderResult


def bayesian_decoder(spikes, grid, log_intensity_grid, *, prior=None, bin_width=1.0,
                     truth=None, level=0.95, chunk=2048) -> StaticDecoderResult:
    """Per-bin posterior over ``grid`` from Poisson counts (no temporal prior).

    Args:
      spikes: (T, N) counts; NaN = missing.
      grid: (G, dim) candidate states (e.g. positions inside the arena).
      log_intensity_grid: (G, N) log-intensity of each neuron at each grid point (log
        expected count per bin when ``bin_width`` is 1).
      prior: (G,) non-negative prior weights (e.g. occupancy), default uniform.
      truth: optional (T, dim) true states: ``in_hpd`` reports whether the grid point
        nearest the truth lies in the ``level`` highest-posterior-density set.
      chunk: bins per block (memory (chunk, G)).

    Returns:
      :class:`StaticDecoderResult` (posterior means and modes per bin).
    """
    y, mask = check_spikes(spikes, "poisson")
    grid = as_float_array(grid, "grid")
    F = as_float_array(log_intensity_grid, "log_intensity_grid")
    if grid.ndim != 2 or grid.shape[0] < 1 or grid.shape[1] < 1:
        raise ValueError(f"grid must be (G, dim) with G, dim >= 1, got shape {grid.shape}")
    G = grid.shape[0]
    if F.shape != (G, y.shape[1]):
        raise ValueError(f"log_intensity_grid must be (G={G}, N={y.shape[1]}), got {F.shape}")
    if not np.all(np.isfinite(grid)):
        raise ValueError("grid must be finite")
    if not np.all(np.isfinite(F)):
        raise ValueError("log_intensity_grid must be finite")
    dt = check_bin_width(bin_width)
    chunk = check_int(chunk, "chunk", 1)
    if isinstance(level, bool) or not isinstance(level, (int, float, np.integer, np.floating)):
        raise TypeError(f"level must be a number in (0, 1), got {level!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if prior is None:
        logp = np.zeros(G)
    else:
        w = as_float_array(prior, "prior")
        if w.shape != (G,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
            raise ValueError(f"prior must be ({G},) finite non-negative weights, not all 0")
        with np.errstate(divide="ignore"):
            logp = np.log(w)
    if truth is not None:
        truth = as_float_array(truth, "truth")
        if truth.shape != (y.shape[0], grid.shape[1]):
            raise ValueError(f"truth must be ({y.shape[0]}, {grid.shape[1]}), got {truth.shape}")
        if not np.all(np.isfinite(truth)):
            raise ValueError("truth must be finite")
    with np.errstate(over="ignore"):
        lam = dt * np.exp(F)  # (G, N)
    if not np.all(np.isfinite(lam)):
        raise ValueError("log_intensity_grid is too large: bin_width * exp(log_intensity_grid)"
                         " overflows float64")
    means, maps, in_hpd = [], [], []
    for s in range(0, y.shape[0], chunk):
        ys = y[s:s + chunk]
        ms = np.ones_like(ys) if mask is None else mask[s:s + chunk].astype(float)
        ll = (ys * ms) @ (F + np.log(dt)).T - ms @ lam.T + logp  # (B, G)
        post = np.exp(ll - logsumexp(ll, axis=1, keepdims=True))
        means.append(post @ grid)
        maps.append(grid[np.argmax(post, axis=1)])
        if truth is not None:
            near = np.argmin(((truth[s:s + chunk, None, :] - grid[None]) ** 2).sum(-1), axis=1)
            srt = -np.sort(-post, axis=1)
            k = np.minimum(np.argmax(np.cumsum(srt, axis=1) >= level, axis=1), G - 1)
            thresh = srt[np.arange(len(k)), k]
            in_hpd.append(post[np.arange(len(near)), near] >= thresh)
    return StaticDecoderResult(np.concatenate(means), np.concatenate(maps), grid,
                               np.concatenate(in_hpd) if truth is not None else None,
                               float(level))


def _lstsq_with_intercept(X, Y):
    """Least-squares [W; c] for Y ~ X W + c. Returns W (p, q), c (q,), residual cov (q, q)."""
    Xa = np.column_stack([X, np.ones(len(X))])
    coef, *_ = np.linalg.lstsq(Xa, Y, rcond=None)
    res = Y - Xa @ coef
    return coef[:-1], coef[-1], res.T @ res / max(len(X) - Xa.shape[1], 1)


@functools.partial(jax.jit, static_argnames=("smooth",))
def _kalman_run(m0, P0, A, a, Q, J, h, r, *, smooth):
    if smooth:
        return K.filter_smooth(m0, P0, A, a, Q, J, h, r)
    return K.filter_only(m0, P0, A, a, Q, J, h, r)


@x64
def kalman_decoder(train_spikes, train_states, test_spikes, *, smooth=False,
                   ridge=1e-6) -> PPAFResult:
    """Linear-Gaussian decoder fitted by least squares on training data.

    Args:
      train_spikes (T1, N), train_states (T1, d): training counts and states (positions).
      test_spikes (T2, N): counts to decode.
      smooth: also run the RTS smoother; ridge: added to the diagonal of the fitted
        observation noise covariance (relative to its mean variance) for stability.

    The dynamics ``x_t = A x_{t-1} + b + w`` and the emission ``y = H x + c + v`` (full
    noise covariance R) are fitted by least squares; the initial state prior is the
    training states' mean and covariance.

    Returns:
      :class:`PPAFResult` (its ``log_likelihoods`` are the exact Gaussian terms of this
      linear model).
    """
    Y1, m1 = check_spikes(train_spikes, "poisson", "train_spikes")
    Y2, m2 = check_spikes(test_spikes, "poisson", "test_spikes")
    if m1 is not None or m2 is not None:
        raise ValueError("kalman_decoder needs complete train_spikes and test_spikes (no NaN)")
    X1 = as_float_array(train_states, "train_states")
    if X1.ndim == 1:
        X1 = X1[:, None]
    if X1.ndim != 2 or X1.shape[1] < 1 or X1.shape[0] != Y1.shape[0] \
            or Y1.shape[1] != Y2.shape[1]:
        raise ValueError(f"train_states must be (T1={Y1.shape[0]}, d) and test_spikes "
                         f"(T2, N={Y1.shape[1]}); got {X1.shape} and {Y2.shape}")
    if X1.shape[0] < 3:
        raise ValueError(f"train_states and train_spikes need at least 3 time steps, got "
                         f"{X1.shape[0]}")
    if not np.all(np.isfinite(X1)):
        raise ValueError("train_states must be finite")
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float, np.integer, np.floating)):
        raise TypeError(f"ridge must be a number >= 0, got {ridge!r}")
    if not (np.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge}")
    A, b, Q = _lstsq_with_intercept(X1[:-1], X1[1:])
    H, c, R = _lstsq_with_intercept(X1, Y1)
    R = R + ridge * np.trace(R) / R.shape[0] * np.eye(R.shape[0])
    T, d = Y2.shape[0], X1.shape[1]
    J, h, r = K.gaussian_information_full(jnp.asarray(Y2 - c), jnp.asarray(H.T),
                                          jnp.asarray(R), diagonal=False)
    out = _kalman_run(jnp.asarray(X1.mean(0)), jnp.asarray(np.cov(X1.T).reshape(d, d)),
                      jnp.asarray(A.T), jnp.broadcast_to(jnp.asarray(b), (T, d)),
                      jnp.asarray(Q), J, h, r, smooth=bool(smooth))
    if smooth:
        fm, fc, pm, pc, ll = (out.filtered_means, out.filtered_covs, out.predicted_means,
                              out.predicted_covs, out.log_likelihoods)
    else:
        fm, fc, pm, pc, ll = out
    ll = np.asarray(ll)
    if not (np.all(np.isfinite(ll)) and np.all(np.isfinite(np.asarray(fm)))):
        raise FloatingPointError("the Kalman decoder produced non-finite estimates: the "
                                 "least-squares model of train_spikes / train_states is "
                                 "degenerate (constant or collinear channels?)")
    return PPAFResult(
        filtered_means=np.asarray(fm), filtered_covs=np.asarray(fc),
        predicted_means=np.asarray(pm), predicted_covs=np.asarray(pc), log_likelihoods=ll,
        marginal_log_likelihood=float(ll.sum()),
        smoothed_means=np.asarray(out.smoothed_means) if smooth else None,
        smoothed_covs=np.asarray(out.smoothed_covs) if smooth else None)


__all__ = ["bayesian_decoder", "kalman_decoder"]
