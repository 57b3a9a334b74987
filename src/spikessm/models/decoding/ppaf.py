"""Point-process adaptive filter (PPAF; Eden et al. 2004), its fixed-interval and fixed-lag
smoothers, and the goal-directed variant (Srinivasan et al. 2006).

State model ``x_0 ~ N(m0, P0)``, ``x_t = A x_{t-1} + w_t``, ``w_t ~ N(0, Q)``
(``m0, P0`` are the prior of the *first* bin's state). Spikes ``y`` (T, N):

* ``observation="poisson"``: ``y_{t,i} ~ Poisson(bin_width * exp(f_i(x_t) + o_{t,i}))``
  with ``f(x) = C x`` (log-linear, ``C`` (N, d)) or any differentiable
  ``log_intensity(x) -> (N,)`` (JAX; gradients and Hessians by autodiff), ``o`` the
  optional ``baseline`` (N,) or (T, N). With ``bin_width = 1`` the log-intensity is the
  log expected count per bin; with the bin width in seconds it is the log rate in Hz.
* ``observation="bernoulli"``: ``y_{t,i} ~ Bernoulli(sigmoid(f_i(x_t) + o_{t,i}))``
  (``f`` is then the log-odds of a spike in the bin; ``bin_width`` is not used).

NaN entries of ``y`` are missing (they contribute nothing). See
:mod:`spikessm.kernels.ppaf` for the update and the likelihood approximation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import as_float_array, check_bin_width, check_int
from ..._jax import x64
from ...kernels import ppaf as KP
from ...kernels import ppaf_cpu as KC
from .results import PPAFResult

FAMILIES = ("poisson", "bernoulli")
MAX_COUNT = 1e12  # larger "counts" overflow the count constants (lgamma) and are not counts


# --------------------------------------------------------------------------------------
# Input checks (shared with the hybrid filter and the CMGF functions)
# --------------------------------------------------------------------------------------
def check_spikes(spikes, observation: str, name: str = "spikes"):
    """(T, N) float64 copy of ``spikes`` with missing entries (NaN) set to 0, and the
    observed mask (None when nothing is missing)."""
    if observation not in FAMILIES:
        raise ValueError(f"observation must be one of {FAMILIES}, got {observation!r}")
    y = as_float_array(spikes, name)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] < 1 or y.shape[1] < 1:
        raise ValueError(f"{name} must be a (T, N) array of counts, got shape {y.shape}")
    if KC.available():  # one compiled pass over the counts
        n_nan, has_inf, lo, hi, nonint = KC.count_scan(y)
    else:
        finite = y[np.isfinite(y)]
        n_nan, has_inf = int(np.isnan(y).sum()), bool(np.isinf(y).any())
        lo, hi = (finite.min(), finite.max()) if finite.size else (np.inf, -np.inf)
        nonint = bool(np.any(finite != np.floor(finite)))
    mask = None
    if n_nan:
        mask = ~np.isnan(y)
        y[~mask] = 0.0
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if has_inf:
        raise ValueError(f"{name} must be finite counts (NaN marks a missing entry); got inf")
    if lo < 0 or nonint:
        raise ValueError(f"{name} must hold non-negative integer counts (NaN = missing)")
    if hi > MAX_COUNT:
        raise ValueError(f"{name} has a count of {hi:g} in one bin; counts above "
                         f"{MAX_COUNT:g} are not spike counts")
    if observation == "bernoulli" and hi > 1:
        raise ValueError(f"observation='bernoulli' needs 0/1 {name}; got counts above 1")
    return y, mask


def check_matrix(M, name: str, shape, *, spd: bool = False):
    M = as_float_array(M, name)
    if M.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {M.shape}")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"{name} must be finite")
    if spd:
        if not np.allclose(M, M.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(M).max())):
            raise ValueError(f"{name} must be symmetric")
        try:
            np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            raise ValueError(f"{name} must be positive definite (its Cholesky factorisation "
                             "failed)") from None
    return M


def check_state_model(A, Q, m0, P0, names=("A", "Q", "m0", "P0")):
    """``names``: the caller's names of the four arguments (for the error messages)."""
    nA, nQ, nm, nP = names
    m0 = as_float_array(m0, nm)
    if m0.ndim > 1 or m0.size < 1:
        raise ValueError(f"{nm} must be a (d,) vector with d >= 1, got shape {m0.shape}")
    m0 = m0.reshape(-1)
    d = m0.shape[0]
    A = check_matrix(A, nA, (d, d))
    Q = check_matrix(Q, nQ, (d, d), spd=True)
    P0 = check_matrix(P0, nP, (d, d), spd=True)
    if not np.all(np.isfinite(m0)):
        raise ValueError(f"{nm} must be finite")
    return A, Q, m0, P0


