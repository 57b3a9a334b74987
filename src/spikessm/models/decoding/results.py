"""Result containers of the decoding filters (frozen dataclasses of NumPy arrays)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm


def _intervals(means, covs, level):
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    z = norm.ppf(0.5 + level / 2.0)
    sd = np.sqrt(np.clip(np.diagonal(covs, axis1=-2, axis2=-1), 0.0, None))
    return means - z * sd, means + z * sd


@dataclass(frozen=True)
class PPAFResult:
    """Output of the point-process adaptive filter and its smoothers.

    filtered_means (T, d), filtered_covs (T, d, d): p(x_t | y_0..y_t) (Gaussian);
    predicted_means (T, d), predicted_covs (T, d, d): p(x_t | y_0..y_{t-1});
    smoothed_means (T, d), smoothed_covs (T, d, d): p(x_t | y_0..y_{T-1}) for the
    fixed-interval smoother, p(x_t | y_0..y_{t+lag}) for the fixed-lag smoother
    (``lag`` set), None for the filter alone;
    log_likelihoods (T,): approximate log p(y_t | y_<t) in nats (the Gaussian integral of
    the prior and the quadratic expansion of the log-likelihood at the linearisation
    point: the prior mean for the classic filter, the posterior mode (Laplace) for the
    iterated one); marginal_log_likelihood: their sum;
    n_fallback: steps where the observed information was indefinite and the expected
    (Fisher) information was used; newton_iters (T,): Newton iterations per step
    (0 for the classic filter).
    """

    filtered_means: np.ndarray
    filtered_covs: np.ndarray
    predicted_means: np.ndarray
    predicted_covs: np.ndarray
    log_likelihoods: np.ndarray
    marginal_log_likelihood: float
    smoothed_means: np.ndarray | None = None
    smoothed_covs: np.ndarray | None = None
    lag: int | None = None
    n_fallback: int = 0
    newton_iters: np.ndarray | None = None

    @property
    def means(self) -> np.ndarray:
        """Smoothed means when present, else filtered means: (T, d)."""
        return self.filtered_means if self.smoothed_means is None else self.smoothed_means

    @property
    def covs(self) -> np.ndarray:
        """Covariances matching :attr:`means`: (T, d, d)."""
        return self.filtered_covs if self.smoothed_covs is None else self.smoothed_covs

    def intervals(self, level: float = 0.95):
        """Per-coordinate central credible intervals of :attr:`means`: (lower, upper),
        each (T, d)."""
        return _intervals(self.means, self.covs, level)


@dataclass(frozen=True)
class HybridFilterResult:
    """Output of the point-process hybrid filter (PPHF).

    mode_probabilities (T, M): P(s_t = j | y_0..y_t), modes 0-based; modes (T,) int:
    their argmax; means (T, d), covs (T, d, d): moments of the Gaussian mixture over
    modes; mode_means (T, M, d), mode_covs (T, M, d, d): per-mode filtered moments;
    log_likelihoods (T,), marginal_log_likelihood: approximate log p(y_t | y_<t) and
    its sum (nats); n_fallback: mode-steps that used the Fisher information.
    """

    mode_probabilities: np.ndarray
    modes: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    mode_means: np.ndarray
    mode_covs: np.ndarray
    log_likelihoods: np.ndarray
    marginal_log_likelihood: float
    n_fallback: int = 0

    def intervals(self, level: float = 0.95):
        """Per-coordinate central intervals of the mixture's Gaussian summary."""
        return _intervals(self.means, self.covs, level)


@dataclass(frozen=True)
class CMGFPoissonFilterResult:
    """nSTAT-compatible output of :func:`cmgf_poisson_filter` / :func:`cmgf_poisson_smoother`.

    state_means (T, d) and state_covariances (T, d, d): filtered (filter) or smoothed
    (smoother) moments; marginal_log_likelihood: sum over t of the approximate
    log p(y_t | y_<t) (Poisson constants included; see :class:`PPAFResult`).
    """

    state_means: np.ndarray
    state_covariances: np.ndarray
    marginal_log_likelihood: float


@dataclass(frozen=True)
class StaticDecoderResult:
    """Per-bin Bayesian decoder output.

    means (T, dim) posterior means; maps (T, dim) posterior modes (grid points);
    grid (G, dim) the decoding grid; in_hpd (T,) bool or None: whether the true
    position's grid point lies in the ``level`` highest-posterior-density set (only when
    truth was given); hpd_level.
    """

    means: np.ndarray
    maps: np.ndarray
    grid: np.ndarray
    in_hpd: np.ndarray | None
    hpd_level: float
