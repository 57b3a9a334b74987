"""Parameters of the Poisson linear dynamical system and its hybrid (Poisson + Gaussian) form.

::

    x_0 ~ N(m0, P0),     x_t = A x_{t-1} + b + w_t,     w_t ~ N(0, Q)
    y_{t,i} ~ Poisson(bin_width * exp(c_i' x_t + d_i + D_i' u_t + H_i' h_{t,i}))
    g_t = Cg x_t + dg + v_t,     v_t ~ N(0, R)          (hybrid only)

``u_t`` (q,) are covariates shared by all neurons, ``h_{t,i}`` (L,) neuron i's own spike
counts in the previous L bins (spike history). ``exp(d_i)`` is neuron i's baseline rate in
Hz when the latent is at zero.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..._checks import check_bin_width
from ..lgssm.params import check_spd, field_array

FIELDS = ("A", "b", "Q", "C", "d", "D", "H", "Cg", "dg", "R", "m0", "P0")


@dataclass(frozen=True)
class PLDSParams:
    """Poisson LDS / hybrid parameters (NumPy float64 arrays).

    A (d, d), b (d,), Q (d, d): dynamics; C (N, d), d (N,): Poisson loadings and log
    baselines (log Hz); D (N, q): covariate weights; H (N, L): spike-history weights;
    Cg (M, d), dg (M,), R (M, M): Gaussian channels (M = 0 for a pure Poisson LDS);
    m0 (d,), P0 (d, d): initial state; bin_width: seconds per bin.

    Built directly (not through :func:`make_plds_params`), the fields are checked the same
    way: real, finite, consistent shapes, Q, P0 (and R when M > 0) symmetric (to rounding)
    and positive definite, bin_width a positive number; ValueError / TypeError name the
    field. Arrays are stored as float64 copies with their values unchanged.
    """

    A: np.ndarray
    b: np.ndarray
    Q: np.ndarray
    C: np.ndarray
    d: np.ndarray
    D: np.ndarray
    H: np.ndarray
    Cg: np.ndarray
    dg: np.ndarray
    R: np.ndarray
    m0: np.ndarray
    P0: np.ndarray
    bin_width: float

    def __post_init__(self):
        for name, value in _checked_fields(self).items():
            object.__setattr__(self, name, value)

    @property
    def state_dim(self) -> int:
        return self.A.shape[0]

    @property
    def n_neurons(self) -> int:
        return self.C.shape[0]

    @property
    def n_gaussian(self) -> int:
        return self.Cg.shape[0]

    @property
    def n_covariates(self) -> int:
        return self.D.shape[1]

    @property
    def history(self) -> int:
        return self.H.shape[1]

    @property
    def baseline_rates(self) -> np.ndarray:
        """exp(d) in Hz: each neuron's rate at x = 0 (no covariates or history)."""
        return np.exp(self.d)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _checked_fields(p) -> dict:
    """Validated float64 copies of the fields of a :class:`PLDSParams`."""
    A = field_array(p.A, "A", (None, None))
    k = A.shape[0]
    if A.shape != (k, k) or k < 1:
        raise ValueError(f"A must be a square (d, d) matrix with d >= 1, got shape {A.shape}")
    C = field_array(p.C, "C", (None, k))
    N = C.shape[0]
    Cg = field_array(p.Cg, "Cg", (None, k))
    M = Cg.shape[0]
    out = {"A": A, "b": field_array(p.b, "b", (k,)), "Q": field_array(p.Q, "Q", (k, k)),
           "C": C, "d": field_array(p.d, "d", (N,)), "D": field_array(p.D, "D", (N, None)),
           "H": field_array(p.H, "H", (N, None)), "Cg": Cg,
           "dg": field_array(p.dg, "dg", (M,)), "R": field_array(p.R, "R", (M, M)),
           "m0": field_array(p.m0, "m0", (k,)), "P0": field_array(p.P0, "P0", (k, k)),
           "bin_width": check_bin_width(p.bin_width)}
    for name in ("Q", "R", "P0"):
        check_spd(out[name], name)
    return out