def check_offsets(baseline, T: int, N: int, name: str = "baseline"):
    """Offsets as (N,) (shared by all bins) or (T, N)."""
    if baseline is None:
        return np.zeros(N)
    b = as_float_array(baseline, name)
    if b.shape not in ((N,), (T, N)):
        raise ValueError(f"{name} must have shape ({N},) or ({T}, {N}), got {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name} must be finite")
    return b


def check_intensity(C, log_intensity, intensity_params, d: int, N: int):
    """Exactly one of C (N, d) and log_intensity; the callable's output shape checked."""
    if (C is None) == (log_intensity is None):
        raise ValueError("give exactly one of C (log-linear loadings, (N, d)) and "
                         "log_intensity (a callable x (d,) -> (N,))")
    if C is not None:
        return check_matrix(C, "C", (N, d)), None
    if not callable(log_intensity):
        raise TypeError("log_intensity must be a callable x (d,) -> (N,) written in jax.numpy")
    f = bind_params(log_intensity, intensity_params)
    with jax.enable_x64(True):
        try:
            out = jax.eval_shape(f, jax.ShapeDtypeStruct((d,), jnp.float64))
        except Exception as exc:  # noqa: BLE001 - re-raised with the shapes named
            raise ValueError(f"log_intensity could not be evaluated on a state of shape "
                             f"({d},): {type(exc).__name__}: {exc}") from exc
    if tuple(out.shape) != (N,):
        raise ValueError(f"log_intensity returns shape {tuple(out.shape)} for a state of "
                         f"shape ({d},) but spikes have N={N} columns: expected ({N},)")
    return None, log_intensity


def count_constants(y, dt: float, observation: str):
    """(T,) per-bin constants of the log-pmf, ``sum_i y log dt - log y!`` over observed
    entries for Poisson (0 for Bernoulli); ``y`` holds 0 at missing entries."""
    if observation != "poisson":
        return np.zeros(y.shape[0])
    return KC.count_constants(y, dt)


def bind_params(f, params):
    return f if params is None else functools.partial(_with_params, f, params)


def _with_params(f, params, x):
    return f(x, params)


# --------------------------------------------------------------------------------------
# Compiled runners
# --------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("family", "f", "iterated", "max_iter", "mode",
                                             "lag", "fast"))
def _run(m0, P0, F, a, Q, y, mask, off, dt, C, params, tol, *, family, f, iterated,
         max_iter, mode, lag, fast):
    fx = None if f is None else bind_params(f, params)
    if a is None:
        a = jnp.zeros((y.shape[0], m0.shape[0]), y.dtype)
    if fast:
        steps = KP.loglinear_forward(m0, P0, F, Q, y, mask, off, C, dt, family=family,
                                     pseudo=False)
    else:
        steps = KP.ppaf_forward(m0, P0, F, a, Q, y, mask, off, dt, family=family, C=C, f=fx,
                                iterated=iterated, max_iter=max_iter, tol=tol)
    out = {"steps": steps}
    if mode == "smooth":
        out["sm"] = KP.smooth(F, Q, steps)[:2]
    elif mode == "lag":
        out["sm"] = KP.fixed_lag(F, Q, steps, lag)
    return out


_goal_prior = jax.jit(KP.goal_prior, static_argnames=("T", "target_time"))


@functools.partial(jax.jit, static_argnames=("mode", "lag"))
def _smooth_steps(F, Q, steps, *, mode, lag):
    return KP.smooth(F, Q, steps)[:2] if mode == "smooth" else KP.fixed_lag(F, Q, steps, lag)


