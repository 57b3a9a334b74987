"""nSTAT-compatible CMGF Poisson filter and smoother (thin functions over the PPAF).

nSTAT-python's ``cmgf_poisson_filter(observations, transition_matrix, observation_matrix,
transition_covariance, initial_state_mean, initial_state_covariance)`` runs Dynamax's
conditional-moments Gaussian filter with EKF integrals on ``y_t ~ Poisson(exp(C x_t))``.
For this log-linear model the EKF update is exactly the point-process adaptive filter's
(``P+^-1 = P-^-1 + C' diag(lam) C``, ``m+ = m- + P+ C'(y - lam)``, ``lam = exp(C m-)``),
so these functions are the same filter (:func:`spikessm.models.decoding.ppaf_filter`),
with the same positional arguments, plus keyword options nSTAT lacks: a per-neuron
``baseline`` (log-rate offset), a ``bin_width``, and an iterated (posterior-mode) update.

``initial_state_mean`` / ``initial_state_covariance`` are the prior of the first bin's
state (as in nSTAT's CMGF and Dynamax). ``marginal_log_likelihood`` is the sum over bins of
the Gaussian (classic) or Laplace (iterated) approximation of log p(y_t | y_<t), Poisson
constants included; nSTAT / Dynamax report instead the sum of Poisson log-pmfs at the
predicted rates exp(C m-), a different quantity.
"""

from __future__ import annotations

from .ppaf import _decode, ppaf_filter, ppaf_smoother
from .results import CMGFPoissonFilterResult

NAMES = {"spikes": "observations", "A": "transition_matrix", "C": "observation_matrix",
         "Q": "transition_covariance", "m0": "initial_state_mean",
         "P0": "initial_state_covariance", "max_iter": "num_iter"}


def _call(fn, observations, A, C, Q, x0, P0, baseline, bin_width, iterated, num_iter, tol):
    if C is None:
        raise TypeError("observation_matrix must be an (N, d) array, got None")
    mode = "smooth" if fn is ppaf_smoother else "filter"
    return _decode(observations, A, Q, x0, P0, C=C, baseline=baseline, log_intensity=None,
                   intensity_params=None, bin_width=bin_width, observation="poisson",
                   iterated=iterated, max_iter=num_iter, tol=tol, mode=mode, names=NAMES)


def cmgf_poisson_filter(observations, transition_matrix, observation_matrix,
                        transition_covariance, initial_state_mean, initial_state_covariance,
                        *, baseline=None, bin_width=1.0, iterated=False, num_iter=30,
                        tol=1e-10) -> CMGFPoissonFilterResult:
    """Gaussian filter for ``x_t = A x_{t-1} + w_t``, ``y_t ~ Poisson(dt exp(C x_t + b))``.

    Args:
      observations: (T, N) counts ((T,) is one neuron); NaN = missing.
      transition_matrix A (d, d); observation_matrix C (N, d); transition_covariance Q
        (d, d) positive definite; initial_state_mean (d,), initial_state_covariance (d, d):
        prior of the first bin's state.
      baseline: (N,) or (T, N) log-rate offsets b (default 0, as nSTAT); bin_width dt
        (default 1, as nSTAT); iterated: re-linearise at the posterior mode (Newton, at
        most ``num_iter`` iterations, tolerance ``tol``).

    Returns:
      :class:`CMGFPoissonFilterResult` with the filtered moments.
    """
    res = _call(ppaf_filter, observations, transition_matrix, observation_matrix,
                transition_covariance, initial_state_mean, initial_state_covariance, baseline,
                bin_width, iterated, num_iter, tol)
    return CMGFPoissonFilterResult(res.filtered_means, res.filtered_covs,
                                   res.marginal_log_likelihood)


def cmgf_poisson_smoother(observations, transition_matrix, observation_matrix,
                          transition_covariance, initial_state_mean, initial_state_covariance,
                          *, baseline=None, bin_width=1.0, iterated=False, num_iter=30,
                          tol=1e-10) -> CMGFPoissonFilterResult:
    """The filter of :func:`cmgf_poisson_filter` followed by the RTS smoother; same
    arguments. Returns :class:`CMGFPoissonFilterResult` with the smoothed moments (the
    marginal log-likelihood is the filter's)."""
    res = _call(ppaf_smoother, observations, transition_matrix, observation_matrix,
                transition_covariance, initial_state_mean, initial_state_covariance, baseline,
                bin_width, iterated, num_iter, tol)
    return CMGFPoissonFilterResult(res.smoothed_means, res.smoothed_covs,
                                   res.marginal_log_likelihood)


__all__ = ["cmgf_poisson_filter", "cmgf_poisson_smoother"]
