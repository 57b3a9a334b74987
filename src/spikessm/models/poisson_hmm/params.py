"""Parameters of the Poisson hidden Markov model and their validation.

    z_0 ~ Categorical(psi),   z_t | z_{t-1} = i ~ Categorical(A[i])
    y_tc | z_t = k ~ Poisson(rates[k, c] * dt)      (rates in Hz, dt in seconds)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..._checks import as_float_array, check_bin_width

ROW_TOL = 1e-8  # |row sum - 1| allowed for probability vectors given by users


@dataclass(frozen=True)
class PoissonHMMParams:
    """Poisson HMM parameters as plain float64 NumPy arrays.

    initial_probs (K,): psi, sums to 1. transition_matrix (K, K): A[i, j] =
    p(z_t = j | z_{t-1} = i), rows sum to 1. rates (K, C): firing rate of channel c in
    state k, in Hz (expected count per bin = rates * dt).
    """

    initial_probs: np.ndarray
    transition_matrix: np.ndarray
    rates: np.ndarray

    def __post_init__(self):
        # validated float64 copies, values unchanged (make_params also renormalises)
        psi, A, rates = _checked(self.initial_probs, self.transition_matrix, self.rates)
        object.__setattr__(self, "initial_probs", psi)
        object.__setattr__(self, "transition_matrix", A)
        object.__setattr__(self, "rates", rates)

    @property
    def n_states(self) -> int:
        return self.rates.shape[0]

    @property
    def n_channels(self) -> int:
        return self.rates.shape[1]

    def transition_rates(self, dt: float) -> np.ndarray:
        """Continuous-time transition rates in Hz: off-diagonal A / dt, zero diagonal."""
        R = self.transition_matrix / float(dt)
        return R - np.diag(np.diag(R))

    def permute(self, perm) -> PoissonHMMParams:
        """Relabel the states: new state k is old state ``perm[k]``."""
        perm = np.asarray(perm)
        K = self.n_states
        if perm.shape != (K,) or sorted(perm.tolist()) != list(range(K)):
            raise ValueError(f"perm must be a permutation of 0..{K - 1}, got {perm!r}")
        return PoissonHMMParams(self.initial_probs[perm].copy(),
                                self.transition_matrix[np.ix_(perm, perm)].copy(),
                                self.rates[perm].copy())


def _real(x, name) -> np.ndarray:
    a = as_float_array(x, name)   # TypeError for None, strings, complex, non-numbers
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return a


def make_params(initial_probs, transition_matrix, rates) -> PoissonHMMParams:
    """Build validated :class:`PoissonHMMParams` (copies every array to float64).

    Raises ValueError when shapes disagree, an entry is negative, or psi / a row of A does
    not sum to 1 (to within 1e-8); rows are then renormalised exactly.
    """
    psi, A, rates = _checked(initial_probs, transition_matrix, rates)
    return PoissonHMMParams(psi / psi.sum(), A / A.sum(axis=1, keepdims=True), rates)


def _checked(initial_probs, transition_matrix, rates):
    """float64 copies of the three arrays after every check of :func:`make_params` (the
    dataclass runs it too, so parameters built directly are checked the same way)."""
    rates = _real(rates, "rates")
    if rates.ndim != 2 or rates.shape[0] < 1 or rates.shape[1] < 1:
        raise ValueError(f"rates must be 2-D (n_states, n_channels), got shape {rates.shape}")
    K = rates.shape[0]
    if np.any(rates < 0):
        raise ValueError("rates must be >= 0 (Hz)")
    psi = _real(initial_probs, "initial_probs")
    if psi.shape != (K,):
        raise ValueError(f"initial_probs must have shape ({K},), got {psi.shape}")
    A = _real(transition_matrix, "transition_matrix")
    if A.shape != (K, K):
        raise ValueError(f"transition_matrix must have shape ({K}, {K}), got {A.shape}")
    for v, name in ((psi, "initial_probs"), (A, "transition_matrix")):
        if np.any(v < 0):
            raise ValueError(f"{name} must be non-negative")
    if abs(psi.sum() - 1.0) > ROW_TOL:
        raise ValueError(f"initial_probs must sum to 1, got {psi.sum():.10g}")
    bad = np.flatnonzero(np.abs(A.sum(axis=1) - 1.0) > ROW_TOL)
    if bad.size:
        raise ValueError(f"transition_matrix rows must sum to 1; row(s) {bad.tolist()} sum "
                         f"to {A.sum(axis=1)[bad].round(10).tolist()}")
    return psi, A, rates


def transition_matrix_from_rates(rates_hz, dt: float) -> np.ndarray:
    """Discrete-time A from continuous-time off-diagonal transition rates (Hz) as in the
    tutorial: A[i, j] = rate_ij * dt for i != j, A[i, i] = 1 - sum of the row."""
    R = _real(rates_hz, "rates_hz")
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"rates_hz must be square (K, K), got shape {R.shape}")
    dt = check_bin_width(dt, "dt")   # a positive, finite number (not a bool or string)
    A = R * dt
    np.fill_diagonal(A, 0.0)
    if np.any(A < 0):
        raise ValueError("rates_hz must be non-negative off the diagonal")
    diag = 1.0 - A.sum(axis=1)
    if np.any(diag < 0):
        raise ValueError("rates_hz * dt gives rows whose off-diagonal mass exceeds 1")
    return A + np.diag(diag)
