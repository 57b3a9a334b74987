"""Co-smoothing: predict held-out neurons from held-in neurons on held-out trials.

As in the Neural Latents Benchmark: a model is fitted on training trials with every neuron;
on test trials the held-out neurons are hidden (treated as missing), the latents are
inferred from the held-in neurons, and the held-out neurons' counts are scored under the
predicted rates with a Poisson log-likelihood. ``bits_per_spike`` is the gain over a
per-neuron constant rate (from the training trials), in bits per held-out spike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.special import gammaln

from ..data.trials import as_trial_list
from ..models.plds.model import PoissonLDS, check_counts
from ..models.plds.params import PLDSParams
from .predictive import constant_rate_predictive_ll


@dataclass(frozen=True)
class CoSmoothingResult:
    """log_likelihood: Poisson LL of the held-out neurons' counts on the test trials under
    the predicted rates; baseline_log_likelihood: same under each neuron's training mean
    rate (half a spike over its training bins if it never fired); bits_per_spike:
    (log_likelihood - baseline) / (n_spikes ln 2); n_spikes;
    rates: list of (T_k, n_held_out) predicted rates (Hz for the Poisson LDS, counts per
    bin for the square-root Gaussian baseline)."""

    log_likelihood: float
    baseline_log_likelihood: float
    bits_per_spike: float
    n_spikes: float
    rates: list


def poisson_ll(counts, rates_per_bin) -> float:
    """sum of log Poisson(counts | rates) over entries where counts are not NaN."""
    y = np.asarray(counts, dtype=np.float64)
    lam = np.asarray(rates_per_bin, dtype=np.float64)
    ok = ~np.isnan(y)
    y, lam = y[ok], lam[ok]
    return float(np.sum(y * np.log(np.maximum(lam, 1e-300)) - lam - gammaln(y + 1.0)))


def _result(ll, train, test, held, rates) -> CoSmoothingResult:
    """Attach the constant-rate baseline (the one of
    :func:`~spikessm.evaluation.predictive.constant_rate_predictive_ll`) and bits/spike."""
    base = constant_rate_predictive_ll([t[:, held] for t in train],
                                       [t[:, held] for t in test], 1.0).total
    n_sp = float(sum(np.nansum(t[:, held]) for t in test))
    bps = (ll - base) / (max(n_sp, 1.0) * np.log(2.0))
    return CoSmoothingResult(float(ll), float(base), float(bps), n_sp, rates)


def split_neurons(n_neurons: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random ``fraction`` of neurons (at least 1, not all)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n = int(np.clip(round(fraction * n_neurons), 1, n_neurons - 1))
    return np.sort(np.random.default_rng(seed).choice(n_neurons, n, replace=False))


def co_smoothing(params: PLDSParams, train_spikes, test_spikes, held_out,
                 test_gaussian=None) -> CoSmoothingResult:
    """Score held-out neurons ``held_out`` (indices) on ``test_spikes`` given the others.

    Args:
      params: a fitted Poisson LDS (fitted on ``train_spikes`` with every neuron).
      train_spikes: the training trials (for the constant-rate baseline).
      test_spikes: test trials (T, N) / (K, T, N) / list, every neuron present.
      held_out: indices of the neurons to predict.
    """
    if not isinstance(params, PLDSParams):
        raise TypeError(f"params must be PLDSParams, got {type(params).__name__}")
    test = as_trial_list(test_spikes, "test_spikes", feature_dim=params.n_neurons)
    train = as_trial_list(train_spikes, "train_spikes", feature_dim=params.n_neurons)
    check_counts(test, "test_spikes")
    check_counts(train, "train_spikes")
    held = np.asarray(held_out) if not isinstance(held_out, (str, bytes)) else None
    if held is None or held.dtype.kind not in "iu":
        raise TypeError(f"held_out must be integer neuron indices, got {held_out!r}")
    held = np.unique(held.astype(np.int64).ravel())
    if held.size == 0 or held.min() < 0 or held.max() >= params.n_neurons:
        raise ValueError(f"held_out must name neurons in 0..{params.n_neurons - 1}")
    if held.size == params.n_neurons:
        raise ValueError("held_out must leave at least one held-in neuron")
    if params.history or params.n_covariates:
        raise ValueError("co_smoothing supports models without covariate or spike-history "
                         "terms")
    dt = params.bin_width
    keep = np.setdiff1d(np.arange(params.n_neurons), held)
    held_in = replace(params, C=params.C[keep], d=params.d[keep], D=params.D[keep],
                      H=params.H[keep])
    model = PoissonLDS(params.state_dim, dt,
                       gaussian_covariance="full" if params.n_gaussian else "diagonal")
    post = model.smooth(held_in, [t[:, keep] for t in test], test_gaussian)
    Ch, dh = params.C[held], params.d[held]
    with np.errstate(over="ignore", invalid="ignore"):  # checked just below
        rates = [np.exp(mu @ Ch.T + dh + 0.5 * np.einsum("ni,tij,nj->tn", Ch, S, Ch))
                 for mu, S in zip(post.means, post.covs)]
        ll = sum(poisson_ll(t[:, held], r * dt) for t, r in zip(test, rates))
    if not np.isfinite(ll):
        raise FloatingPointError("the co-smoothing log-likelihood is not finite: the "
                                 "held-out neurons' predicted rates overflow or underflow "
                                 "float64 at these params (check params.d and params.C)")
    return _result(ll, train, test, held, rates)


def sqrt_gaussian_co_smoothing(train_spikes, test_spikes, held_out, state_dim: int, *,
                               max_iter: int = 100, seed: int = 0) -> CoSmoothingResult:
    """Baseline: a linear-Gaussian SSM on square-root counts, scored as co-smoothing.

    Fitted by exact EM on sqrt(counts) of the training trials (every neuron); on test trials
    the held-in neurons' sqrt counts give the smoothed latent, and a held-out neuron's
    predicted count per bin is E[s^2] = mean^2 + variance of its predicted sqrt count."""
    from ..models.lgssm import LinearGaussianSSM
    from ..models.lgssm.params import replace_fields

    train = as_trial_list(train_spikes, "train_spikes")
    test = as_trial_list(test_spikes, "test_spikes", feature_dim=train[0].shape[1])
    check_counts(train, "train_spikes")
    check_counts(test, "test_spikes")
    N = train[0].shape[1]
    held = np.asarray(held_out) if not isinstance(held_out, (str, bytes)) else None
    if held is None or held.dtype.kind not in "iu":
        raise TypeError(f"held_out must be integer neuron indices, got {held_out!r}")
    held = np.unique(held.astype(np.int64).ravel())
    if held.size == 0 or held.min() < 0 or held.max() >= N or held.size == N:
        raise ValueError(f"held_out must name some but not all neurons in 0..{N - 1}")
    keep = np.setdiff1d(np.arange(N), held)
    lg = LinearGaussianSSM(state_dim, emission_dim=N)
    fit = lg.fit_em([np.sqrt(t) for t in train], max_iter=max_iter, progress=False, seed=seed)
    p = fit.params
    p_in = replace_fields(p, C=p.C[keep], d=p.d[keep], D=p.D[keep],
                          R=p.R[np.ix_(keep, keep)])
    lg_in = LinearGaussianSSM(state_dim, emission_dim=keep.size)
    Ch, dh, rh = p.C[held], p.d[held], np.diag(p.R)[held]
    # all test trials in one (ragged, padded) call: one compilation, not one per length
    sm = lg_in.smooth(p_in, [np.sqrt(t[:, keep]) for t in test])
    mu = np.asarray(sm.smoothed_means).reshape(len(test), -1, state_dim)
    S = np.asarray(sm.smoothed_covs).reshape(len(test), -1, state_dim, state_dim)
    ll, rates = 0.0, []
    for k, t in enumerate(test):
        n = t.shape[0]
        mean = mu[k, :n] @ Ch.T + dh
        var = np.einsum("ni,tij,nj->tn", Ch, S[k, :n], Ch) + rh
        lam = mean ** 2 + var
        rates.append(lam)
        ll += poisson_ll(t[:, held], lam)
    return _result(ll, train, test, held, rates)
