"""Restarts chosen by held-out predictive log-likelihood, and state-dimension sweeps.

EM for the Poisson LDS finds local optima and can collapse (A -> 0) when the spikes
constrain the latent weakly, so several restarts are fitted (batched in one compiled
computation, :meth:`~spikessm.models.plds.PoissonLDS.fit_restarts`) on a training split
and the one with the best held-out score is kept. Held-out choices:

- ``"time"``: the trailing ``holdout_fraction`` of every trial, scored one step ahead after
  filtering through the trial's training part (warm start);
- ``"trials"``: a seeded random ``holdout_fraction`` of the trials, scored one step ahead
  from the initial-state distribution;
- ``"neurons"``: co-smoothing (held-out neurons on held-out trials predicted from the
  held-in neurons, :mod:`spikessm.evaluation.cosmoothing`).

The returned fit is the one trained on the training split (the held-out data never touch
the parameters).

Short-run screening (``screen_iter``), the "em-EM" strategy of Biernacki, Celeux & Govaert
(2003, Comput. Stat. Data Anal. 41:561): every restart runs only ``screen_iter`` EM
iterations (batched), each is scored on the held-out data, and only the best one is run on
to ``n_iter`` iterations (or convergence) and scored again. Eight restarts then cost about
``8 * screen_iter / n_iter`` fits plus one, instead of eight; the price is that restarts
are compared early, before they converge.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .._checks import check_int
from ..data.trials import as_trial_list
from ..models.plds.compat import hybrid_result, point_process_result
from ..models.plds.model import PoissonLDS, check_counts
from .cosmoothing import co_smoothing, split_neurons
from .predictive import hybrid_predictive_ll, point_process_predictive_ll

HOLDOUTS = ("time", "trials", "neurons")


@dataclass(frozen=True)
class MultiRestartResult:
    """best_result: the selected fit (nSTAT-compatible result, trained on the training
    split); best_seed; best_predictive_ll: its held-out score; all_seeds (R,);
    all_predictive_lls (R,) (NaN for a restart whose fit failed); holdout: the held-out
    choice; all_results: every restart's result (same type as ``best_result``).
    With short-run screening (``screen_iter``) every restart except the selected one is
    reported (fit and score) as it was after ``screen_iter`` iterations."""

    best_result: object
    best_seed: int
    best_predictive_ll: float
    all_seeds: np.ndarray
    all_predictive_lls: np.ndarray
    holdout: str
    all_results: tuple


def _check(n_restarts, holdout_fraction, holdout):
    if isinstance(n_restarts, bool) or not isinstance(n_restarts, (int, np.integer)) \
            or n_restarts < 1:
        raise ValueError(f"n_restarts must be a positive integer, got {n_restarts!r}")
    if not (isinstance(holdout_fraction, (int, float)) and 0.0 < holdout_fraction < 1.0):
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    if holdout not in HOLDOUTS:
        raise ValueError(f"holdout must be one of {HOLDOUTS}, got {holdout!r}")


def _split_trials(K, fraction, seed):
    if K < 2:
        raise ValueError("holdout='trials' / 'neurons' needs at least 2 trials")
    n = int(np.clip(round(fraction * K), 1, K - 1))
    perm = np.random.default_rng(seed).permutation(K)
    return np.sort(perm[n:]), np.sort(perm[:n])


def _best_of(spikes, gaussian, state_dim, *, n_restarts, holdout_fraction, holdout, n_iter,
             init, ridge_lambda, seed, bin_width, n_samples, gaussian_covariance, progress,
             screen_iter=None, names=("spikes", "gaussian")):
    _check(n_restarts, holdout_fraction, holdout)
    check_int(n_iter, "n_iter", 1)
    if screen_iter is not None:
        check_int(screen_iter, "screen_iter", 1)
    check_int(n_samples, "n_samples", 10)  # as the predictive scores (checked before fitting)
    sname, gname = names
    trials = as_trial_list(spikes, sname, min_length=1)
    check_counts(trials, sname)
    gtrials = None if gaussian is None else as_trial_list(gaussian, gname, min_length=1)
    if gtrials is not None and len(gtrials) != len(trials):
        raise ValueError(f"{gname} has {len(gtrials)} trials; {sname} has {len(trials)}")
    model = PoissonLDS(state_dim, bin_width, gaussian_covariance=gaussian_covariance)
    seeds = [int(seed) + r for r in range(int(n_restarts))]
    if holdout == "time":
        cut = [int(np.floor((1.0 - holdout_fraction) * len(t))) for t in trials]
        if min(cut) < 2 or any(c >= len(t) for c, t in zip(cut, trials)):
            raise ValueError("holdout='time' needs every trial long enough for at least 2 "
                             "training bins and 1 held-out bin")
        train = [t[:c] for t, c in zip(trials, cut)]
        gtrain = None if gtrials is None else [g[:c] for g, c in zip(gtrials, cut)]
        test_idx = np.arange(len(trials))
    else:
        tr_idx, test_idx = _split_trials(len(trials), holdout_fraction, seed)
        train = [trials[i] for i in tr_idx]
        gtrain = None if gtrials is None else [gtrials[i] for i in tr_idx]
    screening = screen_iter is not None and screen_iter < n_iter
    fits = model.fit_restarts(train, gtrain, seeds=seeds, init=init,
                              max_iter=screen_iter if screening else n_iter,
                              ridge_lambda=ridge_lambda, progress=progress)
    held = (split_neurons(trials[0].shape[1], holdout_fraction, seed)
            if holdout == "neurons" else None)

    def score(f):
        if not np.isfinite(f.log_likelihood):
            return np.nan
        try:
            return _score(f.params, trials, gtrials, train, holdout, cut if holdout ==
                          "time" else None, test_idx, held, n_samples, seed)
        except (FloatingPointError, np.linalg.LinAlgError):
            return np.nan

    scores = np.array([score(f) for f in fits])
    if not np.isfinite(scores).any():
        raise FloatingPointError("every restart failed to produce a finite held-out score")
    best = int(np.nanargmax(scores))
    if screening and not fits[best].converged:
        fits = list(fits)
        fits[best] = _run_on(model, fits[best], train, gtrain, n_iter - screen_iter,
                             ridge_lambda, progress)
        scores[best] = score(fits[best])
        if not np.isfinite(scores[best]):
            raise FloatingPointError("the selected restart failed to produce a finite "
                                     "held-out score after screening")
    wrap = point_process_result if gtrials is None else hybrid_result
    results = tuple(wrap(f) for f in fits)
    return MultiRestartResult(results[best], seeds[best], float(scores[best]),
                              np.asarray(seeds), scores, holdout, results)


def _run_on(model, fit, train, gtrain, n_more, ridge_lambda, progress):
    """Continue a screened restart for up to ``n_more`` EM iterations from its parameters;
    one result with the whole objective trace, iteration count and time."""
    more = model.fit(train, gtrain, params=fit.params, max_iter=n_more,
                     ridge_lambda=ridge_lambda, progress=progress)
    return replace(more, log_likelihoods=np.concatenate([fit.log_likelihoods,
                                                         more.log_likelihoods]),
                   n_iter=fit.n_iter + more.n_iter, seconds=fit.seconds + more.seconds,
                   init=fit.init, seed=fit.seed)


def _score(params, trials, gtrials, train, holdout, cut, test_idx, held, n_samples, seed):
    test = [trials[i] for i in test_idx]
    if holdout == "neurons":
        return co_smoothing(params, train, test, held,
                            None if gtrials is None else [gtrials[i] for i in test_idx]
                            ).log_likelihood
    kw = dict(n_samples=n_samples, seed=seed)
    if holdout == "time":
        kw["score_from"] = np.asarray(cut)
    if gtrials is None:
        return point_process_predictive_ll(params, test, **kw).total
    return hybrid_predictive_ll(params, test, [gtrials[i] for i in test_idx], **kw).total


def fit_point_process_em_best_of(observations, state_dim: int, *, n_restarts: int = 8,
                                 holdout_fraction: float = 0.2, holdout: str = "time",
                                 n_iter: int = 30, init: str = "random",
                                 ridge_lambda: float = 0.0, seed: int = 0,
                                 bin_width: float = 1.0, n_samples: int = 1000,
                                 screen_iter: int | None = None,
                                 progress: bool = False) -> MultiRestartResult:
    """PP_EM with restarts: ``n_restarts`` seeded fits (seeds ``seed .. seed+R-1``, batched)
    on a training split, the best chosen by held-out one-step-ahead predictive
    log-likelihood (or co-smoothing for ``holdout="neurons"``). ``screen_iter``: compare
    the restarts after that many EM iterations and run only the best on to ``n_iter``
    (short-run "em-EM" screening; default None: every restart runs ``n_iter``). See the
    module docstring."""
    return _best_of(observations, None, state_dim, n_restarts=n_restarts,
                    holdout_fraction=holdout_fraction, holdout=holdout, n_iter=n_iter,
                    init=init, ridge_lambda=ridge_lambda, seed=seed, bin_width=bin_width,
                    n_samples=n_samples, gaussian_covariance="diagonal", progress=progress,
                    screen_iter=screen_iter, names=("observations", "gaussian_observations"))


def fit_hybrid_em_best_of(poisson_observations, gaussian_observations, state_dim: int, *,
                          n_restarts: int = 8, holdout_fraction: float = 0.2,
                          holdout: str = "time", n_iter: int = 30, init: str = "random",
                          ridge_lambda: float = 0.0, seed: int = 0, bin_width: float = 1.0,
                          gaussian_covariance: str = "diagonal", n_samples: int = 1000,
                          screen_iter: int | None = None,
                          progress: bool = False) -> MultiRestartResult:
    """mPPCO_EM with restarts, selected by the held-out hybrid predictive log-likelihood
    (Gaussian part exact, Poisson part by importance sampling); ``screen_iter`` as in
    :func:`fit_point_process_em_best_of`."""
    if gaussian_observations is None:
        raise ValueError("gaussian_observations is required for the hybrid model")
    return _best_of(poisson_observations, gaussian_observations, state_dim,
                    n_restarts=n_restarts, holdout_fraction=holdout_fraction, holdout=holdout,
                    n_iter=n_iter, init=init, ridge_lambda=ridge_lambda, seed=seed,
                    bin_width=bin_width, n_samples=n_samples,
                    gaussian_covariance=gaussian_covariance, progress=progress,
                    screen_iter=screen_iter,
                    names=("poisson_observations", "gaussian_observations"))


@dataclass(frozen=True)
class StateDimSweep:
    """state_dims (D,); scores (D, R) held-out score of every restart; best (D,) best
    restart per dimension; best_state_dim; holdout; results: the MultiRestartResult of
    each dimension. Plot with :func:`spikessm.plotting.plds.plot_state_dim_sweep`."""

    state_dims: np.ndarray
    scores: np.ndarray
    best: np.ndarray
    best_state_dim: int
    holdout: str
    results: tuple

    def table(self) -> list[dict]:
        """One row per state dimension: state_dim, best score, median score, n_failed."""
        return [{"state_dim": int(d), "best": float(b), "median": float(np.nanmedian(s)),
                 "n_failed": int(np.isnan(s).sum())}
                for d, b, s in zip(self.state_dims, self.best, self.scores)]


def select_state_dim(spikes, state_dims, *, gaussian=None, **kw) -> StateDimSweep:
    """Fit each state dimension with restarts (as :func:`fit_point_process_em_best_of` /
    :func:`fit_hybrid_em_best_of`, same keyword arguments and the same held-out split for
    every dimension) and pick the dimension with the best held-out score."""
    if isinstance(state_dims, (str, bytes)) or not np.iterable(state_dims):
        raise TypeError(f"state_dims must be a sequence of positive integers, got "
                        f"{state_dims!r}")
    dims = [check_int(d, "state_dims[...]", 1) for d in state_dims]
    if not dims:
        raise ValueError("state_dims must name at least one state dimension")
    res = []
    for d in dims:
        if gaussian is None:
            res.append(fit_point_process_em_best_of(spikes, d, **kw))
        else:
            res.append(fit_hybrid_em_best_of(spikes, gaussian, d, **kw))
    scores = np.array([r.all_predictive_lls for r in res])
    best = np.array([r.best_predictive_ll for r in res])
    return StateDimSweep(np.array(dims), scores, best, dims[int(np.argmax(best))],
                         res[0].holdout, tuple(res))