def _smooth_cpu_steps(F, Q, moments, mode: str, lag: int) -> dict:
    """The output of :func:`_run` from the CPU loop's filter moments (NumPy): the
    smoothers, when asked for, run on them in JAX."""
    ms, Ps, mus, Sigs, ll = moments
    zeros = np.zeros(ms.shape[0], np.int32)
    steps = KP.FilterSteps(ms, Ps, mus, Sigs, None, None, None, ll, zeros.astype(bool), zeros)
    out = {"steps": steps}
    if mode in ("smooth", "lag"):
        out["sm"] = _smooth_steps(jnp.asarray(F), jnp.asarray(Q),
                                  steps._replace(**{k: jnp.asarray(getattr(steps, k)) for k in
                                                    ("predicted_means", "predicted_covs",
                                                     "filtered_means", "filtered_covs")}),
                                  mode=mode, lag=lag)
    return out


def _prepare(spikes, A, Q, m0, P0, C, baseline, log_intensity, intensity_params, bin_width,
             observation, names=None):
    """``names``: the caller's argument names where they differ from this module's (e.g.
    ``{"A": "transition_matrix"}`` for the nSTAT CMGF API), used in error messages."""
    nm = {k: k for k in ("spikes", "A", "Q", "m0", "P0", "C")}
    nm.update(names or {})
    y, mask = check_spikes(spikes, observation, nm["spikes"])
    T, N = y.shape
    A, Q, m0, P0 = check_state_model(A, Q, m0, P0, (nm["A"], nm["Q"], nm["m0"], nm["P0"]))
    if C is not None:
        C = check_matrix(C, nm["C"], (N, m0.shape[0]))
    C, f = check_intensity(C, log_intensity, intensity_params, m0.shape[0], N)
    dt = check_bin_width(bin_width)
    off = check_offsets(baseline, T, N)
    return y, mask, A, Q, m0, P0, C, f, dt, off


@x64
def _decode(spikes, A, Q, m0, P0, *, C, baseline, log_intensity, intensity_params, bin_width,
            observation, iterated, max_iter, tol, mode, lag=0, goal=None,
            names=None) -> PPAFResult:
    y, mask, A, Q, m0, P0, C, f, dt, off = _prepare(
        spikes, A, Q, m0, P0, C, baseline, log_intensity, intensity_params, bin_width,
        observation, names)
    T = y.shape[0]
    max_iter = check_int(max_iter, (names or {}).get("max_iter", "max_iter"), 1)
    if mode == "lag":
        lag = check_int(lag, "lag", 1)
    a = None
    F, Qd = jnp.asarray(A), jnp.asarray(Q)
    if goal is not None:
        target, target_cov, target_time = goal
        m0, P0, F, a, Qd = _goal_prior(jnp.asarray(m0), jnp.asarray(P0), F, Qd,
                                         jnp.asarray(target), jnp.asarray(target_cov), T,
                                         target_time)
    fast = C is not None and not iterated and goal is None
    if fast and KC.available():  # the same filter as one compiled CPU loop (kernels/ppaf_cpu)
        out = _smooth_cpu_steps(A, Q, KC.loglinear_forward_cpu(m0, P0, A, Q, y, mask, off, C,
                                                               dt, observation), mode, lag)
    else:
        if not fast:
            off = np.broadcast_to(off, y.shape)
            mask = np.ones(y.shape, bool) if mask is None else mask
        out = _run(jnp.asarray(m0), jnp.asarray(P0), F, a, Qd, jnp.asarray(y),
                   None if mask is None else jnp.asarray(mask), jnp.asarray(off), dt,
                   None if C is None else jnp.asarray(C), intensity_params, float(tol),
                   family=observation, f=f, iterated=bool(iterated), max_iter=max_iter,
                   mode=mode, lag=lag, fast=fast)
    s = out["steps"]
    ll = np.asarray(s.log_likelihoods) + count_constants(y, dt, observation)
    if not (np.all(np.isfinite(np.asarray(s.filtered_means))) and np.all(np.isfinite(ll))
            and np.all(np.isfinite(np.asarray(s.filtered_covs)))):
        raise FloatingPointError("the filter produced non-finite estimates (an intensity "
                                 "overflowed?); check the model's scale")
    sm_m, sm_c = (None, None) if "sm" not in out else (np.asarray(out["sm"][0]),
                                                       np.asarray(out["sm"][1]))
    return PPAFResult(
        filtered_means=np.asarray(s.filtered_means), filtered_covs=np.asarray(s.filtered_covs),
        predicted_means=np.asarray(s.predicted_means),
        predicted_covs=np.asarray(s.predicted_covs), log_likelihoods=ll,
        marginal_log_likelihood=float(ll.sum()), smoothed_means=sm_m, smoothed_covs=sm_c,
        lag=lag if mode == "lag" else None, n_fallback=int(np.sum(np.asarray(s.fallback))),
        newton_iters=np.asarray(s.newton_iters))




