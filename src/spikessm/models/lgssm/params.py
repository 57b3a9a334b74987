"""Parameters of the linear-Gaussian state-space model and their validation.

    x_0 ~ N(m0, P0)
    x_t = A x_{t-1} + b + B u_t + w_t,   w_t ~ N(0, Q)
    y_t = C x_t + d + D u_t + v_t,       v_t ~ N(0, R)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..._checks import as_float_array

PARAM_NAMES = ("A", "b", "B", "Q", "C", "d", "D", "R", "m0", "P0")
COV_TYPES = ("full", "diagonal", "isotropic")


@dataclass(frozen=True)
class LGSSMParams:
    """LG-SSM parameters as plain float64 NumPy arrays.

    A (d, d), b (d,), B (d, q), Q (d, d), C (N, d), d (N,), D (N, q), R (N, N),
    m0 (d,), P0 (d, d). R and Q are always stored as full matrices, whatever their
    structure.
    """

    A: np.ndarray
    b: np.ndarray
    B: np.ndarray
    Q: np.ndarray
    C: np.ndarray
    d: np.ndarray
    D: np.ndarray
    R: np.ndarray
    m0: np.ndarray
    P0: np.ndarray

    def __post_init__(self):
        for name, value in check_fields(self).items():
            object.__setattr__(self, name, value)

    @property
    def state_dim(self) -> int:
        return self.A.shape[0]

    @property
    def emission_dim(self) -> int:
        return self.C.shape[0]

    @property
    def input_dim(self) -> int:
        return self.B.shape[1]

    def replace(self, **changes) -> LGSSMParams:
        return make_params(**{**self.as_dict(), **changes})

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in PARAM_NAMES}


SYM_RTOL = 1e-8   # |M - M'| allowed, relative to max |M|, for covariances built directly


def field_array(x, name: str, shape: tuple) -> np.ndarray:
    """A finite float64 copy of ``x`` with ``shape`` (None: any length on that axis);
    TypeError / ValueError naming ``name``."""
    a = as_float_array(x, name)
    if a.ndim != len(shape) or any(n is not None and m != n for m, n in zip(a.shape, shape)):
        want = "(" + ", ".join("?" if n is None else str(n) for n in shape) + \
            ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return a


def check_spd(M: np.ndarray, name: str) -> None:
    """``M`` (finite, square) symmetric to rounding and positive definite: the Cholesky
    factor of its symmetrised form exists and is finite (fitted covariances are symmetric
    only to rounding, so the symmetry check is relative)."""
    if M.size == 0:
        return
    scale = np.max(np.abs(M))
    if np.max(np.abs(M - M.T)) > SYM_RTOL * scale:
        raise ValueError(f"{name} must be symmetric")
    try:
        L = np.linalg.cholesky(0.5 * M + 0.5 * M.T)
    except np.linalg.LinAlgError:
        L = None
    if L is None or not np.all(np.isfinite(L)):
        raise ValueError(f"{name} must be positive definite")


def check_fields(p) -> dict:
    """Validated float64 copies of the fields of an :class:`LGSSMParams`."""
    A = field_array(p.A, "A", (None, None))
    dim = A.shape[0]
    if A.shape != (dim, dim) or dim < 1:
        raise ValueError(f"A must be square (d, d) with d >= 1, got shape {A.shape}")
    C = field_array(p.C, "C", (None, dim))
    N = C.shape[0]
    if N < 1:
        raise ValueError(f"C must be (N, {dim}) with N >= 1, got shape {C.shape}")
    B = field_array(p.B, "B", (dim, None))
    q = B.shape[1]
    out = {"A": A, "b": field_array(p.b, "b", (dim,)), "B": B,
           "Q": field_array(p.Q, "Q", (dim, dim)), "C": C, "d": field_array(p.d, "d", (N,)),
           "D": field_array(p.D, "D", (N, q)), "R": field_array(p.R, "R", (N, N)),
           "m0": field_array(p.m0, "m0", (dim,)), "P0": field_array(p.P0, "P0", (dim, dim))}
    for name in ("Q", "R", "P0"):
        check_spd(out[name], name)
    return out


def unchecked(cls, **values):
    """An instance of the frozen dataclass ``cls`` built without ``__post_init__`` (internal:
    intermediate fit values whose own checks raise the documented errors)."""
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def make_params(*, A, C, Q, R, b=None, B=None, d=None, D=None, m0=None, P0=None,
                input_dim: int | None = None) -> LGSSMParams:
    """Build validated :class:`LGSSMParams` (copies every array to float64).

    R and Q may be given as full matrices, as vectors of variances (diagonal) or as
    scalars (isotropic). Missing b, d, m0 default to zeros, P0 to the identity, B and D to
    zero matrices with ``input_dim`` columns (default 0).
    """
    def real(x, name):
        if isinstance(x, (str, bytes)) or np.iscomplexobj(x):
            raise TypeError(f"{name} must be an array of real numbers")
        try:
            return np.array(x, dtype=np.float64, copy=True)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be an array of real numbers") from None

    def arr(x, name, ndim):
        a = real(x, name)
        if a.ndim != ndim:
            raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        return a

    A = arr(A, "A", 2)
    dim = A.shape[0]
    if A.shape != (dim, dim) or dim < 1:
        raise ValueError(f"A must be square (d, d) with d >= 1, got shape {A.shape}")
    C = arr(C, "C", 2)
    if C.shape[1] != dim or C.shape[0] < 1:
        raise ValueError(f"C must be (N, {dim}), got shape {C.shape}")
    N = C.shape[0]

    def cov(x, name, n):
        if x is None:
            raise ValueError(f"{name} is required")
        a = real(x, name)
        if a.ndim == 0:
            a = a * np.eye(n)
        elif a.ndim == 1:
            if a.shape != (n,):
                raise ValueError(f"{name} as a vector must have length {n}, got {a.shape}")
            a = np.diag(a)
        a = arr(a, name, 2)
        if a.shape != (n, n):
            raise ValueError(f"{name} must be ({n}, {n}), got shape {a.shape}")
        check_spd(a, name)
        return 0.5 * (a + a.T)

    Q = cov(Q, "Q", dim)
    R = cov(R, "R", N)
    P0 = cov(np.eye(dim) if P0 is None else P0, "P0", dim)
    b = np.zeros(dim) if b is None else arr(b, "b", 1)
    d = np.zeros(N) if d is None else arr(d, "d", 1)
    m0 = np.zeros(dim) if m0 is None else arr(m0, "m0", 1)
    for v, name, n in ((b, "b", dim), (d, "d", N), (m0, "m0", dim)):
        if v.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {v.shape}")
    if input_dim is not None and (isinstance(input_dim, bool) or not isinstance(
            input_dim, (int, np.integer)) or input_dim < 0):
        raise ValueError(f"input_dim must be an integer >= 0, got {input_dim!r}")
    B = None if B is None else arr(B, "B", 2)
    D = None if D is None else arr(D, "D", 2)
    if B is None and D is None:
        q = input_dim or 0
    else:
        q = B.shape[1] if B is not None else D.shape[1]
        if input_dim is not None and input_dim != q:
            raise ValueError(f"input_dim={input_dim} does not match B/D with {q} columns")
    B = np.zeros((dim, q)) if B is None else B
    D = np.zeros((N, q)) if D is None else D
    if B.shape != (dim, q):
        raise ValueError(f"B must be ({dim}, q), got shape {B.shape}")
    if D.shape != (N, q):
        raise ValueError(f"D must be ({N}, {q}) to match B, got shape {D.shape}")
    return LGSSMParams(A=A, b=b, B=B, Q=Q, C=C, d=d, D=D, R=R, m0=m0, P0=P0)


def check_cov_type(value, name):
    if not isinstance(value, str) or value not in COV_TYPES:
        raise ValueError(f"{name} must be one of {COV_TYPES}, got {value!r}")
    return value


def check_frozen(frozen) -> tuple[str, ...]:
    if isinstance(frozen, str):
        frozen = (frozen,)
    try:
        frozen = tuple(frozen)
    except TypeError:
        raise TypeError("frozen must be a sequence of parameter names") from None
    bad = [f for f in frozen if f not in PARAM_NAMES]
    if bad:
        raise ValueError(f"frozen contains unknown parameter name(s) {bad}; "
                         f"choose from {PARAM_NAMES}")
    return tuple(sorted(set(frozen)))


def structure(M: np.ndarray, kind: str) -> np.ndarray:
    """Project a covariance onto a structure ('full', 'diagonal', 'isotropic')."""
    if kind == "full":
        return M
    if kind == "diagonal":
        return np.diag(np.diag(M))
    return np.trace(M) / M.shape[0] * np.eye(M.shape[0])


def replace_fields(p: LGSSMParams, **kw) -> LGSSMParams:
    """Replace fields without re-validating (internal, arrays already checked; EM results
    are checked for finiteness by the caller, which raises FloatingPointError)."""
    return unchecked(type(p), **{**{f.name: getattr(p, f.name)
                                    for f in dataclasses.fields(p)}, **kw})
