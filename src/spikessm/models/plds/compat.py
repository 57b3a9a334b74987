"""nSTAT-compatible entry points (PP_EM, mPPCO_EM) over :class:`PoissonLDS`.

Thin functions: they call :meth:`PoissonLDS.fit` and rename the fields. Differences from
nSTAT's bridge, on purpose: a per-neuron baseline ``d_i`` and a bin width (nSTAT's model
is ``exp(c_i'x_t)`` per bin: ``bin_width=1`` here reproduces its time unit), the E-step's
Newton iterations run to convergence, and the trace is the Laplace-approximate marginal
log-likelihood, not a surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..._checks import check_int
from .model import PLDSFitResult, PoissonLDS
from .params import PLDSParams


@dataclass(frozen=True)
class PointProcessEMResult:
    """PP_EM result. transition_matrix (d, d), transition_offset (d,),
    transition_covariance (d, d), observation_matrix (N, d), baseline (N,) log rates
    (exp(baseline) in Hz, or per bin when bin_width = 1), initial_state_mean (d,),
    initial_state_covariance (d, d), log_likelihoods (n_iter,) Laplace-approximate
    marginal log-likelihood trace, log_likelihood (final), n_iter, converged, bin_width,
    params (the full :class:`PLDSParams`), seed."""

    transition_matrix: np.ndarray
    transition_offset: np.ndarray
    transition_covariance: np.ndarray
    observation_matrix: np.ndarray
    baseline: np.ndarray
    initial_state_mean: np.ndarray
    initial_state_covariance: np.ndarray
    log_likelihoods: np.ndarray
    log_likelihood: float
    n_iter: int
    converged: bool
    bin_width: float
    params: PLDSParams
    seed: int


@dataclass(frozen=True)
class HybridEMResult:
    """mPPCO_EM result: as :class:`PointProcessEMResult` with the Poisson loadings as
    poisson_observation_matrix (N, d) and the Gaussian channels' gaussian_observation_matrix
    (M, d), gaussian_offset (M,), gaussian_observation_covariance (M, M)."""

    transition_matrix: np.ndarray
    transition_offset: np.ndarray
    transition_covariance: np.ndarray
    poisson_observation_matrix: np.ndarray
    baseline: np.ndarray
    gaussian_observation_matrix: np.ndarray
    gaussian_offset: np.ndarray
    gaussian_observation_covariance: np.ndarray
    initial_state_mean: np.ndarray
    initial_state_covariance: np.ndarray
    log_likelihoods: np.ndarray
    log_likelihood: float
    n_iter: int
    converged: bool
    bin_width: float
    params: PLDSParams
    seed: int


def point_process_result(fit: PLDSFitResult) -> PointProcessEMResult:
    p = fit.params
    return PointProcessEMResult(p.A, p.b, p.Q, p.C, p.d, p.m0, p.P0, fit.log_likelihoods,
                                fit.log_likelihood, fit.n_iter, fit.converged, p.bin_width, p,
                                fit.seed)


def hybrid_result(fit: PLDSFitResult) -> HybridEMResult:
    p = fit.params
    return HybridEMResult(p.A, p.b, p.Q, p.C, p.d, p.Cg, p.dg, p.R, p.m0, p.P0,
                          fit.log_likelihoods, fit.log_likelihood, fit.n_iter, fit.converged,
                          p.bin_width, p, fit.seed)


def fit_point_process_em(observations, state_dim: int, *, n_iter: int = 30, seed: int = 0,
                         init: str = "random", ridge_lambda: float = 0.0,
                         bin_width: float = 1.0, tol: float = 1e-6,
                         progress: bool = False) -> PointProcessEMResult:
    """PP_EM: fit a Poisson LDS to spike counts by Laplace EM.

    Args:
      observations: counts (T, N), (K, T, N) or a list of (T_k, N) arrays; NaN = missing.
      state_dim: latent dimension; n_iter: maximum EM iterations (stops earlier at ``tol``).
      seed, init ("random", "log_empirical_rate", "sqrt_lds"), ridge_lambda: see
      :meth:`PoissonLDS.fit`. bin_width: seconds per bin (1.0: rates per bin, as nSTAT).
    """
    fit = _fit(PoissonLDS(state_dim, bin_width), observations, None,
               ("observations", "gaussian_observations"), n_iter, init, seed, tol,
               ridge_lambda, progress)
    return point_process_result(fit)


def _fit(model: PoissonLDS, obs, gauss, names, n_iter, init, seed, tol, ridge_lambda,
         progress) -> PLDSFitResult:
    """:meth:`PoissonLDS.fit` with this API's argument names in the error messages."""
    n_iter = check_int(n_iter, "n_iter", 1)
    prep = model._prepare(obs, gauss, names=names)
    return model._fit_batch(prep, [None], [init], [seed], n_iter, tol, ridge_lambda,
                            newton_iters=50, newton_tol=1e-8, canonical=True,
                            progress=progress)[0]


def fit_hybrid_em(poisson_observations, gaussian_observations, state_dim: int, *,
                  n_iter: int = 30, seed: int = 0, init: str = "random",
                  ridge_lambda: float = 0.0, bin_width: float = 1.0,
                  gaussian_covariance: str = "diagonal", tol: float = 1e-6,
                  progress: bool = False) -> HybridEMResult:
    """mPPCO_EM: one latent drives Poisson counts and Gaussian channels (R diagonal or
    full, NaN allowed). Arguments as :func:`fit_point_process_em`."""
    model = PoissonLDS(state_dim, bin_width, gaussian_covariance=gaussian_covariance)
    if gaussian_observations is None:
        raise ValueError("gaussian_observations is required for the hybrid model (use "
                         "fit_point_process_em for spike counts alone)")
    fit = _fit(model, poisson_observations, gaussian_observations,
               ("poisson_observations", "gaussian_observations"), n_iter, init, seed, tol,
               ridge_lambda, progress)
    return hybrid_result(fit)
