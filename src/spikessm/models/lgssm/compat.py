"""nSTAT-compatible entry point (KF_EM), a thin function over :class:`LinearGaussianSSM`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..._checks import check_int
from ...data.trials import as_trial_list
from .model import LinearGaussianSSM
from .params import LGSSMParams


@dataclass(frozen=True)
class LinearGaussianEMResult:
    """Fitted LG-SSM in pykalman / nSTAT vocabulary (plain NumPy arrays).

    transition_matrix (d, d), transition_offset (d,), observation_matrix (N, d),
    observation_offset (N,), transition_covariance (d, d), observation_covariance (N, N),
    initial_state_mean (d,), initial_state_covariance (d, d), log_likelihoods (n_iter,)
    (marginal log-likelihood entering each iteration), log_likelihood (of the returned
    parameters), n_iter, converged, params (the same parameters as :class:`LGSSMParams`).
    """

    transition_matrix: np.ndarray
    transition_offset: np.ndarray
    observation_matrix: np.ndarray
    observation_offset: np.ndarray
    transition_covariance: np.ndarray
    observation_covariance: np.ndarray
    initial_state_mean: np.ndarray
    initial_state_covariance: np.ndarray
    log_likelihoods: np.ndarray
    log_likelihood: float
    n_iter: int
    converged: bool
    params: LGSSMParams


def fit_linear_gaussian_em(observations, state_dim: int, *, n_iter: int = 50, seed: int = 0,
                           tol: float = 0.0, inputs=None, frozen=(), init: str = "pca",
                           initial_params: LGSSMParams | None = None,
                           dynamics_covariance: str = "full",
                           emission_covariance: str = "full",
                           progress: bool = False) -> LinearGaussianEMResult:
    """Fit a linear-Gaussian state-space model by EM (nSTAT's KF_EM).

    Args:
      observations: (T, N), (K, T, N) or a list of (T_k, N) arrays; NaN marks missing.
      state_dim: latent dimension d >= 1.
      n_iter: EM iterations (at most, when ``tol > 0``).
      seed: seed for ``init='random'``.
      tol: relative log-likelihood tolerance (0 = run all ``n_iter``).
      inputs, frozen, init, initial_params, dynamics_covariance, emission_covariance:
        as in :meth:`LinearGaussianSSM.fit_em`.

    Example:
      >>> import numpy as np
      >>> from spikessm import fit_linear_gaussian_em
      >>> y = np.random.default_rng(0).standard_normal((200, 4)).cumsum(axis=0)
      >>> res = fit_linear_gaussian_em(y, state_dim=2, n_iter=10)
      >>> res.transition_matrix.shape, res.log_likelihoods.shape
      ((2, 2), (10,))
    """
    n_iter = check_int(n_iter, "n_iter", 1)
    q = 0
    if inputs is not None:
        # the input dimension from the inputs themselves (validated, never modified)
        q = as_trial_list(inputs, "inputs", min_length=1, allow_nan=False)[0].shape[1]
    model = LinearGaussianSSM(state_dim, input_dim=q,
                              dynamics_covariance=dynamics_covariance,
                              emission_covariance=emission_covariance)
    fit = model.fit_em(observations, inputs, params=initial_params, frozen=frozen,
                       max_iter=n_iter, tol=tol, init=init, seed=seed, progress=progress)
    p = fit.params
    return LinearGaussianEMResult(
        transition_matrix=p.A, transition_offset=p.b, observation_matrix=p.C,
        observation_offset=p.d, transition_covariance=p.Q, observation_covariance=p.R,
        initial_state_mean=p.m0, initial_state_covariance=p.P0,
        log_likelihoods=fit.log_likelihoods, log_likelihood=fit.log_likelihood,
        n_iter=fit.n_iter, converged=fit.converged, params=p)
