"""The log-linear PPAF forward pass as one compiled CPU loop (numba).

The same filter as :func:`spikessm.kernels.ppaf.loglinear_forward` (classic Eden 2004
update at the predicted mean, ``f(x) = C x``, time-invariant F and Q, Poisson or
Bernoulli, missing entries), with the same outputs; tests assert the two agree to 1e-12.

Why a second loop: the filter is sequential in time and its step is tiny (d <= a few
states, N ~ 50 neurons). Under XLA on CPU each step of ``lax.scan`` dispatches its ~20
fused kernels one by one, a fixed cost of about 1.2 us per step measured here
(49 cells x 43,799 bins, d = 2: 55-65 ms for the scan), whatever the arithmetic. A numba
loop does the same step in about 0.35 us (15 ms), which is what decoding a whole recording
needs to be interactive and what issue 5's speed target (50x nSTAT's per-bin Python loop)
needs. The JAX kernel stays the reference and the path for everything else (autodiff
intensities, the iterated update, the goal-directed prior, GPUs, ``vmap``).

Numba is a dependency of pynapple and widely used in the field; if it is missing, or
``SPIKESSM_NO_NUMBA=1`` is set, the JAX kernel is used.
"""

from __future__ import annotations

import math
import os

import numpy as np

try:  # pragma: no cover - exercised by whichever environment runs the tests
    import numba
except ImportError:  # pragma: no cover
    numba = None

POISSON, BERNOULLI = 0, 1


def available() -> bool:
    """True when the numba loop can be used (numba importable, not disabled)."""
    return numba is not None and os.environ.get("SPIKESSM_NO_NUMBA", "") not in ("1", "true")


