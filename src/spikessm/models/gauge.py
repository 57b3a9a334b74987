"""Gauge (identifiability) tools for linear-latent state-space models.

Model convention
----------------
Latent ``x_t`` in ``R^d`` and observations ``y_t`` in ``R^N``::

    x_t = A x_{t-1} + b + w_t,    w_t ~ N(0, Q)
    y_t = C x_t + d + v_t,        C has shape (N, d)

with initial state ``x_0 ~ N(m0, P0)``.  For any invertible ``S`` (shape ``(d, d)``) the
change of latent basis ``x' = S x`` gives an observationally equivalent model::

    A' = S A S^-1,  b' = S b,  Q' = S Q S^T,  C' = C S^-1,
    m0' = S m0,     P0' = S P0 S^T,  B' = S B  (input matrix, shape (d, p)),

while ``d``, ``R`` and any observation-side input matrix ``D`` are unchanged.  Latent
trajectories map as ``mu' = mu @ S.T`` (``mu`` of shape ``(T, d)``) and covariances as
``S Sigma S^T``.

Because of this gauge freedom the latent parameters are only identified up to ``S``.  This
module provides

* a *canonical form* (:func:`canonical_transform`, :func:`canonicalize`) that fixes the
  gauge up to measure-zero ties, so that fitted and true models can be compared entrywise;
* latent alignment (:func:`procrustes_align`, :func:`affine_align`);
* gauge-invariant comparisons (:func:`subspace_angles`, :func:`max_subspace_angle`,
  :func:`eigenvalue_match`).

Everything is plain NumPy/SciPy in float64.  Inputs are never modified; all returned
arrays are new.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .._checks import check_flag

__all__ = [
    "affine_align",
    "canonical_transform",
    "canonicalize",
    "eigenvalue_match",
    "max_subspace_angle",
    "procrustes_align",
    "subspace_angles",
    "transform_latents",
    "transform_params",
]


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def _as_array(x: Any, name: str, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Return a fresh float64 copy of ``x`` after checking type, rank and finiteness."""
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested sequences etc.
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real-valued, got complex dtype {arr.dtype}")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    arr = np.array(arr, dtype=np.float64, copy=True)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            want = " or ".join(str(k) for k in allowed)
            raise ValueError(f"{name} must be {want}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return arr


def _check_shape(arr: np.ndarray, name: str, shape: tuple[int, ...]) -> None:
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")


def _check_latent_dim(d: int, name: str) -> None:
    if d < 1:
        raise ValueError(f"{name} implies latent dimension d={d}; need d >= 1")


def _spd_eigh(M: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decompose a symmetric positive-definite matrix, validating both properties."""
    scale = max(1.0, float(np.max(np.abs(M))))
    if not np.allclose(M, M.T, rtol=0.0, atol=1e-8 * scale):
        raise ValueError(f"{name} must be symmetric")
    evals, evecs = np.linalg.eigh(0.5 * (M + M.T))
    tol = M.shape[0] * np.finfo(np.float64).eps * max(float(np.max(np.abs(evals))), 1e-300)
    if evals[0] <= tol:
        raise ValueError(f"{name} must be positive definite (smallest eigenvalue {evals[0]:.3g})")
    return evals, evecs


def _finite(out: np.ndarray, names: str) -> np.ndarray:
    """``out`` if every entry is finite, else ValueError naming the inputs whose magnitudes
    overflowed float64 (the inputs themselves were finite)."""
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{names}: the result overflows float64 (entries too large or too "
                         "small in magnitude); rescale them")
    return out


def _check_invertible(S: np.ndarray, name: str) -> None:
    if np.linalg.cond(S) > 1.0 / np.finfo(np.float64).eps:
        raise ValueError(f"{name} must be invertible (it is singular to working precision)")


# ---------------------------------------------------------------------------
# canonical form
# ---------------------------------------------------------------------------


def canonical_transform(
    C: np.ndarray, Q: np.ndarray | None = None, P: np.ndarray | None = None
) -> np.ndarray:
    """Change of basis ``S`` (shape ``(d, d)``) that puts a model into canonical form.

    Parameters
    ----------
    C : array, shape (N, d)
        Observation (loading) matrix.
    Q : array, shape (d, d), optional
        Latent noise covariance (symmetric positive definite).
    P : array, shape (d, d), optional
        Alternative latent covariance to whiten with, e.g. the stationary covariance or
        the average posterior second moment ``(1/T) sum_t E[x_t x_t^T]``.  Takes
        precedence over ``Q``.

    Returns
    -------
    S : array, shape (d, d)
        Invertible matrix; apply it with ``x' = S x`` (see :func:`transform_params`).

    Notes
    -----
    The canonical gauge is defined in three steps, composed as ``S = D V^T W``:

    1. **Whitening** ``W``: with ``M = P`` if given, else ``Q``, else the identity,
       ``W = M^{-1/2}`` (symmetric inverse square root), so ``W M W^T = I``.  This fixes the
       gauge up to an orthogonal matrix.
    2. **Rotation** ``V^T``: with ``C_1 = C W^{-1}`` and SVD ``C_1 = U diag(s) V^T``
       (``s`` descending), rotating by ``V^T`` makes ``C'^T C' = diag(s^2)`` with
       descending diagonal.  This fixes the gauge up to column signs (and permutations
       within groups of equal singular values).
    3. **Signs** ``D = diag(+-1)``: each column of ``C' = C S^{-1}`` is flipped so that its
       entry of largest absolute value is positive.

    The result is unique -- two gauge-equivalent models map to identical canonical
    parameters -- whenever the singular values of ``C_1`` are distinct and nonzero and the
    largest-magnitude entry of each canonical column is unique (true generically).  With
    ``N < d`` or repeated singular values the affected directions are not identified and
    the returned basis for them is arbitrary (but still valid).  The whitening covariance
    ``M`` is preserved as ``S M S^T = I``.
    """
    C = _as_array(C, "C", ndim=2)
    N, d = C.shape
    _check_latent_dim(d, "C")
    if N < 1:
        raise ValueError(f"C must have at least one row, got shape {C.shape}")

    if P is not None:
        M, mname = _as_array(P, "P", ndim=2), "P"
    elif Q is not None:
        M, mname = _as_array(Q, "Q", ndim=2), "Q"
    else:
        M, mname = None, ""

    if M is None:
        W = np.eye(d)
        W_inv = np.eye(d)
    else:
        _check_shape(M, mname, (d, d))
        evals, evecs = _spd_eigh(M, mname)
        root = np.sqrt(evals)
        W = (evecs / root) @ evecs.T
        W_inv = (evecs * root) @ evecs.T

    names = "C" if M is None else f"C and {mname}"
    with np.errstate(all="ignore"):
        C1 = _finite(C @ W_inv, names)
        try:
            _, _, Vt = np.linalg.svd(C1, full_matrices=True)  # Vt: rows ordered by s desc
        except np.linalg.LinAlgError:
            raise ValueError(f"{names}: the SVD did not converge (entries too large or too "
                             "small in magnitude)") from None
    C2 = C1 @ Vt.T
    signs = np.ones(d)
    for j in range(d):
        col = C2[:, j]
        i = int(np.argmax(np.abs(col)))
        if col[i] < 0.0:
            signs[j] = -1.0
    with np.errstate(all="ignore"):
        return _finite((signs[:, None] * Vt) @ W, names)


def transform_params(params: Mapping[str, Any], S: np.ndarray) -> dict[str, Any]:
    """Apply the latent change of basis ``x' = S x`` to a parameter dictionary.

    Parameters
    ----------
    params : mapping
        Keys among ``'A'`` (d, d), ``'b'`` (d,), ``'Q'`` (d, d), ``'C'`` (N, d),
        ``'m0'`` (d,), ``'P0'`` (d, d), ``'B'`` (d, p) are transformed as
        ``A' = S A S^-1``, ``b' = S b``, ``Q' = S Q S^T``, ``C' = C S^-1``,
        ``m0' = S m0``, ``P0' = S P0 S^T``, ``B' = S B``.  All other keys (e.g. ``'d'``,
        ``'R'``, ``'D'``) are passed through unchanged (NumPy arrays are copied).
    S : array, shape (d, d)
        Invertible change of basis.

    Returns
    -------
    dict
        New parameter dictionary.
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict/mapping, got {type(params).__name__}")
    S = _as_array(S, "S", ndim=2)
    d = S.shape[0]
    _check_latent_dim(d, "S")
    _check_shape(S, "S", (d, d))
    _check_invertible(S, "S")
    with np.errstate(all="ignore"):
        S_inv = _finite(np.linalg.inv(S), "S")
        out = _transform_items(params, S, S_inv, d)
    for key in ("A", "Q", "P0", "b", "m0", "C", "B"):
        if key in out:
            _finite(out[key], f"params[{key!r}] and S")
    return out


def _transform_items(params: Mapping[str, Any], S: np.ndarray, S_inv: np.ndarray,
                     d: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "A":
            A = _as_array(value, "params['A']", ndim=2)
            _check_shape(A, "params['A']", (d, d))
            out[key] = S @ A @ S_inv
        elif key in ("Q", "P0"):
            M = _as_array(value, f"params[{key!r}]", ndim=2)
            _check_shape(M, f"params[{key!r}]", (d, d))
            M2 = S @ M @ S.T
            out[key] = 0.5 * (M2 + M2.T)
        elif key in ("b", "m0"):
            v = _as_array(value, f"params[{key!r}]", ndim=1)
            _check_shape(v, f"params[{key!r}]", (d,))
            out[key] = S @ v
        elif key == "C":
            C = _as_array(value, "params['C']", ndim=2)
            if C.shape[1] != d:
                raise ValueError(f"params['C'] must have shape (N, {d}) to match S, got {C.shape}")
            out[key] = C @ S_inv
        elif key == "B":
            B = _as_array(value, "params['B']", ndim=2)
            if B.shape[0] != d:
                raise ValueError(f"params['B'] must have shape ({d}, p) to match S, got {B.shape}")
            out[key] = S @ B
        else:
            out[key] = value.copy() if isinstance(value, np.ndarray) else value
    return out


def canonicalize(
    params: Mapping[str, Any], P: np.ndarray | None = None
) -> tuple[dict[str, Any], np.ndarray]:
    """Put a parameter dictionary into the canonical gauge of :func:`canonical_transform`.

    Parameters
    ----------
    params : mapping
        Must contain ``'C'`` (N, d); may contain ``'A'`` (d, d), ``'b'`` (d,), ``'Q'`` (d, d),
        ``'m0'`` (d,), ``'P0'`` (d, d), ``'B'`` (d, p) and arbitrary pass-through keys.
    P : array, shape (d, d), optional
        Covariance to whiten with (in the *original* basis); defaults to ``params['Q']``
        if present, else no whitening.

    Returns
    -------
    (new_params, S)
        ``new_params`` is a new dict (see :func:`transform_params`); ``S`` has shape (d, d).
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict/mapping, got {type(params).__name__}")
    if "C" not in params:
        raise ValueError("params must contain the observation matrix 'C'")
    C = _as_array(params["C"], "params['C']", ndim=2)
    Q = params.get("Q")
    if Q is not None:
        Q = _as_array(Q, "params['Q']", ndim=2)
        _check_shape(Q, "params['Q']", (C.shape[1], C.shape[1]))
    S = canonical_transform(C, Q=Q, P=P)
    return transform_params(params, S), S


def transform_latents(
    mean: np.ndarray, S: np.ndarray, cov: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Map latent means (and covariances) into the basis ``x' = S x``.

    Parameters
    ----------
    mean : array, shape (T, d)
    S : array, shape (d, d)
    cov : array, shape (T, d, d) or (d, d), optional

    Returns
    -------
    (mean_new, cov_new)
        ``mean_new = mean @ S.T`` with shape (T, d); ``cov_new = S cov S^T`` with the shape
        of ``cov``, or ``None`` when ``cov`` is not given.
    """
    mean = _as_array(mean, "mean", ndim=2)
    S = _as_array(S, "S", ndim=2)
    d = mean.shape[1]
    _check_latent_dim(d, "mean")
    _check_shape(S, "S", (d, d))
    with np.errstate(all="ignore"):
        mean_new = _finite(mean @ S.T, "mean and S")
    if cov is None:
        return mean_new, None
    cov = _as_array(cov, "cov", ndim=(2, 3))
    if cov.ndim == 2:
        _check_shape(cov, "cov", (d, d))
    else:
        _check_shape(cov, "cov", (mean.shape[0], d, d))
    with np.errstate(all="ignore"):
        cov_new = S @ cov @ S.T if cov.ndim == 2 else np.einsum("ij,tjk,lk->til", S, cov, S)
        return mean_new, _finite(cov_new, "cov and S")


# ---------------------------------------------------------------------------
# latent alignment
# ---------------------------------------------------------------------------


def _check_pair(X: Any, Y: Any, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    X = _as_array(X, "X", ndim=2)
    Y = _as_array(Y, "Y", ndim=2)
    _check_latent_dim(X.shape[1], "X")
    _check_shape(Y, "Y", X.shape)
    if X.shape[0] < min_rows:
        raise ValueError(f"X needs at least {min_rows} rows (time points), got {X.shape[0]}")
    return X, Y


def procrustes_align(
    X: np.ndarray, Y: np.ndarray, allow_scaling: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal Procrustes alignment of fitted latents ``X`` onto reference ``Y``.

    Solves ``min_{R^T R = I, s} || (X - mean_X) R s - (Y - mean_Y) ||_F``.  ``R`` may be
    a reflection (reflections are valid latent gauge transformations).

    Parameters
    ----------
    X : array, shape (T, d)
        Fitted latents.
    Y : array, shape (T, d)
        Reference latents.
    allow_scaling : bool
        If True, also fit an isotropic scale ``s = trace(Sigma) / ||X - mean_X||_F^2``;
        otherwise ``s = 1``.

    Returns
    -------
    (aligned, R)
        ``aligned = (X - mean_X) @ R * s + mean_Y`` of shape (T, d) and the orthogonal
        ``R`` of shape (d, d).
    """
    X, Y = _check_pair(X, Y, min_rows=2)
    allow_scaling = check_flag(allow_scaling, "allow_scaling")
    with np.errstate(all="ignore"):
        mx = X.mean(axis=0)
        my = Y.mean(axis=0)
        Xc = X - mx
        Yc = Y - my
        U, sig, Vt = np.linalg.svd(_finite(Xc.T @ Yc, "X and Y"))
        R = U @ Vt
        s = 1.0
        if allow_scaling:
            denom = float(np.sum(Xc * Xc))
            if denom > 0.0:
                s = float(np.sum(sig)) / denom
        return _finite(Xc @ R * s + my, "X and Y"), R


def affine_align(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares affine alignment of fitted latents ``X`` onto reference ``Y``.

    Linear-Gaussian latents are identified only up to an invertible affine map, so this is
    the usual way to compare fitted and true latents.  Solves
    ``min_M || (X - mean_X) M - (Y - mean_Y) ||_F`` by least squares (the offset is absorbed
    by centring).  If ``X = Y @ S.T + c`` exactly, then ``M = inv(S).T`` and ``aligned == Y``.

    Parameters
    ----------
    X : array, shape (T, d)
        Fitted latents; needs ``T >= d + 1``.
    Y : array, shape (T, d)
        Reference latents.

    Returns
    -------
    (aligned, M)
        ``aligned = (X - mean_X) @ M + mean_Y`` of shape (T, d) and ``M`` of shape (d, d).
        If the centred ``X`` is rank deficient, ``M`` is the minimum-norm solution.
    """
    X, Y = _check_pair(X, Y, min_rows=2)
    d = X.shape[1]
    if X.shape[0] < d + 1:
        raise ValueError(f"X needs at least d + 1 = {d + 1} rows, got {X.shape[0]}")
    with np.errstate(all="ignore"):
        mx = X.mean(axis=0)
        my = Y.mean(axis=0)
        Xc = _finite(X - mx, "X")
        try:
            M, *_ = np.linalg.lstsq(Xc, _finite(Y - my, "Y"), rcond=None)
        except np.linalg.LinAlgError:
            raise ValueError("X and Y: the least-squares fit did not converge (entries too "
                             "large or too small in magnitude)") from None
        return _finite(Xc @ M + my, "X and Y"), _finite(M, "X and Y")


# ---------------------------------------------------------------------------
# gauge-invariant comparisons
# ---------------------------------------------------------------------------


def subspace_angles(C_fit: np.ndarray, C_true: np.ndarray, degrees: bool = True) -> np.ndarray:
    """Principal angles between the column spaces of ``C_fit`` and ``C_true``.

    The column space of ``C`` is invariant under ``C -> C S^-1``, so these angles compare
    loading matrices independently of the latent gauge.

    Parameters
    ----------
    C_fit : array, shape (N, d1)
    C_true : array, shape (N, d2)
        Both must have full column rank.
    degrees : bool
        Return degrees (default) or radians.

    Returns
    -------
    array, shape (min(d1, d2),)
        Principal angles sorted in ascending order (smallest first), in ``[0, 90]`` degrees.

    Notes
    -----
    Computed from orthonormal bases ``Q_A, Q_B``: cosines are the singular values of
    ``Q_A^T Q_B`` and sines those of the projection residual; angles below 45 degrees use the
    sines (``arcsin``) so that small angles are accurate to machine precision (as in
    Knyazev & Argentati, 2002).
    """
    A = _as_array(C_fit, "C_fit", ndim=2)
    B = _as_array(C_true, "C_true", ndim=2)
    degrees = check_flag(degrees, "degrees")
    _check_latent_dim(A.shape[1], "C_fit")
    _check_latent_dim(B.shape[1], "C_true")
    if A.shape[0] != B.shape[0]:
        raise ValueError(
            f"C_fit and C_true must have the same number of rows, got {A.shape} and {B.shape}"
        )
    for arr, name in ((A, "C_fit"), (B, "C_true")):
        if arr.shape[0] < 1:
            raise ValueError(f"{name} must have at least one row, got shape {arr.shape}")
        with np.errstate(all="ignore"):
            try:
                rank = np.linalg.matrix_rank(arr)
            except np.linalg.LinAlgError:
                raise ValueError(f"{name}: the SVD did not converge (entries too large or "
                                 "too small in magnitude)") from None
        if rank < arr.shape[1]:
            raise ValueError(f"{name} must have full column rank")
    QA, _ = np.linalg.qr(A)
    QB, _ = np.linalg.qr(B)
    M = QA.T @ QB
    cosines = np.clip(np.linalg.svd(M, compute_uv=False), 0.0, 1.0)  # descending
    # sines from the residual of projecting the wider basis' complement; accurate for small
    # angles, where arccos of a cosine near 1 loses half the digits
    resid = QB - QA @ M if A.shape[1] >= B.shape[1] else QA - QB @ M.T
    sines = np.clip(np.linalg.svd(resid, compute_uv=False), 0.0, 1.0)[::-1]  # ascending
    angles = np.where(cosines**2 >= 0.5, np.arcsin(sines), np.arccos(cosines))
    angles = np.sort(angles)
    return np.degrees(angles) if degrees else angles


def max_subspace_angle(C_fit: np.ndarray, C_true: np.ndarray, degrees: bool = True) -> float:
    """Largest principal angle between the column spaces (see :func:`subspace_angles`)."""
    return float(np.max(subspace_angles(C_fit, C_true, degrees=degrees)))


def eigenvalue_match(A_fit: np.ndarray, A_true: np.ndarray) -> float:
    """Gauge-invariant distance between the spectra of two dynamics matrices.

    Eigenvalues (possibly complex) are matched one-to-one by minimising the total
    ``|lambda_i - mu_j|`` (Hungarian algorithm); the largest matched distance is returned.
    Invariant to similarity transforms ``A -> S A S^-1`` of either argument.

    Parameters
    ----------
    A_fit : array, shape (d, d)
    A_true : array, shape (d, d)

    Returns
    -------
    float
        ``max_i |lambda_i - mu_{pi(i)}|`` under the optimal matching ``pi``.
    """
    A = _as_array(A_fit, "A_fit", ndim=2)
    B = _as_array(A_true, "A_true", ndim=2)
    _check_latent_dim(A.shape[0], "A_fit")
    _check_shape(A, "A_fit", (A.shape[0], A.shape[0]))
    _check_shape(B, "A_true", A.shape)
    with np.errstate(all="ignore"):
        try:
            lam = _finite(np.linalg.eigvals(A), "A_fit")
            mu = _finite(np.linalg.eigvals(B), "A_true")
        except np.linalg.LinAlgError:
            raise ValueError("A_fit and A_true: the eigenvalue computation did not converge "
                             "(entries too large or too small in magnitude)") from None
        cost = _finite(np.abs(lam[:, None] - mu[None, :]), "A_fit and A_true")
    rows, cols = linear_sum_assignment(cost)
    return float(np.max(cost[rows, cols]))
