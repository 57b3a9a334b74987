"""Time-rescaling goodness of fit (Brown et al. 2002) for binned point-process models,
with the discrete-time correction of Haslinger, Pipa & Brown (2010).

If ``lambda(t)`` is the true conditional intensity, the integrated intensity between
successive spikes, ``tau_j = int_{s_{j-1}}^{s_j} lambda``, is Exp(1) and
``z_j = 1 - exp(-tau_j)`` is Uniform(0, 1). The KS plot compares the sorted ``z_j`` with
uniform quantiles; the 95% band is ``+-1.36 / sqrt(n)``.

Binned data (``q_t`` = integrated intensity of bin ``t``: ``Delta lambda_t`` for a Poisson
model, ``-log(1 - p_t)`` for a Bernoulli model with spike probability ``p_t``): only
whether a bin holds a spike is used. Without correction ``tau_j`` is the sum of ``q`` over
the bins after the previous spike up to and including the spike bin, which is biased when
``q_t`` is not small (``z`` piles up away from 0). The discrete correction replaces the
spike bin's ``q`` by a draw from the within-bin time of a spike given that one occurs,
``delta = -log(1 - r (1 - exp(-q)))`` with ``r ~ U(0, 1)``, which makes the ``z_j`` exactly
uniform for a correct Bernoulli model of the spike indicators (Haslinger et al. 2010).
For a Poisson model a bin with ``k > 1`` spikes counts as one spike (use fine bins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..._checks import as_float_array, check_int

__all__ = ["TimeRescaling", "time_rescaling", "time_rescaling_fit"]


@dataclass(frozen=True)
class TimeRescaling:
    """Time-rescaling KS test of one spike train.

    Attributes:
      z: ``(n,)`` sorted rescaled intervals (should be Uniform(0, 1)).
      uniform: ``(n,)`` model quantiles ``(k - 0.5) / n``.
      ks_statistic: ``max_k |z_(k) - (k - 0.5)/n|`` (the KS-plot distance).
      ks_pvalue: exact one-sample KS p-value (``scipy.stats.kstest``) of ``z`` vs U(0,1).
      bound: 95% band half-width ``1.36 / sqrt(n)``.
      within_bounds: ``ks_statistic <= bound``.
      discrete: whether the discrete-time correction was applied.
    """

    z: np.ndarray
    uniform: np.ndarray
    ks_statistic: float
    ks_pvalue: float
    bound: float
    within_bounds: bool
    discrete: bool

    @property
    def n_intervals(self) -> int:
        return int(self.z.size)


def time_rescaling(spikes, integrated_intensity, *, discrete: bool = True,
                   seed: int | None = 0) -> TimeRescaling:
    """KS time-rescaling test of one neuron's binned spike train.

    Args:
      spikes: ``(T,)`` spike counts per bin (a bin with any spike counts as one).
      integrated_intensity: ``(T,)`` ``q_t >= 0``, the model's integrated intensity in each
        bin (``Delta * lambda_t``; for Bernoulli ``-log(1 - p_t)``).
      discrete: apply the Haslinger et al. (2010) correction (random within-bin time).
      seed: seed of the uniform draws of the correction (ignored when ``discrete`` is
        False); the same seed gives the same result.

    Returns:
      :class:`TimeRescaling` over the ``n`` intervals between successive spike bins
      (``n >= 2`` required).
    """
    s = as_float_array(spikes, "spikes")
    q = as_float_array(integrated_intensity, "integrated_intensity")
    if seed is not None:
        seed = check_int(seed, "seed", 0)
    if s.ndim != 1 or q.shape != s.shape:
        raise ValueError(f"spikes and integrated_intensity must be 1-D of the same length, "
                         f"got shapes {s.shape} and {q.shape}")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(q))):
        raise ValueError("spikes and integrated_intensity must be finite")
    if np.any(s < 0):
        raise ValueError("spikes must be non-negative counts")
    if np.any(q < 0):
        raise ValueError("integrated_intensity must be >= 0 in every bin")
    idx = np.nonzero(s > 0)[0]
    if idx.size < 3:
        raise ValueError(f"spikes: need at least 3 spike bins for the KS test, got "
                         f"{idx.size}")
    Q = np.concatenate([[0.0], np.cumsum(q)])       # Q[k] = sum_{t < k} q_t
    if not np.isfinite(Q[-1]):
        raise ValueError("integrated_intensity is too large: its sum overflows float64")
    # full bins strictly between successive spike bins, then the spike bin itself
    between = Q[idx[1:]] - Q[idx[:-1] + 1]
    q_spike = q[idx[1:]]
    if discrete:
        r = np.random.default_rng(seed).uniform(size=q_spike.size)
        last = -np.log1p(-r * -np.expm1(-q_spike))
    else:
        last = q_spike
    tau = between + last
    z = np.sort(-np.expm1(-tau))
    n = z.size
    u = (np.arange(1, n + 1) - 0.5) / n
    ks = float(np.max(np.abs(z - u)))
    pval = float(stats.kstest(z, "uniform").pvalue)
    bound = 1.36 / np.sqrt(n)
    return TimeRescaling(z=z, uniform=u, ks_statistic=ks, ks_pvalue=pval, bound=float(bound),
                         within_bounds=bool(ks <= bound), discrete=bool(discrete))


def time_rescaling_fit(fit, counts, *, discrete: bool = True, seed: int = 0) -> list:
    """:func:`time_rescaling` for every neuron of a :class:`~spikessm.models.glm.fit.GLMFit`
    on the data it was fitted to (``counts`` ``(T, N)``); neuron ``i`` uses seed
    ``seed + i``. Returns a list of N :class:`TimeRescaling`."""
    from .fit import GLMFit
    if not isinstance(fit, GLMFit):
        raise TypeError(f"fit must be a GLMFit, got {type(fit).__name__}")
    seed = check_int(seed, "seed", 0)
    y = as_float_array(counts, "counts")
    if y.ndim == 1:
        y = y[:, None]
    if y.shape != fit.fitted.shape:
        raise ValueError(f"counts must have the shape the model was fitted on "
                         f"{fit.fitted.shape}, got {y.shape}")
    mu = fit.fitted
    q = -np.log1p(-np.clip(mu, 0.0, 1.0 - 1e-15)) if fit.link == "logit" else mu
    out = []
    for i in range(y.shape[1]):
        try:
            out.append(time_rescaling(y[:, i], q[:, i], discrete=discrete, seed=seed + i))
        except ValueError as exc:  # name this function's argument and the neuron
            raise ValueError(f"counts[:, {i}]: {exc}") from None
    return out