def _cov(x, name, k):
    M = field_array(x, name, (k, k))
    check_spd(M, name)
    return M


def make_plds_params(*, A, Q, C, d=None, b=None, D=None, H=None, Cg=None, dg=None, R=None,
                     m0=None, P0=None, bin_width: float) -> PLDSParams:
    """Validated :class:`PLDSParams`; omitted pieces default to zeros / identity / empty."""
    bin_width = check_bin_width(bin_width)
    A = np.array(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"A must be a square (d, d) matrix with d >= 1, got shape {A.shape}")
    k = A.shape[0]
    A = field_array(A, "A", (k, k))
    C = np.array(C, dtype=np.float64)
    if C.ndim != 2 or C.shape[1] != k:
        raise ValueError(f"C must have shape (n_neurons, {k}), got {C.shape}")
    N = C.shape[0]
    C = field_array(C, "C", (N, k))
    Q = _cov(Q, "Q", k)
    b = np.zeros(k) if b is None else field_array(b, "b", (k,))
    d = np.zeros(N) if d is None else field_array(d, "d", (N,))
    D = np.zeros((N, 0)) if D is None else np.array(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != N:
        raise ValueError(f"D must have shape ({N}, n_covariates), got {D.shape}")
    D = field_array(D, "D", D.shape)
    H = np.zeros((N, 0)) if H is None else np.array(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != N:
        raise ValueError(f"H must have shape ({N}, history), got {H.shape}")
    H = field_array(H, "H", H.shape)
    if Cg is None:
        Cg, dg, R = np.zeros((0, k)), np.zeros(0), np.zeros((0, 0))
    else:
        Cg = np.array(Cg, dtype=np.float64)
        if Cg.ndim != 2 or Cg.shape[1] != k:
            raise ValueError(f"Cg must have shape (n_gaussian, {k}), got {Cg.shape}")
        M = Cg.shape[0]
        Cg = field_array(Cg, "Cg", (M, k))
        dg = np.zeros(M) if dg is None else field_array(dg, "dg", (M,))
        if R is None:
            raise ValueError("R (Gaussian channel covariance) is required when Cg is given")
        R = _cov(R, "R", M)
    m0 = np.zeros(k) if m0 is None else field_array(m0, "m0", (k,))
    P0 = np.eye(k) if P0 is None else _cov(P0, "P0", k)
    return PLDSParams(A, b, Q, C, d, D, H, Cg, dg, R, m0, P0, float(bin_width))


def to_jax_dict(p: PLDSParams) -> dict:
    """Device-side dict: the Poisson offset weights are stacked as W = [d, D, H] (N, p)."""
    W = np.concatenate([p.d[:, None], p.D, p.H], axis=1)
    out = {"A": p.A, "b": p.b, "Q": p.Q, "C": p.C, "W": W, "m0": p.m0, "P0": p.P0}
    if p.n_gaussian:
        out.update(Cg=p.Cg, dg=p.dg, R=p.R)
    return out


def from_jax_dict(P: dict, q: int, L: int, bin_width: float, k: int | None = None) -> PLDSParams:
    """Inverse of :func:`to_jax_dict` (``k`` selects one restart of a batched dict)."""
    g = {n: np.array(v if k is None else v[k], dtype=np.float64) for n, v in P.items()}
    W = g["W"]
    d = g["A"].shape[0]
    Cg = g.get("Cg", np.zeros((0, d)))
    return PLDSParams(g["A"], g["b"], g["Q"], g["C"], W[:, 0], W[:, 1:1 + q],
                      W[:, 1 + q:1 + q + L], Cg, g.get("dg", np.zeros(0)),
                      g.get("R", np.zeros((0, 0))), g["m0"], g["P0"], float(bin_width))