def ppaf_filter(spikes, A, Q, m0, P0, *, C=None, baseline=None, log_intensity=None,
                intensity_params=None, bin_width=1.0, observation="poisson",
                iterated=False, max_iter=30, tol=1e-10) -> PPAFResult:
    """Point-process adaptive filter (Eden et al. 2004): Gaussian p(x_t | y_0..y_t).

    Args:
      spikes: (T, N) counts per bin (0/1 for Bernoulli); NaN marks a missing entry.
      A (d, d), Q (d, d) positive definite: state dynamics; m0 (d,), P0 (d, d): prior of
        the first bin's state.
      C: (N, d) log-linear loadings, or log_intensity: callable x (d,) -> (N,) in
        jax.numpy (``log_intensity(x, intensity_params)`` when ``intensity_params`` is
        given: a pytree passed as traced data, so new parameters do not recompile).
        Arrays the callable closes over should be NumPy arrays or created inside it
        (a ``jnp`` array made outside a float64 context is float32).
      baseline: (N,) or (T, N) offsets added to the log-intensity (e.g. spike history).
      bin_width: seconds per bin (> 0); the expected count is bin_width * exp(...).
      observation: "poisson" or "bernoulli".
      iterated: re-linearise at the posterior mode of each step (Newton, at most
        ``max_iter`` iterations, step tolerance ``tol``) instead of the prior mean.

    Returns:
      :class:`PPAFResult` (``smoothed_*`` None).
    """
    return _decode(spikes, A, Q, m0, P0, C=C, baseline=baseline, log_intensity=log_intensity,
                   intensity_params=intensity_params, bin_width=bin_width,
                   observation=observation, iterated=iterated, max_iter=max_iter, tol=tol,
                   mode="filter")


def ppaf_smoother(spikes, A, Q, m0, P0, *, C=None, baseline=None, log_intensity=None,
                  intensity_params=None, bin_width=1.0, observation="poisson",
                  iterated=False, max_iter=30, tol=1e-10) -> PPAFResult:
    """Fixed-interval smoother: the PPAF, then the RTS backward pass on its Gaussian
    posteriors (the Kalman kernel on the filter's pseudo-observations), giving
    p(x_t | y_0..y_{T-1}). Arguments as :func:`ppaf_filter`.

    Returns:
      :class:`PPAFResult` with ``smoothed_means`` / ``smoothed_covs``.
    """
    return _decode(spikes, A, Q, m0, P0, C=C, baseline=baseline, log_intensity=log_intensity,
                   intensity_params=intensity_params, bin_width=bin_width,
                   observation=observation, iterated=iterated, max_iter=max_iter, tol=tol,
                   mode="smooth")


def fixed_lag_smoother(spikes, A, Q, m0, P0, lag, *, C=None, baseline=None,
                       log_intensity=None, intensity_params=None, bin_width=1.0,
                       observation="poisson", iterated=False, max_iter=30,
                       tol=1e-10) -> PPAFResult:
    """Fixed-lag smoother: p(x_t | y_0..y_{t+lag}) (all data for the last ``lag`` bins),
    an RTS pass of ``lag`` steps for every bin, all bins at once. ``lag``: int >= 1;
    other arguments as :func:`ppaf_filter`.

    Returns:
      :class:`PPAFResult` with ``smoothed_*`` the fixed-lag estimates and ``lag`` set.
    """
    return _decode(spikes, A, Q, m0, P0, C=C, baseline=baseline, log_intensity=log_intensity,
                   intensity_params=intensity_params, bin_width=bin_width,
                   observation=observation, iterated=iterated, max_iter=max_iter, tol=tol,
                   mode="lag", lag=lag)


