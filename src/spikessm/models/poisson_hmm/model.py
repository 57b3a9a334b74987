"""The Poisson hidden Markov model: EM with restarts, inference, sampling, model choice.

The model object holds configuration only (K, dt, structural zeros, priors); parameters
are passed explicitly and results come back as frozen dataclasses of NumPy arrays.
Data: one trial (T, C), equal-length trials (n, T, C) or a list of (T_i, C) arrays of spike
counts (non-negative integers; NaN marks a missing bin or channel, which then contributes
nothing to the likelihood). Inputs are never modified.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln
from tqdm.auto import tqdm

from ..._checks import as_float_array, check_flag, check_seed
from ..._checks import check_int as _check_int
from ..._jax import x64
from ...data.trials import pack_trials
from . import em as E
from .params import PoissonHMMParams, make_params

RAGGED_PAD = 32  # ragged batches are padded to a multiple of this many bins
MAX_COUNT = 1e12  # larger "spike counts" are input errors (and overflow the likelihood)
POISSON_MAX_MEAN = 1e18  # below NumPy's limit for Generator.poisson (about 9.2e18)


@dataclass(frozen=True)
class HMMFitResult:
    """Result of :meth:`PoissonHMM.fit` (best restart).

    params: fitted parameters; log_likelihoods (n_iter,): exact data log-likelihood of
    the parameters entering each iteration (non-decreasing without priors);
    objectives (n_iter,): log-likelihood + log prior (what MAP-EM increases; equal to
    log_likelihoods without priors); expected_complete_lls (n_iter,): Q(theta_{i+1} |
    theta_i); expected_complete_lls_at_current (n_iter,): Q(theta_i | theta_i);
    log_likelihood: of the returned params; converged, n_iter; restart_log_likelihoods
    (n_restarts,): final log-likelihood of each restart; best_restart; n_clipped: clipped
    emission entries at the returned params (see :mod:`spikessm.kernels.hmm`; 0 in
    ordinary use); seconds: wall time of all restarts.
    """

    params: PoissonHMMParams
    log_likelihoods: np.ndarray
    objectives: np.ndarray
    expected_complete_lls: np.ndarray
    expected_complete_lls_at_current: np.ndarray
    log_likelihood: float
    converged: bool
    n_iter: int
    restart_log_likelihoods: np.ndarray
    best_restart: int
    n_clipped: int
    seconds: float


@dataclass(frozen=True)
class LineResult:
    """Data log-likelihood and ECLL along theta + s (theta' - theta).

    s (m,); log_likelihoods (m,): log p(y | theta_s); expected_complete_lls (m,):
    Q(theta_s | theta); bound (m,): Q(theta_s | theta) + LL(theta) - Q(theta | theta), a
    lower bound of log_likelihoods that touches it at s = 0."""

    s: np.ndarray
    log_likelihoods: np.ndarray
    expected_complete_lls: np.ndarray
    bound: np.ndarray


@dataclass(frozen=True)
class _Batch:
    data: E.Data
    lengths: np.ndarray
    n_obs_bins: int
    n_obs_entries: int
    n_channels: int
    single: bool
    mean_rates: np.ndarray  # (C,) counts per bin / dt over observed entries




def _check_positive(value, name):
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not np.isfinite(value) or value <= 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


class PoissonHMM:
    """Poisson hidden Markov model on binned spike counts.

    z_0 ~ Cat(psi), z_t | z_{t-1} = i ~ Cat(A[i]), y_tc | z_t = k ~ Poisson(rates[k, c] dt).

    Args:
      n_states: K >= 1.
      dt: bin width in seconds (> 0); rates are in Hz.
      transition_mask: optional (K, K) bool, False = structural zero of A (kept exactly 0
        by EM): e.g. left-to-right or change-point models. Every row needs a True.
      initial_mask: optional (K,) bool, False = structural zero of psi.
      transition_prior: optional Dirichlet concentration (>= 1) on each row of A, scalar
        or (K, K); initial_prior: same for psi, scalar or (K,).
      rate_prior: optional (shape >= 1, rate >= 0 in seconds) of a Gamma prior on every
        rate in Hz (scalars or arrays broadcastable to (K, C)). With any prior, EM finds
        the MAP estimate; without, the maximum-likelihood estimate.

    Example:
      >>> import numpy as np
      >>> from spikessm import PoissonHMM
      >>> model = PoissonHMM(2, dt=0.01)
      >>> truth = model.random_params(seed=0, n_channels=4, mean_rate=20.0)
      >>> z, y = model.sample(truth, n_trials=5, n_bins=300, seed=1)
      >>> fit = model.fit(y, max_iter=50, progress=False)
      >>> bool(np.all(np.diff(fit.log_likelihoods) >= -1e-8 * abs(fit.log_likelihood)))
      True
    """

    def __init__(self, n_states: int, dt: float, *, transition_mask=None, initial_mask=None,
                 transition_prior=None, initial_prior=None, rate_prior=None):
        self.n_states = K = _check_int(n_states, "n_states", 1)
        self.dt = _check_positive(dt, "dt")
        self.transition_mask = self._mask(transition_mask, (K, K), "transition_mask")
        if not self.transition_mask.any(axis=1).all():
            raise ValueError("transition_mask: every row needs at least one True entry")
        self.initial_mask = self._mask(initial_mask, (K,), "initial_mask")
        if not self.initial_mask.any():
            raise ValueError("initial_mask needs at least one True entry")
        self.transition_prior = self._conc(transition_prior, (K, K), "transition_prior")
        self.initial_prior = self._conc(initial_prior, (K,), "initial_prior")
        if rate_prior is None:
            self.rate_prior = None
        else:
            try:
                a, b = rate_prior
            except (TypeError, ValueError):
                raise ValueError("rate_prior must be a pair (shape, rate) of numbers or "
                                 "arrays") from None
            a = as_float_array(a, "rate_prior shape")   # complex, strings: TypeError
            b = as_float_array(b, "rate_prior rate")
            if not (np.all(np.isfinite(a)) and np.all(a >= 1) and np.all(np.isfinite(b))
                    and np.all(b >= 0)):
                raise ValueError("rate_prior needs shape >= 1 and rate >= 0 (finite)")
            self.rate_prior = (a, b)

    @staticmethod
    def _mask(m, shape, name):
        if m is None:
            return np.ones(shape, dtype=bool)
        a = np.array(m)
        if a.shape != shape or a.dtype != bool:
            raise ValueError(f"{name} must be a bool array of shape {shape}, got "
                             f"{a.dtype} {a.shape}")
        return a.copy()

    @staticmethod
    def _conc(c, shape, name):
        if c is None:
            return np.ones(shape)
        a = as_float_array(c, name)   # complex numbers, strings: TypeError naming it
        try:
            a = np.broadcast_to(a, shape).copy()
        except ValueError:
            raise ValueError(f"{name} must be a number or an array broadcastable to "
                             f"{shape}") from None
        if not np.all(np.isfinite(a)) or np.any(a < 1):
            raise ValueError(f"{name} must be >= 1 (Dirichlet concentration; values < 1 "
                             "have no closed-form MAP M-step)")
        return a

    def __repr__(self) -> str:
        return f"PoissonHMM(n_states={self.n_states}, dt={self.dt})"

    # ------------------------------------------------------------------ data
    def _batch(self, data, n_channels=None) -> _Batch:
        single = not isinstance(data, (list, tuple)) and np.ndim(data) <= 2
        b = pack_trials(data, name="data", min_length=1, emission_dim=n_channels)
        obs = b.mask & b.valid[..., None]
        y = b.y
        if np.any(y[obs] < 0):
            raise ValueError("data must hold non-negative spike counts (NaN = missing)")
        if np.any(y[obs] != np.round(y[obs])):
            raise ValueError("data must hold integer spike counts (NaN = missing); bin "
                             "spike times into counts first")
        if np.any(y[obs] > MAX_COUNT):
            raise ValueError(f"data has counts above {MAX_COUNT:g} in one bin; these are not "
                             "spike counts")
        n, T, C = y.shape
        Tp = T if not b.ragged else -(-T // RAGGED_PAD) * RAGGED_PAD
        Y2 = np.zeros((Tp, 2 * C, n))
        Y2[:T, :C] = np.where(obs, y, 0.0).transpose(1, 2, 0)
        Y2[:T, C:] = obs.transpose(1, 2, 0)
        valid = np.zeros((Tp, n), dtype=bool)
        valid[:T] = b.valid.T
        const = -np.sum(np.where(obs, gammaln(y + 1.0), 0.0), axis=(1, 2))
        n_obs = obs.sum(axis=(0, 1))
        mean = np.where(n_obs > 0, np.where(obs, y, 0).sum(axis=(0, 1)) / np.maximum(n_obs, 1),
                        0.0) / self.dt
        return _Batch(E.Data(jnp.asarray(Y2), jnp.asarray(valid), jnp.asarray(const)),
                      b.lengths.copy(), int(obs.any(axis=2).sum()), int(obs.sum()), C,
                      single, mean)

    def _cfg(self, C) -> E.Config:
        K = self.n_states
        if self.rate_prior is None:
            a, b = np.ones((K, C)), np.zeros((K, C))
        else:
            try:
                a = np.broadcast_to(self.rate_prior[0], (K, C))
                b = np.broadcast_to(self.rate_prior[1], (K, C))
            except ValueError:
                raise ValueError(f"rate_prior does not broadcast to (n_states, n_channels) "
                                 f"= {(K, C)}") from None
        return E.Config(jnp.asarray(self.dt), jnp.asarray(self.transition_mask),
                        jnp.asarray(self.initial_mask), jnp.asarray(self.initial_prior),
                        jnp.asarray(self.transition_prior), jnp.asarray(a), jnp.asarray(b))

    def _check_params(self, params, C=None) -> PoissonHMMParams:
        if not isinstance(params, PoissonHMMParams):
            raise TypeError(f"params must be PoissonHMMParams, got {type(params).__name__}")
        if params.n_states != self.n_states:
            raise ValueError(f"params has {params.n_states} states; the model has "
                             f"{self.n_states}")
        if C is not None and params.n_channels != C:
            raise ValueError(f"params has {params.n_channels} channels; data has {C}")
        if np.any(params.transition_matrix[~self.transition_mask] != 0):
            raise ValueError("params.transition_matrix is nonzero where transition_mask is "
                             "False (structural zeros must be exactly 0)")
        if np.any(params.initial_probs[~self.initial_mask] != 0):
            raise ValueError("params.initial_probs is nonzero where initial_mask is False")
        return params

    @staticmethod
    def _to_j(p: PoissonHMMParams) -> dict:
        return {"init": jnp.asarray(p.initial_probs), "trans": jnp.asarray(p.transition_matrix),
                "rates": jnp.asarray(p.rates)}

    @staticmethod
    def _from_j(P) -> PoissonHMMParams:
        return PoissonHMMParams(np.array(P["init"], dtype=float),
                                np.array(P["trans"], dtype=float),
                                np.array(P["rates"], dtype=float))

    # ------------------------------------------------------------------ parameters
    def random_params(self, seed: int = 0, data=None, *, n_channels: int | None = None,
                      mean_rate: float | None = None) -> PoissonHMMParams:
        """Random initial parameters (seeded). With ``data``, rates are the per-channel
        mean rates times Gamma(2, 1/2) factors and the expected dwell time is about a
        K-th of the median trial length; otherwise ``n_channels`` is required and rates
        scatter around ``mean_rate`` Hz (default 10)."""
        K = self.n_states
        rng = np.random.default_rng(check_seed(seed))
        if data is not None:
            b = data if isinstance(data, _Batch) else self._batch(data, n_channels)
            base = np.maximum(b.mean_rates, 1e-3)
            switch = float(np.clip(K / np.median(b.lengths), 1e-3, 0.2))
        else:
            if n_channels is None:
                raise ValueError("random_params needs data or n_channels")
            C = _check_int(n_channels, "n_channels", 1)
            base = np.full(C, _check_positive(10.0 if mean_rate is None else mean_rate,
                                              "mean_rate"))
            switch = 0.05
        rates = base[None, :] * rng.gamma(2.0, 0.5, size=(K, base.size))
        psi = rng.dirichlet(np.ones(K)) * self.initial_mask
        A = np.zeros((K, K))
        for i in range(K):
            allowed = self.transition_mask[i].copy()
            off = allowed.copy()
            off[i] = False
            if not off.any():
                A[i, i] = 1.0
                continue
            w = rng.dirichlet(np.ones(off.sum()))
            mass = switch if allowed[i] else 1.0
            A[i, off] = mass * w
            if allowed[i]:
                A[i, i] = 1.0 - mass
        return make_params(psi / psi.sum(), A, rates)

    def n_parameters(self, n_channels: int) -> int:
        """Free parameters: rates K C, psi (allowed entries - 1), each row of A (allowed
        entries - 1)."""
        return (self.n_states * _check_int(n_channels, "n_channels", 1)
                + int(self.initial_mask.sum()) - 1
                + int(np.sum(self.transition_mask.sum(axis=1) - 1)))

    # ------------------------------------------------------------------ EM
    @x64
    def fit(self, data, *, params: PoissonHMMParams | None = None, n_restarts: int = 1,
            seed: int = 0, max_iter: int = 200, tol: float = 1e-8,
            progress: bool = True) -> HMMFitResult:
        """Fit by exact EM; keep the best of ``n_restarts`` runs.

        Args:
          data: (T, C), (n, T, C) or a list of (T_i, C) count arrays; NaN = missing.
          params: initial parameters of the first restart (default
            :meth:`random_params` with ``seed``); further restarts start from
            :meth:`random_params` with seeds ``seed + 1, seed + 2, ...``.
          max_iter: EM iterations per restart; tol: stop when the relative change of the
            objective (log-likelihood + log prior) per iteration is <= tol (0 runs all).
          progress: tqdm progress bar.

        Returns:
          :class:`HMMFitResult`. A RuntimeWarning is issued if the objective decreases
          by more than 1e-8 relative (it cannot for exact EM, up to rounding).
        """
        n_restarts = _check_int(n_restarts, "n_restarts", 1)
        max_iter = _check_int(max_iter, "max_iter", 1)
        if (isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating))
                or not np.isfinite(tol) or tol < 0):
            raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
        _check_int(seed, "seed", 0)
        batch = self._batch(data)
        C = batch.n_channels
        if params is not None:
            params = self._check_params(params, C)
        cfg = self._cfg(C)
        t0 = time.perf_counter()
        bar = tqdm(total=n_restarts * max_iter, disable=not progress, desc="PoissonHMM EM",
                   leave=False)
        runs = []
        for r in range(n_restarts):
            p0 = params if (r == 0 and params is not None) else self.random_params(
                seed + r, batch)
            runs.append(self._em(p0, batch, cfg, max_iter, float(tol), bar, r))
        bar.close()
        finals = np.array([run[1] for run in runs])
        best = int(np.nanargmax(finals))
        P, final, tr, conv, n_clip = runs[best]
        return HMMFitResult(self._from_j(P), tr[0], tr[1], tr[2], tr[3], final, conv,
                            len(tr[0]), finals, best, n_clip, time.perf_counter() - t0)

    def _em(self, p0, batch, cfg, max_iter, tol, bar, r):
        P = self._to_j(p0)
        tr = [[], [], [], []]
        conv = False
        while len(tr[0]) < max_iter and not conv:
            n_run = min(E.CHUNK, max_iter - len(tr[0]))
            prev = tr[1][-1] if tr[1] else np.nan
            P, lls, objs, qn, qo, n_done, c, _ = E.em_chunk(P, batch.data, cfg, n_run, prev,
                                                            tol)
            n_done = int(n_done)
            chunk = [np.asarray(a)[:n_done] for a in (lls, objs, qn, qo)]
            for i in range(n_done):
                ll, obj = float(chunk[0][i]), float(chunk[1][i])
                if not np.isfinite(ll):
                    bar.close()
                    raise FloatingPointError(
                        f"EM (restart {r}) produced a non-finite log-likelihood")
                if tr[1] and obj - tr[1][-1] < -1e-8 * abs(tr[1][-1]):
                    warnings.warn(f"EM objective decreased by {tr[1][-1] - obj:.3g}",
                                  RuntimeWarning, stacklevel=3)
                for k in range(4):
                    tr[k].append(float(chunk[k][i]))
            conv = bool(c)
            bar.update(n_done)
            if tr[0]:
                bar.set_postfix(restart=r, ll=f"{tr[0][-1]:.6g}")
        # log-likelihood of the returned parameters: one more (discarded) iteration of the
        # already-compiled loop, so no extra compilation
        _, lls, *_, n_clip = E.em_chunk(P, batch.data, cfg, 1, np.nan, 0.0)
        return P, float(lls[0]), [np.array(t) for t in tr], conv, int(n_clip)

    # ------------------------------------------------------------------ inference
    @x64
    def log_likelihood(self, data, params: PoissonHMMParams, *, per_trial: bool = False):
        """Exact log p(y | params) summed over trials (or (n,) with ``per_trial``); NaN
        entries are skipped."""
        batch = self._batch(data)
        P = self._to_j(self._check_params(params, batch.n_channels))
        per_trial = check_flag(per_trial, "per_trial")
        ll, _ = E.log_likelihoods_jit(P, batch.data, self.dt)
        ll = np.asarray(ll)
        return ll if per_trial else float(ll.sum())

    def score(self, data, params: PoissonHMMParams) -> float:
        """Log-likelihood per observed bin (higher is better)."""
        return self.log_likelihood(data, params) / self._batch(data).n_obs_bins

    @x64
    def posterior(self, data, params: PoissonHMMParams, *, log_space: bool = False):
        """p(z_t = k | y): (T, K) for one trial, else a list of (T_i, K) arrays.
        ``log_space=True`` uses the reference log-space kernel."""
        batch = self._batch(data)
        P = self._to_j(self._check_params(params, batch.n_channels))
        g, _, _ = E.posterior_jit(P, batch.data, self.dt,
                                  log_space=check_flag(log_space, "log_space"))
        g = np.asarray(g).transpose(2, 0, 1)
        out = [g[i, :L].copy() for i, L in enumerate(batch.lengths)]
        return out[0] if batch.single else out

    @x64
    def expected_transitions(self, data, params: PoissonHMMParams, *,
                             log_space: bool = False) -> np.ndarray:
        """Expected transition counts (K, K) summed over trials and time."""
        batch = self._batch(data)
        P = self._to_j(self._check_params(params, batch.n_channels))
        return np.asarray(E.posterior_jit(P, batch.data, self.dt,
                                          log_space=check_flag(log_space, "log_space"))[2])

    @x64
    def viterbi(self, data, params: PoissonHMMParams):
        """Most probable state path: (T,) int array for one trial, else a list."""
        batch = self._batch(data)
        P = self._to_j(self._check_params(params, batch.n_channels))
        paths, _ = E.viterbi_jit(P, batch.data, self.dt)
        paths = np.asarray(paths).T
        out = [paths[i, :L].astype(np.int64) for i, L in enumerate(batch.lengths)]
        return out[0] if batch.single else out

    # ------------------------------------------------------------------ ECLL
    @x64
    def expected_complete_ll(self, data, params_at: PoissonHMMParams,
                             params_eval: PoissonHMMParams) -> float:
        """Q(params_eval | params_at) = E_{p(z | y, params_at)}[log p(y, z | params_eval)]."""
        batch = self._batch(data)
        Pa = self._to_j(self._check_params(params_at, batch.n_channels))
        Pe = self._to_j(self._check_params(params_eval, batch.n_channels))
        st = E.stats_jit(Pa, batch.data, self.dt)
        return float(E.ecll_jit(st, Pe, self.dt, jnp.sum(batch.data.const)))

    @x64
    def mstep(self, data, params: PoissonHMMParams) -> PoissonHMMParams:
        """One exact EM update theta -> theta'."""
        batch = self._batch(data)
        P = self._to_j(self._check_params(params, batch.n_channels))
        st = E.stats_jit(P, batch.data, self.dt)
        return self._from_j(E.mstep(P, st, self._cfg(batch.n_channels)))

    @x64
    def ll_ecll_line(self, data, params: PoissonHMMParams,
                     params_next: PoissonHMMParams | None = None, s=None) -> LineResult:
        """LL and ECLL along theta + s (theta' - theta) (default theta' = one EM step,
        s = 31 points from 0 to 1.5, or to where the parameters stop being valid if that
        comes first (never before 1)); every point must give valid parameters."""
        batch = self._batch(data)
        params = self._check_params(params, batch.n_channels)
        nxt = self.mstep(data, params) if params_next is None else self._check_params(
            params_next, batch.n_channels)
        if s is None:  # up to 1.5, or as far as the parameters stay valid
            smax = 1.5
            for a, b in ((params.initial_probs, nxt.initial_probs),
                         (params.transition_matrix, nxt.transition_matrix),
                         (params.rates, nxt.rates)):
                d = b - a
                neg = d < 0
                if neg.any():
                    smax = min(smax, float(np.min(-a[neg] / d[neg])))
            s = np.linspace(0.0, max(smax, 1.0), 31)
        s = np.asarray(s, dtype=float).ravel()
        P = self._to_j(params)
        st = E.stats_jit(P, batch.data, self.dt)
        const = jnp.sum(batch.data.const)
        lls, qs = [], []
        for si in s:
            try:
                ps = make_params(
                    params.initial_probs + si * (nxt.initial_probs - params.initial_probs),
                    params.transition_matrix + si * (nxt.transition_matrix
                                                     - params.transition_matrix),
                    params.rates + si * (nxt.rates - params.rates))
            except ValueError as exc:
                raise ValueError(f"s={si:g} leaves the parameter space ({exc})") from None
            Ps = self._to_j(ps)
            lls.append(float(jnp.sum(E.log_likelihoods_jit(Ps, batch.data, self.dt)[0])))
            qs.append(float(E.ecll_jit(st, Ps, self.dt, const)))
        lls, qs = np.array(lls), np.array(qs)
        ll0 = float(jnp.sum(st.ll))
        q0 = float(E.ecll_jit(st, P, self.dt, const))
        return LineResult(s, lls, qs, qs + ll0 - q0)

    # ------------------------------------------------------------------ sampling, criteria
    def sample(self, params: PoissonHMMParams, n_trials: int, n_bins: int, seed: int = 0):
        """Draw (states (n_trials, n_bins) int, counts (n_trials, n_bins, C) float)."""
        params = self._check_params(params)
        n = _check_int(n_trials, "n_trials", 1)
        T = _check_int(n_bins, "n_bins", 1)
        rng = np.random.default_rng(check_seed(seed))
        with np.errstate(over="ignore"):
            if not np.all(params.rates * self.dt < POISSON_MAX_MEAN):
                raise ValueError(f"params.rates * dt must stay below {POISSON_MAX_MEAN:g} "
                                 "expected counts per bin to be sampled")
        K = self.n_states
        z = np.empty((n, T), dtype=np.int64)
        z[:, 0] = rng.choice(K, size=n, p=params.initial_probs)
        cum = np.cumsum(params.transition_matrix, axis=1)
        cum[:, -1] = 1.0
        for t in range(1, T):
            u = rng.random(n)
            z[:, t] = np.minimum((u[:, None] > cum[z[:, t - 1]]).sum(axis=1), K - 1)
        y = rng.poisson(params.rates[z] * self.dt).astype(np.float64)
        return z, y

    def aic(self, data, params: PoissonHMMParams) -> float:
        """Akaike information criterion, -2 LL + 2 n_parameters."""
        return -2 * self.log_likelihood(data, params) + 2 * self.n_parameters(params.n_channels)

    def bic(self, data, params: PoissonHMMParams) -> float:
        """Bayesian information criterion, -2 LL + n_parameters log(observed bins)."""
        n = self._batch(data).n_obs_bins
        return (-2 * self.log_likelihood(data, params)
                + self.n_parameters(params.n_channels) * np.log(n))
