"""State-space GLM across trials (Smith & Brown 2003; Czanner et al. 2008): user API.

Trial k = 0 .. K-1, bin t = 0 .. T-1 (width ``bin_width`` seconds)::

    theta_0 ~ N(m0, P0),  theta_k = theta_{k-1} + eps_k,  eps_k ~ N(0, Q)     (R,)
    eta_kt = B_t' theta_k + H_kt' gamma          (B: within-trial basis, H: spike history)
    Poisson:   y_kt ~ Poisson(bin_width * exp(eta_kt))        rate exp(eta) in Hz
    Bernoulli: y_kt ~ Bernoulli(logistic(eta_kt))             rate logistic(eta) / bin_width

Fit by Laplace EM: E-step = Newton on the whole trajectory theta_0..theta_{K-1}, each step
one pass of the information-form Kalman smoother (:mod:`.core`); M-step = exact updates of
Q (diagonal or full), m0 and P0, and Newton for gamma on the expected log-likelihood
(at the posterior mode).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from ..._checks import as_float_array, check_bin_width, check_int
from ..._jax import x64
from ...data.trials import as_trial_list
from ...kernels.sampling import backward_sample
from ..plds.model import check_counts
from . import basis as BS
from .core import (
    LINKS,
    GLMObs,
    NewtonFit,
    glm_newton,
    mstep_random_walk,
    run_em,
    separable_q,
    trajectory_laplace,
)

Z95 = 1.959963984540054
PRIOR_PREC = 0.01  # weak N(., 10^2) prior of the static GLM fits (keeps silent pulses finite)


# ------------------------------------------------------------------------------------
# data and model specification
# ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    bin_width: float
    basis: np.ndarray  # (T, R)
    lags: tuple  # history windows (lag arrays, in bins)
    window_times: np.ndarray  # (J + 1,) seconds, empty without history
    link: str
    reduced: bool  # unit pulses and (Poisson or no history): per-pulse counts/exposures


MAX_COUNT = 1e12  # larger "counts" are input errors (and overflow the Newton fits)

def _as_trials(spikes, name: str = "spikes"):
    """(K, T) array or list of 1-D trials -> y (K, T) zeros where missing, valid (K, T)."""
    if isinstance(spikes, (list, tuple)):
        if len(spikes) == 0:
            raise ValueError(f"{name} is an empty list; expected at least one trial")
        items = []
        for k, s in enumerate(spikes):
            a = as_float_array(s, f"{name}[{k}]")
            if isinstance(a, np.ndarray) and a.ndim == 2 and a.shape[1] == 1:
                a = a[:, 0]
            if not isinstance(a, np.ndarray) or a.ndim != 1:
                raise ValueError(f"{name}[{k}] must be a 1-D array of bin counts (T_k,)")
            items.append(a[:, None])
    else:
        a = as_float_array(spikes, name)
        if a.ndim != 2:
            raise ValueError(f"{name} must be a (K trials, T bins) array or a list of 1-D "
                             f"trials, got shape {a.shape}")
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {a.shape}); expected (K trials, T bins)")
        items = [a[k][:, None] for k in range(a.shape[0])]
    trials = as_trial_list(items, name, min_length=1)
    check_counts(trials, name)
    big = max(float(np.nanmax(t, initial=0.0)) for t in trials)
    if big > MAX_COUNT:
        raise ValueError(f"{name} has a count of {big:g} in one bin; counts above "
                         f"{MAX_COUNT:g} are not spike counts")
    T = max(t.shape[0] for t in trials)
    y = np.zeros((len(trials), T))
    valid = np.zeros((len(trials), T), bool)
    for k, t in enumerate(trials):
        obs = ~np.isnan(t[:, 0])
        y[k, :len(t)] = np.where(obs, t[:, 0], 0.0)
        valid[k, :len(t)] = obs
    if not valid.any():
        raise ValueError(f"{name} has no observed bin (all NaN)")
    return y, valid


def _is_pulse(B: np.ndarray) -> bool:
    return bool(np.all((B == 0) | (B == 1)) and np.all(B.sum(axis=1) == 1))


def _make_spec(n_bins, bin_width, basis, basis_width, n_basis, window_times, link) -> _Spec:
    dt = check_bin_width(bin_width)
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    if isinstance(basis, str):
        if basis == "pulse":
            if n_basis is not None:
                basis_width = n_bins * dt / check_int(n_basis, "n_basis", 1)
            B = BS.unit_pulse_basis(n_bins, dt, basis_width)
        elif basis == "spline":
            B = BS.spline_basis(n_bins, dt, 10 if n_basis is None else n_basis)
        else:
            raise ValueError(f"basis must be 'pulse', 'spline' or a (T, R) array, got {basis!r}")
    else:
        B = as_float_array(basis, "basis")
        if B.ndim != 2 or B.shape[0] != n_bins or not np.all(np.isfinite(B)):
            raise ValueError(f"basis must be a finite (T, R) array with T = {n_bins} bins, "
                             f"got shape {B.shape}")
    if window_times is None or len(np.atleast_1d(window_times)) == 0:
        lags, w = (), np.zeros(0)
    else:
        w = as_float_array(window_times, "window_times").ravel()
        lags = tuple(BS.history_lags(w, dt))
    reduced = _is_pulse(B) and (link == "poisson" or not lags)
    return _Spec(dt, B, lags, w, link, reduced)


def _data(spec: _Spec, y, valid):
    """Device data: y (K, T), valid (K, T) float, B (T, R), H (K, T, J)."""
    H = (BS.history_design(y, valid, list(spec.lags)) if spec.lags
         else np.zeros(y.shape + (0,)))
    if spec.link == "bernoulli" and (y[valid] > 1).any():
        k, t = np.argwhere(valid & (y > 1))[0]
        raise ValueError(f"link='bernoulli' needs 0/1 spikes per bin, but spikes[{k}] has "
                         f"{int(y[k, t])} in bin {t}; use link='poisson' or a finer bin_width")
    return tuple(jnp.asarray(a) for a in (y, valid.astype(float), spec.basis, H))


@partial(jax.jit, static_argnames=("link", "reduced"))
def build_obs(data, gamma, dt, *, link: str, reduced: bool):
    """:class:`~.core.GLMObs` of every trial given gamma, and the data constant of log p(y)."""
    y, v, B, H = data
    o = H @ gamma
    const = jnp.sum(v * (y * jnp.log(dt) - gammaln(y + 1.0))) if link == "poisson" else 0.0
    R = B.shape[1]
    if reduced:
        if link == "poisson":
            scale = (dt * jnp.exp(o) * v) @ B
            const = const + jnp.sum(v * y * o)
        else:
            scale = v @ B
        return GLMObs(jnp.eye(R, dtype=y.dtype), (y * v) @ B, scale,
                      jnp.zeros(scale.shape, y.dtype)), const
    scale = v * dt if link == "poisson" else v
    return GLMObs(B, y * v, scale, o), const


# ------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------
def _rate(eta, link, dt):
    return np.exp(eta) if link == "poisson" else 1.0 / (1.0 + np.exp(-eta)) / dt


@dataclass(frozen=True)
class GLMPSTHResult:
    """Static GLM-PSTH: one coefficient vector for every trial.

    theta (R,), theta_cov (R, R), gamma (J,) history coefficients; rates (T,) Hz (no
    history effect) with rates_lower / rates_upper (T,) 95% confidence bands;
    log_likelihood: at the fit (all fitted trials); basis (T, R), bin_width (s),
    window_times (J+1,) s, link.
    """

    theta: np.ndarray
    theta_cov: np.ndarray
    gamma: np.ndarray
    rates: np.ndarray
    rates_lower: np.ndarray
    rates_upper: np.ndarray
    log_likelihood: float
    basis: np.ndarray
    bin_width: float
    window_times: np.ndarray
    link: str

    def trial_log_likelihoods(self, spikes) -> np.ndarray:
        """(K,) log p(y_k | theta, gamma) of each trial of ``spikes`` (K, T) (NaN = missing
        bin; a trial with no observed bin scores 0)."""
        y, valid = _as_trials_T(spikes, _spec_of(self))
        return _plugin_ll(self, y, valid, np.broadcast_to(self.theta, (y.shape[0],) +
                                                            self.theta.shape))

    @x64
    def predictive_log_likelihoods(self, spikes) -> np.ndarray:
        """(K,) Laplace approximation of log int p(y_k | theta, gamma) N(theta; theta,
        theta_cov) dtheta for each trial of ``spikes`` (K, T): the GLM-PSTH scored as the
        SSGLM's :meth:`SSGLMResult.heldout_log_likelihood` scores held-out trials (the
        SSGLM with Q = 0 and a N(., 10^2) initial prior is this model)."""
        spec = _spec_of(self)
        y, valid = _as_trials_T(spikes, spec)
        n = y.shape[0]
        return _laplace_predictive(self, y, valid, np.broadcast_to(self.theta, (n,) +
                                   self.theta.shape), np.broadcast_to(self.theta_cov, (n,) +
                                                                      self.theta_cov.shape))


@x64
def _plugin_ll(res, y, valid, theta, gain=None) -> np.ndarray:
    """(K,) log p(y_k | theta_k, gamma) with theta (K, R) (plus gain (K,) on every bin)."""
    spec = _spec_of(res)
    data = _data(spec, y, valid)
    obs, _ = build_obs(data, jnp.asarray(res.gamma), spec.bin_width, link=spec.link,
                       reduced=False)
    eta = jnp.asarray(theta) @ obs.C.T + obs.off
    if gain is not None:
        eta = eta + jnp.asarray(gain)[:, None]
    return np.asarray(_trial_ll(eta, obs, data, spec))


@dataclass(frozen=True)
class PerTrialGLMResult:
    """Independent GLM fit of each trial (history coefficients fixed at the GLM-PSTH's).

    theta (K, R), theta_cov (K, R, R), gamma (J,), rates (K, T) Hz."""

    theta: np.ndarray
    theta_cov: np.ndarray
    gamma: np.ndarray
    rates: np.ndarray


@dataclass(frozen=True)
class SSGLMResult:
    """State-space GLM fit.

    theta (K, R): posterior modes of the basis coefficients of each trial; theta_cov
    (K, R, R) their posterior covariances; filtered_means (K, R), filtered_covs,
    predicted_means, predicted_covs: the forward pass at the mode (for joint draws).
    Q (R, R), m0 (R,), P0 (R, R), gamma (J,): fitted parameters.
    rates (K, T): posterior median rate of each trial in Hz (history-free: the rate with
    no recent spikes), rates_lower / rates_upper (K, T): 95% credible bands.
    log_likelihoods (n_iter,): Laplace approximation of log p(y) at the parameters
    entering each EM iteration; log_likelihood at the returned ones; converged; n_iter;
    seconds. psth: the :class:`GLMPSTHResult` and trial_glm: the
    :class:`PerTrialGLMResult` baselines (also the initialisation).
    basis (T, R), bin_width (s), window_times (J+1,) s, link.
    ``trial_gain=True`` only (None otherwise): gain_var V, the variance of the per-trial
    gain g_k; gain (K,) its posterior modes; gain_cov (K, R + 1) Cov(g_k, (theta_k, g_k)).
    Then rates include g_k; theta, Q, the filtered/predicted moments (and so the joint
    draws and rate comparisons) are the slowly drifting part theta only.
    """

    theta: np.ndarray
    theta_cov: np.ndarray
    filtered_means: np.ndarray
    filtered_covs: np.ndarray
    predicted_means: np.ndarray
    predicted_covs: np.ndarray
    Q: np.ndarray
    m0: np.ndarray
    P0: np.ndarray
    gamma: np.ndarray
    rates: np.ndarray
    rates_lower: np.ndarray
    rates_upper: np.ndarray
    log_likelihoods: np.ndarray
    log_likelihood: float
    converged: bool
    n_iter: int
    seconds: float
    psth: GLMPSTHResult
    trial_glm: PerTrialGLMResult
    basis: np.ndarray
    bin_width: float
    window_times: np.ndarray
    link: str
    gain_var: float | None = None
    gain: np.ndarray | None = None
    gain_cov: np.ndarray | None = None

    @property
    def n_trials(self) -> int:
        return self.theta.shape[0]

    def sample_theta(self, n_draws: int = 1000, seed: int = 0) -> np.ndarray:
        """(n_draws, K, R) draws of the joint posterior of theta across trials."""
        return sample_theta(self, n_draws, seed)

    def rate_comparison_matrix(self, window=None, n_draws: int = 1000,
                               seed: int = 0) -> np.ndarray:
        """P(rate in trial m > rate in trial k): see :func:`rate_comparison_matrix`."""
        return rate_comparison_matrix(self, window, n_draws=n_draws, seed=seed)

    def learning_trial(self, window=None, *, reference: int = 0, level: float = 0.95,
                       sustained: bool = True, n_draws: int = 1000, seed: int = 0):
        """First trial whose rate in ``window`` is credibly above trial ``reference``'s
        (see :func:`learning_trial`); None if none is."""
        P = self.rate_comparison_matrix(window, n_draws, seed)
        return learning_trial(P, reference=reference, level=level, sustained=sustained)

    def plugin_log_likelihood(self, spikes, trials) -> np.ndarray:
        """(len(trials),) log p(y_k | theta = theta[k], gamma): the held-out trials scored
        at the posterior mode (no integration over its uncertainty)."""
        y, valid = _as_trials_T(spikes, _spec_of(self))
        idx = self._trial_index(trials, y.shape[0])
        if self.gain_var is not None:  # the gain's mode adds to every bin's log-rate
            return _plugin_ll(self, y[idx], valid[idx], self.theta[idx], self.gain[idx])
        return _plugin_ll(self, y[idx], valid[idx], self.theta[idx])

    def _trial_index(self, trials, n: int) -> np.ndarray:
        if n != self.n_trials:
            raise ValueError(f"spikes has {n} trials; the fit has {self.n_trials}")
        idx = np.asarray(trials).ravel()
        if idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 \
                or idx.max() >= self.n_trials:
            raise ValueError(f"trials must be integer indices in [0, {self.n_trials}), "
                             f"got {trials!r}")
        return idx

    @x64
    def heldout_log_likelihood(self, spikes, trials) -> np.ndarray:
        """Predictive log-likelihood of held-out trials.

        Fit with the held-out trials masked (all NaN), then call with the full ``spikes``
        (K, T) and the held-out trial indices: for each, the Laplace approximation of
        log int p(y_k | theta) N(theta; theta[k], theta_cov[k]) dtheta, where the
        posterior of trial k comes from the other trials only. Returns (len(trials),).
        """
        y, valid = _as_trials_T(spikes, _spec_of(self))
        idx = self._trial_index(trials, y.shape[0])
        if self.gain_var is not None:  # integrate over (theta_k, g_k) jointly
            R = self.theta.shape[1]
            mu = np.concatenate([self.theta[idx], self.gain[idx, None]], axis=1)
            S = np.zeros((idx.size, R + 1, R + 1))
            S[:, :R, :R] = self.theta_cov[idx]
            S[:, R, :] = self.gain_cov[idx]
            S[:, :, R] = self.gain_cov[idx]
            return _laplace_predictive(self, y[idx], valid[idx], mu, S, gain=True)
        return _laplace_predictive(self, y[idx], valid[idx], self.theta[idx],
                                   self.theta_cov[idx])


def _laplace_predictive(res, y, valid, mu, S, gain: bool = False) -> np.ndarray:
    """(n,) Laplace approximation of log int p(y_k | theta) N(theta; mu_k, S_k) dtheta
    (``gain``: the last coordinate of theta is the trial gain, loading 1 on every bin)."""
    spec = _spec_of(res)
    data = _data(spec, y, valid)
    obs, _ = build_obs(data, jnp.asarray(res.gamma), spec.bin_width, link=spec.link,
                       reduced=False)
    if gain:
        obs = obs._replace(C=_with_gain(obs.C))
    out = _predictive_ll(jnp.asarray(mu), jnp.asarray(S), obs, link=spec.link)
    return np.asarray(out) + _const_per_trial(data, spec)


def _spec_of(res) -> _Spec:
    w = res.window_times
    lags = tuple(BS.history_lags(w, res.bin_width)) if w.size else ()
    return _Spec(res.bin_width, res.basis, lags, w, res.link, False)


def _as_trials_T(spikes, spec: _Spec):
    y, valid = _as_trials(spikes)
    T = spec.basis.shape[0]
    if y.shape[1] != T:
        raise ValueError(f"spikes has {y.shape[1]} bins per trial; the fit has {T}")
    return y, valid


def _const_per_trial(data, spec: _Spec) -> np.ndarray:
    y, v = np.asarray(data[0]), np.asarray(data[1])
    if spec.link != "poisson":
        return np.zeros(y.shape[0])
    from scipy.special import gammaln as sgammaln

    return np.sum(v * (y * np.log(spec.bin_width) - sgammaln(y + 1.0)), axis=1)


def _trial_ll(eta, obs: GLMObs, data, spec: _Spec):
    from .core import glm_terms

    _, _, f = glm_terms(eta, obs.y, obs.scale, spec.link)
    return f + _const_per_trial(data, spec)


@partial(jax.jit, static_argnames=("link",))
def _predictive_ll(mu, S, obs: GLMObs, *, link: str):
    def one(m, s, y, scale, off):
        prec = jnp.linalg.inv(s)
        fit = glm_newton(obs.C, y, scale, off, m, m, 0.5 * (prec + prec.T), link=link)
        logdet_s = jnp.linalg.slogdet(s)[1]
        return fit.value - 0.5 * (logdet_s + fit.logdet)

    return jax.vmap(one)(mu, S, obs.y, obs.scale, obs.off)


# ------------------------------------------------------------------------------------
# static baselines (also the SSGLM initialisation)
# ------------------------------------------------------------------------------------
def _prior_base(spec: _Spec, data) -> float:
    """Mean of the weak prior of every basis coefficient: the overall log rate (log odds)."""
    y, v = np.asarray(data[0]), np.asarray(data[1])
    p = max(float(np.sum(y * v)), 0.5) / float(np.sum(v))
    dt = spec.bin_width
    return float(np.log(p / dt) if spec.link == "poisson" else np.log(p / (1.0 - min(p, 0.5))))


def _psth_fit(spec: _Spec, data):
    y, v, B, H = data
    R, J = B.shape[1], H.shape[2]
    dt = spec.bin_width
    base = _prior_base(spec, data)
    mean = jnp.concatenate([jnp.full(R, base), jnp.zeros(J)])
    prec = PRIOR_PREC * jnp.eye(R + J)
    obs, _ = build_obs(data, jnp.zeros(J), dt, link=spec.link, reduced=spec.reduced)
    if J == 0:  # the same units in every trial, no offsets: sum over trials
        fit = glm_newton(obs.C, jnp.sum(obs.y, 0), jnp.sum(obs.scale, 0), jnp.zeros(obs.C.shape[0]),
                         mean, mean, prec, link=spec.link)
    else:
        Kn, T = y.shape
        X = jnp.concatenate([jnp.broadcast_to(B, (Kn, T, R)), H], axis=-1).reshape(Kn * T, -1)
        scale = (v * dt if spec.link == "poisson" else v).ravel()
        fit = glm_newton(X, (y * v).ravel(), scale, jnp.zeros(Kn * T), mean, mean, prec,
                         link=spec.link)
    theta, gamma = np.asarray(fit.beta[:R]), np.asarray(fit.beta[R:])
    cov = np.asarray(fit.cov)[:R, :R]
    Bn = spec.basis
    eta, sd = Bn @ theta, np.sqrt(np.einsum("tr,rs,ts->t", Bn, cov, Bn))
    link, dt = spec.link, spec.bin_width
    return GLMPSTHResult(theta, cov, gamma, _rate(eta, link, dt), _rate(eta - Z95 * sd, link, dt),
                         _rate(eta + Z95 * sd, link, dt), float(fit.value), Bn, dt,
                         spec.window_times, link)


def _per_trial(obs: GLMObs, mean, *, link: str) -> NewtonFit:
    """Independent MAP fit of each trial, stacked over trials.

    A loop over trials of the compiled :func:`~.core.glm_newton`, not a ``vmap``: for the
    default unit pulses without history a trial's call has the shapes of the GLM-PSTH's
    call, so nothing new is compiled (a vmapped version cost ~2 s of compilation on the
    first ``ssglm`` call, measured on 2 CPU cores, against ~1 ms per trial for the loop)."""
    prec = PRIOR_PREC * jnp.eye(mean.shape[0], dtype=mean.dtype)
    C = obs.C
    fits = [glm_newton(C, y, s, o, mean, mean, prec, link=link)
            for y, s, o in zip(np.asarray(obs.y), np.asarray(obs.scale), np.asarray(obs.off))]
    return NewtonFit(*(np.stack([np.asarray(getattr(f, name)) for f in fits])
                       for name in NewtonFit._fields))


def _trial_fit(spec: _Spec, data, psth: GLMPSTHResult) -> PerTrialGLMResult:
    obs, _ = build_obs(data, jnp.asarray(psth.gamma), spec.bin_width, link=spec.link,
                       reduced=spec.reduced)
    fit = _per_trial(obs, jnp.asarray(psth.theta), link=spec.link)
    theta = np.asarray(fit.beta)
    return PerTrialGLMResult(theta, np.asarray(fit.cov), psth.gamma,
                             _rate(theta @ spec.basis.T, spec.link, spec.bin_width))


@x64
def glm_psth(spikes, bin_width, *, basis="pulse", basis_width=0.02, n_basis=None,
             window_times=None, link: str = "poisson") -> GLMPSTHResult:
    """Static GLM-PSTH (one rate function for all trials), with optional spike history.

    Arguments as :func:`ssglm`. Fitted by Newton with a weak N(., 10^2) prior on each
    coefficient (keeps pulses without spikes finite). Returns :class:`GLMPSTHResult`.
    """
    y, valid = _as_trials(spikes)
    spec = _make_spec(y.shape[1], bin_width, basis, basis_width, n_basis, window_times, link)
    return _psth_fit(spec, _data(spec, y, valid))


@x64
def per_trial_glm(spikes, bin_width, *, basis="pulse", basis_width=0.02, n_basis=None,
                  window_times=None, link: str = "poisson") -> PerTrialGLMResult:
    """Independent GLM of each trial (history coefficients from the GLM-PSTH, the same
    weak prior centred on the GLM-PSTH coefficients). Returns :class:`PerTrialGLMResult`."""
    y, valid = _as_trials(spikes)
    spec = _make_spec(y.shape[1], bin_width, basis, basis_width, n_basis, window_times, link)
    data = _data(spec, y, valid)
    return _trial_fit(spec, data, _psth_fit(spec, data))


# ------------------------------------------------------------------------------------
# EM
# ------------------------------------------------------------------------------------
@partial(jax.jit, static_argnames=("link", "reduced", "max_iter"))
def _estep(P, data, x_init, dt, *, link, reduced, max_iter, tol):
    obs, const = build_obs(data, P["gamma"], dt, link=link, reduced=reduced)
    Kn, R = x_init.shape
    z = jnp.zeros((Kn, R), x_init.dtype)
    lap = trajectory_laplace(P["m0"], P["P0"], P["Q"], obs, jnp.zeros((Kn, R, R), z.dtype), z,
                             z[:, 0], x_init, link=link, max_iter=max_iter, tol=tol)
    return lap, lap.log_likelihood + const


def basis_variance(B, S, pulse: bool):
    """(K, T) variances of B_t' theta_k under covariances S (K, R, R): O(K T R) for unit
    pulses (one basis function per bin), O(K T R^2) otherwise."""
    xp = jnp if isinstance(S, jax.Array) else np
    if pulse:
        return xp.diagonal(S, axis1=1, axis2=2) @ B.T
    return xp.einsum("tr,krs,ts->kt", B, S, B)


def _exact_q(P, data, x, dt, q_floor, min_gain, *, link, q_type, initial, gain=None):
    """P with Q (and P0 if tied) replaced by the maximiser of the Laplace log-likelihood
    over Q (unit pulses, diagonal or isotropic Q: :func:`~.core.separable_q`); ``gain``
    (K,): conditional on these trial gains (Poisson: exposures times exp(g_k))."""
    obs, _ = build_obs(data, P["gamma"], dt, link=link, reduced=True)
    if gain is not None:
        obs = obs._replace(scale=obs.scale * jnp.exp(gain)[:, None])
    q, _ = separable_q(P["m0"], jnp.diagonal(P["P0"]), obs, x, q_floor, min_gain, link=link,
                       shared=q_type == "isotropic", tied=initial == "tied")
    new = dict(P)
    new["Q"] = jnp.diag(q)
    if initial == "tied":
        new["P0"] = new["Q"]
    return new


@partial(jax.jit, static_argnames=("link", "q_type", "history", "initial", "exact_q"))
def _mstep(P, data, mu, S, X, dt, q_floor, min_gain, *, link, q_type, history, initial,
           exact_q):
    new = dict(P)
    new["Q"], new["m0"], new["P0"] = mstep_random_walk(mu, S, X, P, q_type=q_type,
                                                       initial=initial, q_floor=q_floor)
    if history:
        y, v, B, H = data
        # at the posterior mode (the Gaussian expectation exp(B mu + B S B' / 2) is not
        # used: a pulse with few spikes has a wide, skewed posterior whose Gaussian
        # expectation explodes and drags gamma; seen on the whisker data); the weak N(0, 10^2)
        # prior of the GLM-PSTH, so that with Q at its floor this is the GLM-PSTH's gamma)
        eta = mu @ B.T  # (K, T)
        off = (jnp.log(dt) + eta) if link == "poisson" else eta
        scale = v
        J = H.shape[2]
        fit = glm_newton(H.reshape(-1, J), (y * v).ravel(), scale.ravel(), off.ravel(),
                         P["gamma"], jnp.zeros(J), PRIOR_PREC * jnp.eye(J), link=link)
        new["gamma"] = fit.beta
    if exact_q:  # Q maximising the Laplace log-likelihood at the new gamma, m0, P0
        new = _exact_q(new, data, mu, dt, q_floor, min_gain, link=link, q_type=q_type,
                       initial=initial)
    return new


def _with_gain(C):
    """(U, R) unit design -> (U, R + 1): the trial gain g_k loads 1 on every unit."""
    return jnp.concatenate([C, jnp.ones((C.shape[0], 1), C.dtype)], axis=1)


def _augment(P):
    """Prior and dynamics of the state (theta_k, g_k): m0 = (m0, 0), P0 = blockdiag(P0, V),
    Q = blockdiag(Q, V), F = blockdiag(I, 0) (g_k i.i.d. N(0, V) across trials)."""
    R = P["m0"].shape[0]
    V = P["V"]
    dtype = P["m0"].dtype

    def bd(A):
        return jnp.zeros((R + 1, R + 1), dtype).at[:R, :R].set(A).at[R, R].set(V)

    F = jnp.zeros((R + 1, R + 1), dtype).at[:R, :R].set(jnp.eye(R, dtype=dtype))
    return jnp.concatenate([P["m0"], jnp.zeros(1, dtype)]), bd(P["P0"]), bd(P["Q"]), F


@partial(jax.jit, static_argnames=("link", "reduced", "max_iter"))
def _estep_gain(P, data, x_init, dt, *, link, reduced, max_iter, tol):
    obs, const = build_obs(data, P["gamma"], dt, link=link, reduced=reduced)
    obs = obs._replace(C=_with_gain(obs.C))
    Kn, R1 = x_init.shape
    z = jnp.zeros((Kn, R1), x_init.dtype)
    m0, P0, Q, F = _augment(P)
    lap = trajectory_laplace(m0, P0, Q, obs, jnp.zeros((Kn, R1, R1), z.dtype), z, z[:, 0],
                             x_init, link=link, max_iter=max_iter, tol=tol, F=F)
    return lap, lap.log_likelihood + const


@partial(jax.jit, static_argnames=("link", "q_type", "history", "initial"))
def _mstep_gain(P, data, mu, S, X, dt, q_floor, *, link, q_type, history, initial):
    """EM M-step of the model with a trial gain: Q, m0, P0 of theta from its smoothed
    moments (as :func:`_mstep` without the exact Q), V = the mean posterior second moment
    of g_k, gamma at the posterior mode of (theta, g)."""
    R = mu.shape[1] - 1
    new = dict(P)
    new["Q"], new["m0"], new["P0"] = mstep_random_walk(
        mu[:, :R], S[:, :R, :R], X[:, :R, :R], P, q_type=q_type, initial=initial,
        q_floor=q_floor)
    new["V"] = jnp.maximum(jnp.mean(mu[:, R] ** 2 + S[:, R, R]), q_floor)
    if history:
        y, v, B, H = data
        eta = mu[:, :R] @ B.T + mu[:, R:]
        off = (jnp.log(dt) + eta) if link == "poisson" else eta
        J = H.shape[2]
        fit = glm_newton(H.reshape(-1, J), (y * v).ravel(), v.ravel(), off.ravel(),
                         P["gamma"], jnp.zeros(J), PRIOR_PREC * jnp.eye(J), link=link)
        new["gamma"] = fit.beta
    return new


def _initial_gain(y, valid):
    """Moment estimate of V (the variance of the log of each trial's count over its
    expectation, same rate in every trial, beyond its Poisson part; clipped to
    [1e-3, 1]) and the shrunk log-ratios (K,) (V / (V + 1 / n_k) times each; 0 for a
    trial with no observed bin)."""
    n, m = np.sum(y * valid, axis=1), np.sum(valid, axis=1)
    obs = m > 0
    raw = np.zeros(len(n))
    raw[obs] = np.log((n[obs] + 0.5) / (m[obs] * (np.sum(n) + 0.5) / np.sum(m)))
    V = float(np.clip(np.var(raw[obs]) - np.mean(1.0 / (n[obs] + 0.5)), 1e-3, 1.0))
    return V, np.where(obs, V / (V + 1.0 / (n + 0.5)) * raw, 0.0)


def _drift_gain(level, n_tests: int) -> np.ndarray:
    """Thresholds (nats) of the test of drift: (global, each basis function).

    The likelihood-ratio statistic of q_r = 0 (twice the gain of the Laplace
    log-likelihood over the static fit) has the null distribution 1/2 chi2_0 + 1/2 chi2_1
    on the boundary (Self & Liang 1987). Global test of "no basis function drifts": the
    largest gain against the Bonferroni threshold at ``level`` / ``n_tests``; once it
    rejects, each basis function drifts if its own test rejects at ``level`` (protected
    tests). None: no test (0, 0: the maximum-likelihood Q)."""
    if level is None:
        return np.zeros(2)
    from scipy.stats import chi2

    level = check_unit_interval(level, "drift_level")
    if level >= 0.5:
        raise ValueError(f"drift_level must be in (0, 0.5) or None, got {level}")
    return 0.5 * chi2.isf(2.0 * level / np.array([n_tests, 1.0]), 1)


@x64
def ssglm(spikes, bin_width, *, basis="pulse", basis_width=0.02, n_basis=None,
          window_times=None, link: str = "poisson", q_type: str = "diagonal",
          initial: str = "diffuse", max_iter: int = 200, tol: float = 1e-7,
          newton_max_iter: int = 50, q_floor: float = 1e-8,
          diffuse_var: float = 100.0, drift_level: float | None = 0.05,
          trial_gain: bool = False) -> SSGLMResult:
    """Fit the state-space GLM across trials by Laplace EM.

    Args:
      spikes: (K trials, T bins) counts, or a list of K 1-D trials (ragged or with NaN
        for missing bins; a trial of all NaN is a missing trial, interpolated).
      bin_width: seconds per bin.
      basis: "pulse" (unit pulses of ``basis_width`` s, default 0.02; or ``n_basis``
        equal pulses), "spline" (``n_basis`` cubic B-splines, default 10) or a (T, R) array.
      window_times: history window edges in seconds, e.g. ``[0, 0.001, 0.002, 0.005]``
        (window j counts the spikes 1..5 ms back, etc.); None for no history.
      link: "poisson" (log link, counts) or "bernoulli" (logit link, 0/1 per bin).
      q_type: random-walk covariance Q: "diagonal" (one variance per basis function),
        "isotropic" (one shared variance: the stablest estimate with few trials) or "full".
      initial: the first trial's prior N(m0, P0). "diffuse" (default): m0 = the overall log rate
        (the mean of the GLM-PSTH's weak prior), P0 = ``diffuse_var`` I, both fixed, so the credible
        bands carry the uncertainty of the overall level; "em": m0 and P0 estimated by EM (with one
        sequence of trials the maximum-likelihood P0 is 0: EM shrinks it towards the first trial's
        posterior variance and the bands then omit the uncertainty of m0); "tied": P0 = Q and m0 by
        EM (Smith & Brown 2003; Czanner et al. 2008).
      max_iter, tol: EM stops when the relative change of the Laplace log-likelihood is
        below ``tol``. newton_max_iter: cap of the E-step's Newton iterations.
      q_floor: lower bound of Q's diagonal.
      drift_level: unit pulses with a diagonal or isotropic Q only (there Q is maximised
        exactly, per pulse): the level of the test of drift. No pulse drifts (Q =
        ``q_floor``: the GLM-PSTH) unless the largest per-pulse gain of the Laplace
        log-likelihood over the static fit rejects "no drift" at this family-wise level
        (Bonferroni over the pulses; the null is 1/2 chi2_0 + 1/2 chi2_1); then each pulse
        drifts if its own test rejects at this level. None: the maximum-likelihood Q.
      trial_gain: add a per-trial gain g_k ~ N(0, V), i.i.d. across trials, to the
        log-rate (logit) of every bin of trial k: trial-to-trial excitability fluctuations
        without a trend, which a random walk can only follow as drift. The state becomes
        (theta_k, g_k) with transition blockdiag(I, 0) and noise blockdiag(Q, V); V by
        EM (the mean posterior second moment of g_k); Q by EM + SQUAREM (g couples the
        pulses, so the exact per-pulse Q does not apply; for Poisson unit pulses with a
        diagonal or isotropic Q, EM starts from the exact Q with its test of drift given
        initial gains: each trial's shrunk log count ratio). A held-out (masked) trial's
        g_k is integrated over N(0, V).

    Returns:
      :class:`SSGLMResult`.
    """
    t_start = time.perf_counter()
    y, valid = _as_trials(spikes)
    if y.shape[0] < 2:
        raise ValueError(f"spikes has {y.shape[0]} trial; the SSGLM needs at least 2")
    if q_type not in ("diagonal", "isotropic", "full"):
        raise ValueError(f"q_type must be 'diagonal', 'isotropic' or 'full', got {q_type!r}")
    if initial not in ("diffuse", "em", "tied"):
        raise ValueError(f"initial must be 'diffuse', 'em' or 'tied', got {initial!r}")
    max_iter = check_int(max_iter, "max_iter", 1)
    if not isinstance(trial_gain, (bool, np.bool_)):
        raise TypeError(f"trial_gain must be True or False, got {trial_gain!r}")
    spec = _make_spec(y.shape[1], bin_width, basis, basis_width, n_basis, window_times, link)
    data = _data(spec, y, valid)
    dt = spec.bin_width
    psth = _psth_fit(spec, data)
    trial = _trial_fit(spec, data, psth)
    R = spec.basis.shape[1]
    # initial Q from the spread of successive per-trial estimates beyond their noise
    th, var = trial.theta, np.diagonal(trial.theta_cov, axis1=1, axis2=2)
    dq = np.median(np.diff(th, axis=0) ** 2 - var[1:] - var[:-1], axis=0)
    Q0 = np.diag(np.clip(dq, 1e-3, 1.0))
    # "diffuse": the GLM-PSTH's own weak prior N(base, diffuse_var) (m0 is not fitted to
    # the data, which would count them twice; with Q at its floor the fit is the GLM-PSTH)
    m0 = (np.full(R, _prior_base(spec, data)) if initial == "diffuse" else psth.theta)
    P = {"Q": jnp.asarray(Q0), "m0": jnp.asarray(m0),
         "P0": jnp.asarray(Q0 if initial == "tied" else
                           (float(diffuse_var) if initial == "diffuse" else 1.0) * np.eye(R)),
         "gamma": jnp.asarray(psth.gamma)}
    x = jnp.asarray(np.broadcast_to(psth.theta, (y.shape[0], R)).copy())
    kw = dict(link=spec.link, reduced=spec.reduced, max_iter=newton_max_iter, tol=1e-8)
    history = bool(spec.lags)
    # unit pulses with a diagonal / isotropic Q: the Laplace log-likelihood is a sum of
    # scalar problems, one per pulse, and Q is maximised exactly (from the start)
    exact_q = spec.reduced and q_type in ("diagonal", "isotropic")
    min_gain = jnp.asarray(_drift_gain(drift_level, R if q_type == "diagonal" else 1))
    if trial_gain:
        if not (exact_q and spec.link == "poisson"):
            exact_q = False
        return _ssglm_gain(P, data, x, spec, psth, trial, y, valid, kw, max_iter, tol,
                           q_floor, q_type, initial, t_start,
                           (exact_q, jnp.asarray(trial.theta), min_gain))
    if exact_q:
        P = jax.jit(_exact_q, static_argnames=("link", "q_type", "initial"))(
            P, data, jnp.asarray(trial.theta), dt, q_floor, min_gain, link=spec.link,
            q_type=q_type, initial=initial)
    P, lap, trace, converged = run_em(
        lambda P, x: _estep(P, data, x, dt, **kw),
        lambda P, lap: _mstep(P, data, lap.posterior.smoothed_means,
                              lap.posterior.smoothed_covs, lap.posterior.cross_covs, dt,
                              q_floor, min_gain, link=spec.link, q_type=q_type, history=history,
                              initial=initial, exact_q=exact_q),
        P, x, max_iter, tol, "SSGLM",
        kinds=None if exact_q else
        {"Q": "cov", "gamma": "free",
         **({} if initial == "diffuse" else {"m0": "free", "P0": "cov"})})
    post = lap.posterior
    mu, S = np.asarray(post.smoothed_means), np.asarray(post.smoothed_covs)
    Bn = spec.basis
    eta = mu @ Bn.T
    sd = np.sqrt(np.maximum(basis_variance(Bn, S, _is_pulse(Bn)), 0.0))
    return SSGLMResult(
        mu, S, *(np.asarray(a) for a in (post.filtered_means, post.filtered_covs,
                                         post.predicted_means, post.predicted_covs)),
        *(np.asarray(P[k]) for k in ("Q", "m0", "P0", "gamma")),
        _rate(eta, link, dt), _rate(eta - Z95 * sd, link, dt), _rate(eta + Z95 * sd, link, dt),
        np.asarray(trace), trace[-1], converged, len(trace), time.perf_counter() - t_start,
        psth, trial, Bn, dt, spec.window_times, link)


def _ssglm_gain(P, data, x, spec, psth, trial, y, valid, kw, max_iter, tol, q_floor, q_type,
                initial, t_start, exact) -> SSGLMResult:
    """EM of the model with a per-trial gain (``ssglm(..., trial_gain=True)``)."""
    Kn, R = x.shape
    dt, link = spec.bin_width, spec.link
    V0, g0 = _initial_gain(y, valid)
    exact_q, theta_trial, min_gain = exact
    if exact_q:  # start from the exact Q with its test of drift, given the initial gains
        P = jax.jit(_exact_q, static_argnames=("link", "q_type", "initial"))(
            P, data, theta_trial - jnp.asarray(g0)[:, None], dt, q_floor, min_gain,
            link=link, q_type=q_type, initial=initial, gain=jnp.asarray(g0))
    P = dict(P, V=jnp.asarray(V0))
    x = jnp.concatenate([x, jnp.asarray(g0)[:, None]], axis=1)
    P, lap, trace, converged = run_em(
        lambda P, x: _estep_gain(P, data, x, dt, **kw),
        lambda P, lap: _mstep_gain(P, data, lap.posterior.smoothed_means,
                                   lap.posterior.smoothed_covs, lap.posterior.cross_covs, dt,
                                   q_floor, link=link, q_type=q_type,
                                   history=bool(spec.lags), initial=initial),
        P, x, max_iter, tol, "SSGLM (trial gain)",
        kinds={"Q": "cov", "V": "log", "gamma": "free",
               **({} if initial == "diffuse" else {"m0": "free", "P0": "cov"})})
    post = lap.posterior
    mu, S = np.asarray(post.smoothed_means), np.asarray(post.smoothed_covs)
    Bn = spec.basis
    th, Sth, g, cg = mu[:, :R], S[:, :R, :R], mu[:, R], S[:, R, :]
    eta = th @ Bn.T + g[:, None]
    var = basis_variance(Bn, Sth, _is_pulse(Bn)) + 2.0 * cg[:, :R] @ Bn.T + cg[:, R:]
    sd = np.sqrt(np.maximum(var, 0.0))
    blk = (np.asarray(post.filtered_means)[:, :R], np.asarray(post.filtered_covs)[:, :R, :R],
           np.asarray(post.predicted_means)[:, :R], np.asarray(post.predicted_covs)[:, :R, :R])
    return SSGLMResult(
        th, Sth, *blk, *(np.asarray(P[k]) for k in ("Q", "m0", "P0", "gamma")),
        _rate(eta, link, dt), _rate(eta - Z95 * sd, link, dt), _rate(eta + Z95 * sd, link, dt),
        np.asarray(trace), trace[-1], converged, len(trace), time.perf_counter() - t_start,
        psth, trial, Bn, dt, spec.window_times, link, float(P["V"]), g, cg)


def ssglmFB(spikes, bin_width, windowTimes=None, numBasis=None, fitType: str = "poisson",
            **kwargs) -> SSGLMResult:
    """nSTAT-compatible name for :func:`ssglm` (one implementation): ``windowTimes``
    history edges (s), ``numBasis`` unit pulses over the trial, ``fitType`` 'poisson' or
    'binomial'. The initial state and its covariance are estimated by EM (nSTAT's
    forward-backward-forward pass is not needed)."""
    link = {"poisson": "poisson", "binomial": "bernoulli", "bernoulli": "bernoulli"}.get(
        str(fitType).lower())
    if link is None:
        raise ValueError(f"fitType must be 'poisson' or 'binomial', got {fitType!r}")
    try:
        return ssglm(spikes, bin_width, window_times=windowTimes, n_basis=numBasis, link=link,
                     **kwargs)
    except (ValueError, TypeError) as exc:  # name this function's arguments
        msg = str(exc).replace("window_times", "windowTimes").replace("n_basis", "numBasis")
        raise type(exc)(msg) from None


# ------------------------------------------------------------------------------------
# joint posterior draws, rate comparisons, learning trial
# ------------------------------------------------------------------------------------
@partial(jax.jit, static_argnames=("n_draws",))
def _draws(key, fm, fc, pm, pc, Q, n_draws):
    R = fm.shape[1]
    return backward_sample(key, fm, fc, pm, pc, jnp.eye(R, dtype=fm.dtype), Q, n_draws)


@x64
def sample_theta(result: SSGLMResult, n_draws: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_draws, K, R) joint posterior draws of theta (backward sampling from the forward
    pass at the mode: O(K R^2) memory, never the (K R x K R) covariance)."""
    _check_result(result)
    n_draws = check_int(n_draws, "n_draws", 1)
    seed = check_int(seed, "seed", 0)
    r = result
    return np.asarray(_draws(jax.random.PRNGKey(seed), *(jnp.asarray(a) for a in (
        r.filtered_means, r.filtered_covs, r.predicted_means, r.predicted_covs, r.Q)),
        n_draws))


def _check_result(result) -> None:
    if not isinstance(result, SSGLMResult):
        raise TypeError(f"result must be an SSGLMResult (from ssglm), got "
                        f"{type(result).__name__}")


def _window_rows(result: SSGLMResult, window):
    T = result.basis.shape[0]
    dt = result.bin_width
    if window is None:
        sel = np.ones(T, bool)
    else:
        win = as_float_array(window, "window")
        if win.shape != (2,) or not np.all(np.isfinite(win)) or not win[0] < win[1]:
            raise ValueError(f"window must be (start, stop) seconds with start < stop, got "
                             f"{window!r}")
        lo, hi = float(win[0]), float(win[1])
        t = (np.arange(T) + 0.5) * dt
        sel = (t >= lo) & (t < hi)
        if not sel.any():
            raise ValueError(f"window {window} (s) holds no bin centre of the trial "
                             f"[0, {T * dt:g}) s")
    rows, counts = np.unique(result.basis[sel], axis=0, return_counts=True)
    return rows, counts / counts.sum()


def window_rates(result: SSGLMResult, draws: np.ndarray, window=None) -> np.ndarray:
    """(n, K) mean rate (Hz) over ``window`` = (start, stop) seconds of each draw."""
    _check_result(result)
    draws = as_float_array(draws, "draws")
    if draws.ndim != 3 or draws.shape[1:] != result.theta.shape:
        raise ValueError(f"draws must have shape (n, K, R) = (n, {result.theta.shape[0]}, "
                         f"{result.theta.shape[1]}), got {draws.shape}")
    if not np.all(np.isfinite(draws)):
        raise ValueError("draws must be finite")
    rows, w = _window_rows(result, window)
    out = np.empty(draws.shape[:2])
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(0, draws.shape[0], 64):
            eta = draws[s:s + 64] @ rows.T  # (n, K, U)
            out[s:s + 64] = _rate(eta, result.link, result.bin_width) @ w
    if not np.all(np.isfinite(out)):
        raise ValueError("draws are too large: their rates exp(theta) overflow float64")
    return out


def rate_comparison_matrix(result: SSGLMResult, window=None, *, n_draws: int = 1000,
                           seed: int = 0) -> np.ndarray:
    """(K, K) matrix ``P[m, k] = P(rate in trial m > rate in trial k | data)``, the rate
    being the mean (history-free) rate over ``window`` = (start, stop) seconds (the whole
    trial if None), from ``n_draws`` joint posterior draws (:func:`sample_theta`)."""
    _check_result(result)
    r = window_rates(result, sample_theta(result, n_draws, seed), window)
    return np.mean(r[:, :, None] > r[:, None, :], axis=0)


def learning_trial(prob, *, reference: int = 0, level: float = 0.95,
                   sustained: bool = True):
    """First trial credibly above the reference.

    ``prob``: (K, K) matrix from :func:`rate_comparison_matrix` (column ``reference`` is
    used: P(rate_m > rate_reference)) or a (K,) vector of probabilities. Returns the first
    trial index m > reference with probability > ``level`` (``sustained``: and for every
    later trial too), or None. Indices are 0-based.
    """
    p = as_float_array(prob, "prob")
    reference = check_int(reference, "reference", 0)
    if p.ndim not in (1, 2) or p.shape[0] < 1:
        raise ValueError(f"prob must be (K, K) or (K,), got shape {p.shape}")
    if reference >= p.shape[0]:
        raise ValueError(f"reference must be a trial index < {p.shape[0]}, got {reference}")
    if not (np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))):
        raise ValueError("prob must hold probabilities in [0, 1]")
    if p.ndim == 2:
        if p.shape[0] != p.shape[1]:
            raise ValueError(f"prob must be a square (K, K) matrix, got shape {p.shape}")
        p = p[:, reference]
    return first_above(p, level, sustained, start=reference + 1)


def check_unit_interval(value, name: str) -> float:
    """A number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in (0, 1), got {value!r}")
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return float(value)


def first_above(p: np.ndarray, level: float, sustained: bool, start: int = 0):
    """First index >= ``start`` with ``p > level`` (``sustained``: and every later one)."""
    check_unit_interval(level, "level")
    above = np.asarray(p) > level
    above[:start] = False
    if sustained:
        above = np.flip(np.logical_and.accumulate(np.flip(above)))
    hits = np.flatnonzero(above)
    return int(hits[0]) if hits.size else None


__all__ = ["GLMPSTHResult", "PerTrialGLMResult", "SSGLMResult", "glm_psth", "learning_trial",
           "per_trial_glm", "rate_comparison_matrix", "sample_theta", "ssglm", "ssglmFB",
           "window_rates"]