def goal_directed_filter(spikes, A, Q, m0, P0, target, *, target_cov, target_time=None,
                         smooth=False, C=None, baseline=None, log_intensity=None,
                         intensity_params=None, bin_width=1.0, observation="poisson",
                         iterated=False, max_iter=30, tol=1e-10) -> PPAFResult:
    """Goal-directed PPAF (Srinivasan et al. 2006): the state prior is conditioned on a
    known target ``x_{target_time} ~ N(target, target_cov)`` (the reach-to-target
    augmented prior, built by a backward information pass from the target; see
    :func:`spikessm.kernels.ppaf.goal_prior`).

    Args:
      target (d,); target_cov (d, d) positive definite (a small multiple of the identity
        for a target known almost exactly); target_time: bin index of the target, >= T-1
        (default T-1, the last bin); smooth: also run the RTS smoother. Other arguments as
        :func:`ppaf_filter`.

    Returns:
      :class:`PPAFResult`.
    """
    # spikes and the state model are checked first: T and d come from them
    T = check_spikes(spikes, observation)[0].shape[0]
    d = check_state_model(A, Q, m0, P0)[2].shape[0]
    target = as_float_array(target, "target").reshape(-1)
    if target.shape != (d,) or not np.all(np.isfinite(target)):
        raise ValueError(f"target must be a finite ({d},) state, got shape {target.shape}")
    target_cov = check_matrix(target_cov, "target_cov", (d, d), spd=True)
    target_time = T - 1 if target_time is None else check_int(target_time, "target_time", T - 1)
    return _decode(spikes, A, Q, m0, P0, C=C, baseline=baseline, log_intensity=log_intensity,
                   intensity_params=intensity_params, bin_width=bin_width,
                   observation=observation, iterated=iterated, max_iter=max_iter, tol=tol,
                   mode="smooth" if smooth else "filter",
                   goal=(target, target_cov, target_time))


class PointProcessAdaptiveFilter:
    """The PPAF with its model held once: ``filter``, ``smooth``, ``fixed_lag``,
    ``goal_directed`` take spikes (T, N). Arguments as :func:`ppaf_filter`; the object
    holds no state beyond them (calls on data of the same shapes reuse the compilation).
    """

    def __init__(self, A, Q, m0, P0, *, C=None, baseline=None, log_intensity=None,
                 intensity_params=None, bin_width=1.0, observation="poisson",
                 iterated=False, max_iter=30, tol=1e-10):
        A, Q, m0, P0 = check_state_model(A, Q, m0, P0)
        check_bin_width(bin_width)
        self.A, self.Q, self.m0, self.P0 = A, Q, m0, P0
        self._kw = dict(C=C, baseline=baseline, log_intensity=log_intensity,
                        intensity_params=intensity_params, bin_width=bin_width,
                        observation=observation, iterated=iterated, max_iter=max_iter, tol=tol)

    def filter(self, spikes) -> PPAFResult:
        return ppaf_filter(spikes, self.A, self.Q, self.m0, self.P0, **self._kw)

    def smooth(self, spikes) -> PPAFResult:
        return ppaf_smoother(spikes, self.A, self.Q, self.m0, self.P0, **self._kw)

    def fixed_lag(self, spikes, lag: int) -> PPAFResult:
        return fixed_lag_smoother(spikes, self.A, self.Q, self.m0, self.P0, lag, **self._kw)

    def goal_directed(self, spikes, target, *, target_cov, target_time=None,
                      smooth=False) -> PPAFResult:
        return goal_directed_filter(spikes, self.A, self.Q, self.m0, self.P0, target,
                                    target_cov=target_cov, target_time=target_time,
                                    smooth=smooth, **self._kw)


__all__ = ["PointProcessAdaptiveFilter", "fixed_lag_smoother", "goal_directed_filter",
           "ppaf_filter", "ppaf_smoother"]
