"""Point-process hybrid filter (PPHF; Srinivasan et al. 2007): a Markov chain over discrete
modes ``s_t`` (0-based), each with its own linear dynamics ``(A_s, Q_s)`` and its own
intensities, mixed IMM-style (see :func:`spikessm.kernels.ppaf.hybrid_forward`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import as_float_array, check_bin_width, check_int
from ..._jax import x64
from ...kernels import ppaf as KP
from .ppaf import (
    check_intensity,
    check_matrix,
    check_offsets,
    check_spikes,
    count_constants,
)
from .results import HybridFilterResult


def _per_mode(X, name, M, shape, *, spd=False):
    X = as_float_array(X, name)
    if X.shape == tuple(shape):
        X = np.broadcast_to(X, (M,) + tuple(shape))
    if X.shape != (M,) + tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (shared) or "
                         f"{(M,) + tuple(shape)} (per mode), got {X.shape}")
    return np.stack([check_matrix(X[j], f"{name}[{j}]", shape, spd=spd) for j in range(M)])


def _transition(Pt):
    Pt = as_float_array(Pt, "transition_matrix")
    if Pt.ndim != 2 or Pt.shape[0] != Pt.shape[1] or Pt.shape[0] < 1:
        raise ValueError(f"transition_matrix must be square (M, M), got shape {Pt.shape}")
    if not np.all(np.isfinite(Pt)) or np.any(Pt < 0) or not np.allclose(Pt.sum(1), 1.0,
                                                                          atol=1e-8):
        raise ValueError("transition_matrix must be non-negative with rows summing to 1 "
                         "(Pt[i, j] = P(s_t = j | s_{t-1} = i))")
    return Pt / Pt.sum(1, keepdims=True)


@functools.partial(jax.jit, static_argnames=("family", "fs", "iterated", "max_iter"))
def _run(p0, Pt, m0, P0, A, Q, y, mask, off, dt, Cs, tol, *, family, fs, iterated, max_iter):
    return KP.hybrid_forward(p0, Pt, m0, P0, A, Q, y, mask, off, dt, family=family, Cs=Cs,
                             fs=fs, iterated=iterated, max_iter=max_iter, tol=tol)


@x64
def hybrid_filter(spikes, transition_matrix, A, Q, m0, P0, *, initial_mode_probs=None, C=None,
                  log_intensity=None, baseline=None, bin_width=1.0, observation="poisson",
                  iterated=False, max_iter=30, tol=1e-10) -> HybridFilterResult:
    """Point-process hybrid filter: mode probabilities and the mixed state estimate.

    Args:
      spikes: (T, N) counts (0/1 for Bernoulli); NaN = missing.
      transition_matrix: (M, M), ``[i, j] = P(s_t = j | s_{t-1} = i)``; modes 0-based.
      A, Q: (d, d) shared or (M, d, d) per mode (Q positive definite);
      m0, P0: (d,), (d, d) shared or (M, d), (M, d, d): prior of the first bin's state.
      initial_mode_probs: (M,) P(s_0), default uniform.
      C: (N, d) shared or (M, N, d) per-mode log-linear loadings; or log_intensity: one
        callable x (d,) -> (N,) or a sequence of M (jax.numpy; autodiff derivatives).
      baseline: (N,) or (T, N) shared, (M, N) or (M, T, N) per mode: log-intensity offsets.
      bin_width, observation, iterated, max_iter, tol: as :func:`ppaf_filter`.

    Returns:
      :class:`HybridFilterResult`. The per-mode likelihood p(y_t | s_t = j, y_<t) is the
      PPAF's Gaussian (classic) or Laplace (iterated) approximation.
    """
    y, mask = check_spikes(spikes, observation)
    T, N = y.shape
    mask = np.ones((T, N), bool) if mask is None else mask
    Pt = _transition(transition_matrix)
    M = Pt.shape[0]
    m0 = as_float_array(m0, "m0")
    if m0.ndim not in (1, 2) or m0.shape[-1] < 1:
        raise ValueError(f"m0 must have shape (d,) or ({M}, d), got {m0.shape}")
    d = m0.shape[-1]
    m0 = np.broadcast_to(m0, (M, d)).copy() if m0.shape == (d,) else m0
    if m0.shape != (M, d) or not np.all(np.isfinite(m0)):
        raise ValueError(f"m0 must be finite, shape ({d},) or ({M}, {d}), got {m0.shape}")
    A = _per_mode(A, "A", M, (d, d))
    Q = _per_mode(Q, "Q", M, (d, d), spd=True)
    P0 = _per_mode(P0, "P0", M, (d, d), spd=True)
    p0 = (np.full(M, 1.0 / M) if initial_mode_probs is None
          else as_float_array(initial_mode_probs, "initial_mode_probs"))
    if p0.shape != (M,) or not np.all(np.isfinite(p0)) or np.any(p0 < 0) \
            or not np.isclose(p0.sum(), 1.0):
        raise ValueError(f"initial_mode_probs must be ({M},) non-negative, summing to 1")
    dt = check_bin_width(bin_width)
    max_iter = check_int(max_iter, "max_iter", 1)
    Cs, fs = None, None
    if C is not None:
        C = as_float_array(C, "C")
        C = np.broadcast_to(C, (M, N, d)) if C.shape == (N, d) else C
        if C.shape != (M, N, d):
            raise ValueError(f"C must have shape ({N}, {d}) or ({M}, {N}, {d}), got {C.shape}")
        Cs = np.stack([check_intensity(C[j], None, None, d, N)[0] for j in range(M)])
    else:
        funcs = log_intensity if isinstance(log_intensity, (list, tuple)) else [log_intensity] * M
        if len(funcs) != M:
            raise ValueError(f"log_intensity must be one callable or a sequence of M={M}")
        fs = tuple(check_intensity(None, fj, None, d, N)[1] for fj in funcs)
    if baseline is None:
        off = np.zeros((M, T, N))
    else:
        b = as_float_array(baseline, "baseline")
        if b.ndim == 3 or (b.ndim == 2 and b.shape == (M, N) and b.shape != (T, N)):
            b = b if b.ndim == 3 else b[:, None, :]
            if b.shape[0] != M:
                raise ValueError(f"per-mode baseline must have M={M} rows, got {b.shape}")
            off = np.stack([check_offsets(np.broadcast_to(b[j], (T, N)), T, N,
                                          f"baseline[{j}]") for j in range(M)])
        else:
            off = np.broadcast_to(check_offsets(b, T, N), (M, T, N))
    out = _run(jnp.asarray(p0), jnp.asarray(Pt), jnp.asarray(m0), jnp.asarray(P0),
               jnp.asarray(A), jnp.asarray(Q), jnp.asarray(y), jnp.asarray(mask),
               jnp.asarray(off), dt, None if Cs is None else jnp.asarray(Cs), float(tol),
               family=observation, fs=fs, iterated=bool(iterated), max_iter=max_iter)
    probs = np.asarray(out.mode_probs)
    if not np.all(np.isfinite(probs)):
        raise FloatingPointError("the hybrid filter produced non-finite mode probabilities")
    ll = np.asarray(out.log_likelihoods) + count_constants(y, dt, observation)
    if not (np.all(np.isfinite(ll)) and np.all(np.isfinite(np.asarray(out.means)))
            and np.all(np.isfinite(np.asarray(out.covs)))):
        raise FloatingPointError("the hybrid filter produced non-finite estimates (an "
                                 "intensity overflowed?); check the model's scale")
    return HybridFilterResult(
        mode_probabilities=probs, modes=np.argmax(probs, axis=1), means=np.asarray(out.means),
        covs=np.asarray(out.covs), mode_means=np.asarray(out.mode_means),
        mode_covs=np.asarray(out.mode_covs), log_likelihoods=ll,
        marginal_log_likelihood=float(ll.sum()), n_fallback=int(np.sum(out.fallback)))


__all__ = ["hybrid_filter"]
