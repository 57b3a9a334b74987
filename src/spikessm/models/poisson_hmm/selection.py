"""Choosing the number of states by held-out likelihood, and aligning fitted states to a
reference (Hungarian algorithm on the rates)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..._checks import as_float_array
from .model import HMMFitResult, PoissonHMM


@dataclass(frozen=True)
class NStatesSelection:
    """Result of :func:`select_n_states`.

    n_states (m,); train_log_likelihoods, test_log_likelihoods (m,); test_per_bin (m,)
    held-out log-likelihood per observed bin; aic, bic (m,) on the training data;
    best_n_states: the K with the highest held-out log-likelihood; fits: one
    :class:`HMMFitResult` per K.

    test_trial_log_likelihoods (m, n_test): the held-out log-likelihood of each test trial;
    test_standard_errors (m,): standard error of (held-out LL of K) - (held-out LL of the
    best K), from the paired per-trial differences (0 for the best K; NaN with one test
    trial); parsimonious_n_states: the smallest K whose held-out log-likelihood is within
    one standard error of the best (the one-standard-error rule: a larger K must beat it
    by more than the trial-to-trial noise of the held-out score)."""

    n_states: np.ndarray
    train_log_likelihoods: np.ndarray
    test_log_likelihoods: np.ndarray
    test_per_bin: np.ndarray
    aic: np.ndarray
    bic: np.ndarray
    best_n_states: int
    fits: tuple[HMMFitResult, ...]
    test_trial_log_likelihoods: np.ndarray
    test_standard_errors: np.ndarray
    parsimonious_n_states: int


def select_n_states(train, test, n_states, dt: float, *, n_restarts: int = 3, seed: int = 0,
                    max_iter: int = 200, tol: float = 1e-6, progress: bool = False,
                    **model_kwargs) -> NStatesSelection:
    """Fit a :class:`PoissonHMM` for each K in ``n_states`` on ``train`` (best of
    ``n_restarts``) and score it on the held-out ``test`` trials. ``model_kwargs`` go to
    :class:`PoissonHMM` (priors; masks must then fit every K)."""
    ks = _state_counts(n_states)
    rows, fits, per_trial = [], [], []
    for K in ks:
        model = PoissonHMM(K, dt, **model_kwargs)
        fit = model.fit(train, n_restarts=n_restarts, seed=seed, max_iter=max_iter, tol=tol,
                        progress=progress)
        trial_ll = model.log_likelihood(test, fit.params, per_trial=True)
        rows.append((fit.log_likelihood, float(trial_ll.sum()), model.score(test, fit.params),
                     model.aic(train, fit.params), model.bic(train, fit.params)))
        fits.append(fit)
        per_trial.append(trial_ll)
    tr, te, pb, aic, bic = (np.array(c) for c in zip(*rows))
    per_trial = np.array(per_trial)
    best = int(np.argmax(te))
    diff = per_trial - per_trial[best]  # paired over test trials
    n = per_trial.shape[1]
    se = (np.sqrt(n) * diff.std(axis=1, ddof=1) if n > 1
          else np.where(np.arange(len(ks)) == best, 0.0, np.nan))
    within = np.flatnonzero(te >= te[best] - np.nan_to_num(se, nan=0.0))
    parsimonious = min(ks[i] for i in within)
    return NStatesSelection(np.array(ks), tr, te, pb, aic, bic, ks[best], tuple(fits),
                            per_trial, se, parsimonious)


def _state_counts(n_states) -> list[int]:
    """``n_states`` as a list of ints >= 1 (an int or a sequence of ints; 1.5, "2" or True
    are rejected rather than truncated or parsed)."""
    if isinstance(n_states, (str, bytes)) or n_states is None:
        raise TypeError(f"n_states must be an integer or a list of integers, got "
                        f"{n_states!r}")
    values = np.atleast_1d(np.asarray(n_states, dtype=object)).ravel().tolist()
    if not values:
        raise ValueError("n_states must list at least one number of states")
    for k in values:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"n_states must hold integers, got {k!r}")
        if k < 1:
            raise ValueError(f"n_states must be >= 1, got {k}")
    return [int(k) for k in values]


def align_states(rates_fit, rates_ref) -> np.ndarray:
    """Permutation ``perm`` that best matches fitted states to reference states:
    fitted state ``perm[k]`` corresponds to reference state k (use
    ``params.permute(perm)``). Cost: squared difference of the rates (K, C), each channel
    scaled by its mean reference rate; solved exactly by the Hungarian algorithm."""
    f = as_float_array(rates_fit, "rates_fit")
    r = as_float_array(rates_ref, "rates_ref")
    if f.ndim != 2 or f.shape != r.shape:
        raise ValueError(f"rates_fit and rates_ref must both be (K, C) with the same shape, "
                         f"got {f.shape} and {r.shape}")
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(r))):
        raise ValueError("rates must be finite")
    scale = np.where(r.mean(axis=0) > 0, r.mean(axis=0), 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        cost = (((r[:, None, :] - f[None, :, :]) / scale) ** 2).sum(axis=2)  # (ref, fit)
    if not np.all(np.isfinite(cost)):
        raise ValueError("rates_fit and rates_ref differ by more than float64 can square; "
                         "rates must be in Hz")
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(f.shape[0], dtype=np.int64)
    perm[rows] = cols
    return perm