def _chol_inv_logdet(S, inv, L):
    """inv <- S^-1 for a symmetric positive definite S (d, d) by its Cholesky factor L;
    returns log det S, or NaN when S is not positive definite (the caller's outputs then
    hold NaN and the finite-output check raises)."""
    d = S.shape[0]
    logdet = 0.0
    for j in range(d):
        s = S[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not s > 0.0:
            return math.nan
        ljj = math.sqrt(s)
        L[j, j] = ljj
        logdet += 2.0 * math.log(ljj)
        for i in range(j + 1, d):
            s = S[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = s / ljj
    # inv = L^-T L^-1, column by column of L^-1
    for c in range(d):
        # forward solve L z = e_c into inv[:, c] (z_i = 0 for i < c)
        for i in range(d):
            if i < c:
                inv[i, c] = 0.0
                continue
            s = 1.0 if i == c else 0.0
            for k in range(c, i):
                s -= L[i, k] * inv[k, c]
            inv[i, c] = s / L[i, i]
        # back solve L' x = z in place
        for i in range(d - 1, -1, -1):
            s = inv[i, c]
            for k in range(i + 1, d):
                s -= L[k, i] * inv[k, c]
            inv[i, c] = s / L[i, i]
    for i in range(d):  # symmetrise
        for j in range(i + 1, d):
            v = 0.5 * (inv[i, j] + inv[j, i])
            inv[i, j] = v
            inv[j, i] = v
    return logdet


def _forward(m0, P0, F, Q, y, mask, has_mask, off, CT, dt, family,
             ms, Ps, mus, Sigs, lls):
    """Fills ms, Ps (predicted), mus, Sigs (filtered) (T, d[, d]) and lls (T,).
    ``CT``: the loadings transposed, (d, N) contiguous, so every sum over neurons runs
    along contiguous memory."""
    T, N = y.shape
    d = m0.shape[0]
    m = m0.copy()
    P = 0.5 * (P0 + P0.T)
    g = np.empty(d)
    J = np.empty((d, d))
    Pinv = np.empty((d, d))
    Sig = np.empty((d, d))
    L = np.zeros((d, d))
    FS = np.empty((d, d))
    eta = np.empty(N)
    e = np.empty(N)
    w = np.empty(N)
    off_varies = off.shape[0] > 1
    for t in range(T):
        for k in range(d):
            ms[t, k] = m[k]
            for l in range(d):
                Ps[t, k, l] = P[k, l]
        ot = t if off_varies else 0
        for i in range(N):
            eta[i] = off[ot, i]
        for k in range(d):
            mk = m[k]
            for i in range(N):
                eta[i] += CT[k, i] * mk
        ell = 0.0
        if family == POISSON:
            for i in range(N):
                x = eta[i]
                lam = dt * math.exp(x)
                ell += y[t, i] * x - lam
                e[i] = y[t, i] - lam
                w[i] = lam
        else:
            for i in range(N):
                x = eta[i]
                z = math.exp(-abs(x))
                p = 1.0 / (1.0 + z) if x >= 0.0 else z / (1.0 + z)
                ell += y[t, i] * x - (max(x, 0.0) + math.log1p(z))
                e[i] = y[t, i] - p
                w[i] = p * (1.0 - p)
        if has_mask:  # missing entries contribute nothing
            for i in range(N):
                if not mask[t, i]:
                    ell -= y[t, i] * eta[i] - (dt * math.exp(eta[i]) if family == POISSON
                                               else max(eta[i], 0.0)
                                               + math.log1p(math.exp(-abs(eta[i]))))
                    e[i] = 0.0
                    w[i] = 0.0
        for k in range(d):
            s = 0.0
            for i in range(N):
                s += CT[k, i] * e[i]
            g[k] = s
            for l in range(k, d):
                s = 0.0
                for i in range(N):
                    s += w[i] * CT[k, i] * CT[l, i]
                J[k, l] = s
        for k in range(d):
            for l in range(k):
                J[k, l] = J[l, k]
        ld_p = _chol_inv_logdet(P, Pinv, L)
        for k in range(d):
            for l in range(d):
                Pinv[k, l] += J[k, l]
        ld_b = _chol_inv_logdet(Pinv, Sig, L)
        quad = 0.0
        for k in range(d):
            dm = 0.0
            for l in range(d):
                dm += Sig[k, l] * g[l]
            mus[t, k] = m[k] + dm
            quad += g[k] * dm
        Sigs[t] = Sig
        lls[t] = ell - 0.5 * (ld_p + ld_b) + 0.5 * quad
        # predict: m <- F mu, P <- F Sig F' + Q (symmetrised)
        for k in range(d):
            s = 0.0
            for l in range(d):
                s += F[k, l] * mus[t, l]
            m[k] = s
            for l in range(d):
                s = 0.0
                for j in range(d):
                    s += F[k, j] * Sig[j, l]
                FS[k, l] = s
        for k in range(d):
            for l in range(d):
                s = Q[k, l]
                for j in range(d):
                    s += FS[k, j] * F[l, j]
                P[k, l] = s
        for k in range(d):
            for l in range(k + 1, d):
                v = 0.5 * (P[k, l] + P[l, k])
                P[k, l] = v
                P[l, k] = v


def _count_scan(y):
    """One pass over counts (T, N): (number of NaN, any infinite, min and max of the
    finite entries, any finite non-integer entry)."""
    n_nan = 0
    inf = False
    nonint = False
    lo = math.inf
    hi = -math.inf
    for t in range(y.shape[0]):
        for i in range(y.shape[1]):
            v = y[t, i]
            if v != v:
                n_nan += 1
            elif math.isinf(v):
                inf = True
            else:
                lo = min(lo, v)
                hi = max(hi, v)
                nonint = nonint or v != math.floor(v)
    return n_nan, inf, lo, hi, nonint


def _count_constants(y, log_dt, log_fact, out):
    """out[t] <- sum_i y log dt - log y! (``y`` non-negative integers, 0 where missing)."""
    for t in range(y.shape[0]):
        c = 0.0
        for i in range(y.shape[1]):  # branch-free: log_fact[0] = 0
            v = y[t, i]
            c += v * log_dt - log_fact[np.int64(v)]
        out[t] = c


def count_scan(y):
    """:func:`_count_scan` of a float64 (T, N) array (compiled; callers check
    :func:`available` first)."""
    return _count_scan(np.ascontiguousarray(y, dtype=np.float64))


def count_constants(y, dt: float):
    """(T,) Poisson count constants ``sum_i y log dt - log y!`` of counts ``y`` (T, N)
    (0 at missing entries), one pass (compiled when numba is present)."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    top = int(y.max()) if y.size else 0
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, top + 1)))])
    if not available():
        return y.sum(1) * math.log(dt) - log_fact[y.astype(np.int64)].sum(1)
    out = np.empty(y.shape[0])
    _count_constants(y, math.log(dt), log_fact, out)
    return out


if numba is not None:  # compiled once per process (cached on disk where writable)
    _count_scan = numba.njit(cache=True)(_count_scan)
    _count_constants = numba.njit(cache=True, fastmath={"reassoc", "contract"})(
        _count_constants)
    _chol_inv_logdet = numba.njit(cache=True, inline="always")(_chol_inv_logdet)
    _forward = numba.njit(cache=True, fastmath={"reassoc", "contract"})(_forward)


def loglinear_forward_cpu(m0, P0, F, Q, y, mask, off, C, dt, family: str):
    """NumPy in, NumPy out: (predicted means (T, d), predicted covs (T, d, d), filtered
    means (T, d), filtered covs (T, d, d), log-likelihood terms (T,)). Arguments as
    :func:`spikessm.kernels.ppaf.loglinear_forward` (``mask`` None or (T, N) bool,
    ``off`` (N,) or (T, N)); the log-likelihood terms exclude the count constants."""
    T, N = y.shape
    d = m0.shape[0]
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    off2 = f64(off).reshape(-1, N)
    has_mask = mask is not None
    mk = np.ascontiguousarray(mask, dtype=np.bool_) if has_mask else np.ones((1, 1), np.bool_)
    out = (np.empty((T, d)), np.empty((T, d, d)), np.empty((T, d)), np.empty((T, d, d)),
           np.empty(T))
    _forward(f64(m0), f64(P0), f64(F), f64(Q), f64(y), mk, has_mask, off2, f64(np.transpose(C)),
             float(dt),
             POISSON if family == "poisson" else BERNOULLI, *out)
    return out
