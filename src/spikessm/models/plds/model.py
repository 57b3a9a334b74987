"""The Poisson linear dynamical system (and its hybrid Poisson + Gaussian form): user API."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ..._checks import check_bin_width
from ..._checks import check_int as _check_int
from ..._jax import x64
from ...data.trials import as_trial_list, pack_trials
from .. import gauge
from ..lgssm import em as LG
from ..lgssm.model import LinearGaussianSSM
from . import em as E
from .params import PLDSParams, from_jax_dict, make_plds_params, to_jax_dict

INITS = ("sqrt_lds", "log_empirical_rate", "random")
MAX_COUNT = 1e12  # larger "spike counts" are input errors (they overflow the Laplace steps)
POISSON_MAX_MEAN = 1e18  # below NumPy's limit for Generator.poisson (about 9.2e18)


@dataclass(frozen=True)
class PLDSFitResult:
    """Result of :meth:`PoissonLDS.fit`.

    params: fitted :class:`PLDSParams` (in the canonical gauge unless ``canonical=False``);
    log_likelihoods (n_iter,): the objective, the Laplace approximation of the marginal
    log-likelihood log p(y), at the parameters entering each iteration; log_likelihood:
    the objective at the returned parameters; converged; n_iter; seconds; init: the
    initialisation used; seed.
    """

    params: PLDSParams
    log_likelihoods: np.ndarray
    log_likelihood: float
    converged: bool
    n_iter: int
    seconds: float
    init: str
    seed: int


@dataclass(frozen=True)
class PLDSPosterior:
    """Laplace posterior of each trial at fixed parameters (lists over trials).

    means[k] (T_k, d) posterior modes; covs[k] (T_k, d, d); cross_covs[k] (T_k, d, d)
    with cross_covs[k][t] = Cov(x_t, x_{t-1}); rates[k] (T_k, N) posterior-mean firing
    rates in Hz, E[exp(c'x_t + offset)]; log_likelihood: Laplace approximation of
    log p(y) summed over trials; converged: every trial's Newton iteration converged.
    """

    means: list
    covs: list
    cross_covs: list
    rates: list
    log_likelihood: float
    converged: bool


# ------------------------------------------------------------------------------------
# data preparation
# ------------------------------------------------------------------------------------
def check_counts(trials: list, name: str) -> None:
    for k, t in enumerate(trials):
        label = name if len(trials) == 1 else f"{name}[{k}]"
        obs = t[~np.isnan(t)]
        if (obs < 0).any():
            raise ValueError(f"{label} has negative entries; spike counts must be >= 0")
        if (obs != np.round(obs)).any():
            raise ValueError(f"{label} has non-integer entries; spike counts must be whole "
                             "numbers (NaN marks a missing bin)")
        if (obs > MAX_COUNT).any():
            raise ValueError(f"{label} has a count of {obs.max():g} in one bin; counts above "
                             f"{MAX_COUNT:g} are not spike counts (and overflow the fits)")


def history_features(y, mask, valid, L: int):
    """(K, T, N, L) own-history features: y_{t-l, i} within the trial; a missing or
    out-of-trial past bin contributes 0."""
    Kn, T, N = y.shape
    yo = np.where(mask & valid[..., None], y, 0.0)
    H = np.zeros((Kn, T, N, L))
    for lag in range(1, L + 1):
        H[:, lag:, :, lag - 1] = yo[:, :-lag, :]
    return H


@dataclass(frozen=True)
class Prepared:
    data: E.PData
    lengths: np.ndarray
    n_neurons: int
    n_gaussian: int
    any_missing_gauss: bool


class PoissonLDS:
    """Poisson linear dynamical system, optionally with Gaussian channels (hybrid).

    Args:
      state_dim: latent dimension d.
      bin_width: seconds per bin (rates are in Hz: y ~ Poisson(bin_width * rate)).
      n_covariates: q covariates shared by all neurons (weights D, (N, q)).
      history: L own-spike-history lags per neuron (weights H, (N, L)).
      gaussian_covariance: "diagonal" or "full" R for the Gaussian channels (hybrid).

    Fits by Laplace EM (:mod:`spikessm.models.plds.em`); see ``docs/plds.md``.
    """

    def __init__(self, state_dim: int, bin_width: float, *, n_covariates: int = 0,
                 history: int = 0, gaussian_covariance: str = "diagonal"):
        self.state_dim = _check_int(state_dim, "state_dim", 1)
        self.bin_width = check_bin_width(bin_width)
        self.n_covariates = _check_int(n_covariates, "n_covariates", 0)
        self.history = _check_int(history, "history", 0)
        if gaussian_covariance not in ("diagonal", "full"):
            raise ValueError("gaussian_covariance must be 'diagonal' or 'full', got "
                             f"{gaussian_covariance!r}")
        self.gaussian_covariance = gaussian_covariance

    # -- data -------------------------------------------------------------------------
    def prepare(self, spikes, gaussian=None, covariates=None, *,
                n_neurons: int | None = None, n_gaussian: int | None = None) -> Prepared:
        """Validate and pack data (spikes: (T, N), (K, T, N) or a list; NaN = missing)."""
        return self._prepare(spikes, gaussian, covariates, n_neurons=n_neurons,
                             n_gaussian=n_gaussian)

    def _prepare(self, spikes, gaussian=None, covariates=None, *, n_neurons=None,
                 n_gaussian=None, names=("spikes", "gaussian")) -> Prepared:
        """:meth:`prepare`; ``names`` are the caller's names of the spikes and Gaussian
        arguments, used in the error messages (e.g. ``observations`` for the nSTAT API)."""
        sname, gname = names
        trials = as_trial_list(spikes, sname, min_length=1, feature_dim=n_neurons)
        check_counts(trials, sname)
        q = self.n_covariates
        if q and covariates is None:
            raise ValueError(f"covariates is required: the model has n_covariates={q}")
        if not q and covariates is not None:
            raise ValueError("covariates given but the model has n_covariates=0")
        batch = pack_trials(trials, covariates if q else None, name=sname, min_length=1,
                            input_dim=q)
        mask = batch.mask & batch.valid[..., None]
        Kn, T, N = batch.y.shape
        feats = [np.broadcast_to(batch.valid[..., None, None], (Kn, T, N, 1)).astype(float)]
        if q:
            feats.append(np.broadcast_to(batch.inputs[:, :, None, :], (Kn, T, N, q)))
        if self.history:
            feats.append(history_features(batch.y, batch.mask, batch.valid, self.history))
        Z = np.concatenate(feats, axis=-1) * batch.valid[..., None, None]
        g = gsums = None
        M = 0
        any_missing = False
        if gaussian is not None:
            gb = pack_trials(gaussian, name=gname, min_length=1, emission_dim=n_gaussian)
            if gb.y.shape[0] != Kn or not np.array_equal(gb.lengths, batch.lengths):
                raise ValueError(f"{gname} must have the same trials and trial lengths as "
                                 f"{sname}: got lengths {gb.lengths.tolist()} vs "
                                 f"{batch.lengths.tolist()}")
            M = gb.y.shape[2]
            with jax.enable_x64(True):
                g = LG.Data(jnp.asarray(gb.y), jnp.asarray(gb.mask & gb.valid[..., None]),
                            jnp.asarray(gb.valid), jnp.zeros((Kn, T, 0)))
                gsums = LG.data_sums(g)
            any_missing = gb.any_missing
        elif n_gaussian:
            raise ValueError(f"{gname} (Gaussian observations) is required: the model has "
                             f"{n_gaussian} Gaussian channels")
        with jax.enable_x64(True):
            data = E.PData(jnp.asarray(batch.y), jnp.asarray(mask), jnp.asarray(batch.valid),
                           jnp.asarray(Z), g, gsums)
        return Prepared(data, batch.lengths, N, M, any_missing)

    def _settings(self, prep: Prepared, newton_iters: int,
                  warm_start: bool = True) -> E.Settings:
        diag = self.gaussian_covariance == "diagonal"
        return E.Settings(diag=diag, r_type=self.gaussian_covariance,
                          per_channel=bool(prep.any_missing_gauss and diag),
                          newton_iters=newton_iters, warm_start=bool(warm_start),
                          frozen_initial=("P0",) if prep.data.y.shape[0] == 1 else ())

    # -- initialisation ----------------------------------------------------------------
    def initialize(self, spikes, gaussian=None, covariates=None, *, method: str = "sqrt_lds",
                   seed: int = 0) -> PLDSParams:
        """Initial parameters.

        'sqrt_lds' (default): a linear-Gaussian SSM fitted by 20 EM iterations to the
        square-root counts (and the Gaussian channels), its dynamics kept, then every
        neuron's (c_i, d_i) by the exact Poisson M-step given that model's smoothed
        latents. 'log_empirical_rate': d_i = log of the neuron's mean rate, small random
        loadings, A = 0.9 I. 'random': random rotation dynamics and loadings (seeded).
        """
        prep = self.prepare(spikes, gaussian, covariates)
        P, _ = self._initialize(prep, method, seed)
        return from_jax_dict(P, self.n_covariates, self.history, self.bin_width)

    @x64
    def _initialize(self, prep: Prepared, method: str, seed: int):
        if method not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {method!r}")
        _check_int(seed, "seed", 0)
        data = prep.data
        d, dt = self.state_dim, self.bin_width
        N, M = prep.n_neurons, prep.n_gaussian
        y = np.asarray(data.y)
        m = np.asarray(data.mask)
        rate = (y * m).sum((0, 1)) / np.maximum(m.sum((0, 1)), 1) / dt
        logr = np.log(np.maximum(rate, 0.1 / (dt * max(m.sum((0, 1)).max(), 1))))
        rng = np.random.default_rng(seed)
        p_off = np.asarray(data.Z).shape[-1]
        W = np.zeros((N, p_off))
        Kn, T = y.shape[:2]
        x0 = np.zeros((Kn, T, d))
        P = {}
        if method in ("random", "log_empirical_rate"):
            if method == "random":
                Qr, _ = np.linalg.qr(rng.standard_normal((d, d)))
                A = 0.9 * Qr
                C = rng.standard_normal((N, d)) * 0.5 / np.sqrt(d)
            else:
                A = 0.9 * np.eye(d)
                C = rng.standard_normal((N, d)) * 0.1 / np.sqrt(d)
            W[:, 0] = logr - 0.5 * np.sum(C * C, 1)
            P = {"A": A, "b": np.zeros(d), "Q": 0.19 * np.eye(d), "C": C, "W": W,
                 "m0": np.zeros(d), "P0": np.eye(d)}
            if M:
                P.update(self._gauss_init(prep, rng))
            return jax.tree_util.tree_map(jnp.asarray, P), jnp.asarray(x0)
        # sqrt_lds: a Gaussian LDS on the square-root counts of the channels that vary
        # (a constant channel, e.g. a silent neuron, would drive its variance to zero)
        sq = np.where(m, np.sqrt(y), np.nan)
        flat = sq.reshape(-1, N)
        keep = np.nanvar(flat, axis=0) > 0
        obs = [sq[k, :n][:, keep] for k, n in enumerate(prep.lengths)]
        if M:
            gy = np.where(np.asarray(data.g.mask), np.asarray(data.g.y), np.nan)
            gs = np.nanstd(gy.reshape(-1, M), axis=0)
            gs = np.where(gs > 0, gs, 1.0)
            obs = [np.concatenate([o, gy[k, :n] / gs], 1)
                   for k, (o, n) in enumerate(zip(obs, prep.lengths))]
        n_obs = obs[0].shape[1]
        if n_obs == 0:  # every neuron constant (e.g. all silent) and no Gaussian channel
            warnings.warn("init='sqrt_lds' needs a neuron whose counts vary; every neuron is "
                          "constant, using 'log_empirical_rate'", RuntimeWarning, stacklevel=3)
            return self._initialize(prep, "log_empirical_rate", seed)
        lg = LinearGaussianSSM(d, emission_dim=n_obs, dynamics_covariance="full",
                               emission_covariance="diagonal")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = lg.fit_em(obs, max_iter=100, tol=1e-6, progress=False,
                                init="pca" if seed == 0 else "random", seed=seed)
                post = lg.smooth(fit.params, obs)
        except (FloatingPointError, ValueError, np.linalg.LinAlgError) as exc:
            warnings.warn(f"init='sqrt_lds' failed ({exc}); using 'log_empirical_rate'",
                          RuntimeWarning, stacklevel=3)
            return self._initialize(prep, "log_empirical_rate", seed)
        lp = fit.params
        valid = np.asarray(data.valid)
        mu = np.where(valid[..., None], np.asarray(post.smoothed_means).reshape(Kn, T, d), 0.0)
        S = np.where(valid[..., None, None],
                     np.asarray(post.smoothed_covs).reshape(Kn, T, d, d), 0.0)
        # Poisson loadings given the Gaussian model's latents (exact M-step)
        C0 = np.zeros((N, d))
        W[:, 0] = logr
        C, Wn, _ = E.mstep_poisson(jnp.asarray(C0), jnp.asarray(W), data, jnp.asarray(mu),
                                   jnp.asarray(S), dt)
        P = {"A": lp.A, "b": lp.b, "Q": lp.Q, "C": C, "W": Wn, "m0": lp.m0, "P0": lp.P0}
        if M:
            n_sp = int(keep.sum())
            P.update(Cg=lp.C[n_sp:] * gs[:, None], dg=lp.d[n_sp:] * gs,
                     R=np.diag(np.diag(lp.R)[n_sp:] * gs ** 2))
        return jax.tree_util.tree_map(jnp.asarray, P), jnp.asarray(mu)

    def _gauss_init(self, prep: Prepared, rng) -> dict:
        d, M = self.state_dim, prep.n_gaussian
        gy = np.where(np.asarray(prep.data.g.mask), np.asarray(prep.data.g.y), np.nan)
        mean = np.nanmean(gy.reshape(-1, M), axis=0)
        var = np.nanvar(gy.reshape(-1, M), axis=0)
        var = np.where(var > 0, var, 1.0)
        Cg = rng.standard_normal((M, d)) * np.sqrt(var)[:, None] / np.sqrt(2 * d)
        return {"Cg": Cg, "dg": mean, "R": np.diag(0.5 * var)}

    # -- fitting -----------------------------------------------------------------------
    def fit(self, spikes, gaussian=None, covariates=None, *, params: PLDSParams | None = None,
            init: str = "sqrt_lds", seed: int = 0, max_iter: int = 100, tol: float = 1e-6,
            ridge_lambda: float = 0.0, newton_iters: int = 50, newton_tol: float = 1e-8,
            warm_start: bool = True, canonical: bool = True,
            progress: bool = True) -> PLDSFitResult:
        """Fit by Laplace EM.

        Args:
          spikes: counts (T, N), (K, T, N) or a list of (T_k, N) arrays; NaN = missing bin.
          gaussian: matching Gaussian channels (T, M) / (K, T, M) / list (hybrid model).
          covariates: matching (T, q) / list when ``n_covariates > 0``.
          params: initial parameters (default: :meth:`initialize` with ``init``, ``seed``).
          max_iter, tol: stop when the relative change of the Laplace log-likelihood is
            below ``tol``.
          ridge_lambda: strength of the prior A ~ MN(I, Q, I / ridge_lambda) (0 = none).
          newton_iters, newton_tol: Newton iterations of the E-step per EM iteration
            (``newton_iters=1``: a single linearisation step, as simpler codes do).
          warm_start: start each E-step's Newton iterations at the previous mode (default)
            or at x = 0 (with ``newton_iters=1``: one linearisation step from scratch per
            EM iteration, the classical approximation, kept for comparisons).
          canonical: return the parameters in the canonical gauge (whitened latents,
            C'C diagonal and descending, signs fixed).
        """
        prep = self.prepare(spikes, gaussian, covariates)
        results = self._fit_batch(prep, [params], [init], [seed], max_iter, tol, ridge_lambda,
                                  newton_iters, newton_tol, canonical, progress, warm_start)
        return results[0]

    def fit_restarts(self, spikes, gaussian=None, covariates=None, *, seeds=(0, 1, 2, 3),
                     init: str = "random", max_iter: int = 100, tol: float = 1e-6,
                     ridge_lambda: float = 0.0, newton_iters: int = 50,
                     newton_tol: float = 1e-8, canonical: bool = True,
                     progress: bool = True) -> list[PLDSFitResult]:
        """Independent fits from several seeded initialisations, run batched in one compiled
        computation (vmap over restarts). Other arguments as in :meth:`fit`."""
        seeds = [_check_int(s, "seed", 0) for s in seeds]
        if not seeds:
            raise ValueError("seeds must name at least one restart")
        prep = self.prepare(spikes, gaussian, covariates)
        return self._fit_batch(prep, [None] * len(seeds), [init] * len(seeds), seeds,
                               max_iter, tol, ridge_lambda, newton_iters, newton_tol,
                               canonical, progress)

    @x64
    def _fit_batch(self, prep, params_list, inits, seeds, max_iter, tol, ridge_lambda,
                   newton_iters, newton_tol, canonical, progress,
                   warm_start=True) -> list[PLDSFitResult]:
        max_iter, newton_iters = check_em_args(max_iter, tol, ridge_lambda, newton_iters)
        t0 = time.perf_counter()
        Ps, xs = [], []
        for p, init, seed in zip(params_list, inits, seeds):
            if p is None:
                P, x = self._initialize(prep, init, seed)
            else:
                P, x = self._from_params(p, prep), jnp.zeros(prep.data.y.shape[:2]
                                                             + (self.state_dim,))
            Ps.append(P)
            xs.append(x)
        R = len(Ps)
        batched = R > 1
        P = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *Ps) if batched else Ps[0]
        x = jnp.stack(xs) if batched else xs[0]
        s = self._settings(prep, newton_iters, warm_start)
        dt = jnp.asarray(self.bin_width)

        def chunk(P, x, n_run, prev):
            return E.em_chunk(P, prep.data, x, n_run, prev, jnp.asarray(float(tol)), dt,
                              jnp.asarray(float(ridge_lambda)),
                              jnp.asarray(float(newton_tol)), s=s, batched=batched)

        P, x, lls, conv, bad = run_em_chunks(chunk, P, x, R, max_iter, progress,
                                             "Poisson LDS EM")
        # the objective at the returned parameters (and their posterior, for the gauge)
        post = E.posterior(P, prep.data, x, dt, jnp.asarray(float(newton_tol)), diag=s.diag,
                           newton_iters=newton_iters) if not batched else jax.vmap(
            lambda P_, x_: E.posterior(P_, prep.data, x_, dt, jnp.asarray(float(newton_tol)),
                                       diag=s.diag, newton_iters=newton_iters))(P, x)
        final_ll = np.atleast_1d(np.asarray(jnp.sum(post.log_likelihood, axis=-1)))
        modes = np.asarray(post.mode)
        if not batched:
            modes = modes[None]
        seconds = time.perf_counter() - t0
        out = []
        for r in range(R):
            trace = np.asarray(lls[r], dtype=np.float64)
            check_trace(trace, tol, bad[r], seeds[r])
            p = from_jax_dict(P, self.n_covariates, self.history, self.bin_width,
                              k=r if batched else None)
            if canonical:
                p = canonical_params(p, modes[r], np.asarray(prep.data.valid))
            out.append(PLDSFitResult(p, trace, float(final_ll[r]), bool(conv[r] and not bad[r]),
                                     len(trace), seconds, inits[r], int(seeds[r])))
        return out

    def _from_params(self, p: PLDSParams, prep: Prepared) -> dict:
        if not isinstance(p, PLDSParams):
            raise TypeError(f"params must be PLDSParams, got {type(p).__name__}")
        if p.state_dim != self.state_dim or p.n_neurons != prep.n_neurons:
            raise ValueError(f"params are for state_dim={p.state_dim}, {p.n_neurons} neurons;"
                             f" the model/data have {self.state_dim}, {prep.n_neurons}")
        if p.n_gaussian != prep.n_gaussian:
            raise ValueError(f"params have {p.n_gaussian} Gaussian channels; the data have "
                             f"{prep.n_gaussian}")
        if p.n_covariates != self.n_covariates or p.history != self.history:
            raise ValueError("params' covariate / history sizes do not match the model")
        return jax.tree_util.tree_map(jnp.asarray, to_jax_dict(p))

    # -- inference at fixed parameters --------------------------------------------------
    @x64
    def smooth(self, params: PLDSParams, spikes, gaussian=None, covariates=None, *,
               newton_iters: int = 50, newton_tol: float = 1e-10) -> PLDSPosterior:
        """Laplace posterior of the latents (and posterior-mean rates) at ``params``."""
        if not isinstance(params, PLDSParams):
            raise TypeError(f"params must be PLDSParams, got {type(params).__name__}")
        prep = self.prepare(spikes, gaussian, covariates, n_neurons=params.n_neurons,
                            n_gaussian=params.n_gaussian or None)
        P = self._from_params(params, prep)
        s = self._settings(prep, newton_iters)
        x0 = jnp.zeros(prep.data.y.shape[:2] + (self.state_dim,))
        res = E.posterior(P, prep.data, x0, jnp.asarray(self.bin_width),
                          jnp.asarray(float(newton_tol)), diag=s.diag,
                          newton_iters=_check_int(newton_iters, "newton_iters", 1))
        mu = np.asarray(res.mode)
        S = np.asarray(res.posterior.smoothed_covs)
        X = np.asarray(res.posterior.cross_covs)
        off = np.asarray(E.offsets(P, prep.data))
        quad = np.einsum("ni,ktij,nj->ktn", params.C, S, params.C)
        with np.errstate(over="ignore", invalid="ignore"):
            rates = np.exp(mu @ params.C.T + off + 0.5 * quad)
        ll = np.asarray(res.log_likelihood)
        if not (np.all(np.isfinite(ll)) and np.all(np.isfinite(mu)) and np.all(np.isfinite(S))
                and np.all(np.isfinite(rates))):
            raise FloatingPointError(
                "the Laplace posterior is not finite at these params (the rates "
                "exp(C x + d + ...) overflow or the Newton iteration diverged); check "
                "params.d, params.C and params.Q")
        L = prep.lengths
        return PLDSPosterior([mu[k, :n] for k, n in enumerate(L)],
                             [S[k, :n] for k, n in enumerate(L)],
                             [X[k, :n] for k, n in enumerate(L)],
                             [rates[k, :n] for k, n in enumerate(L)],
                             float(np.sum(np.asarray(res.log_likelihood))),
                             bool(np.all(np.asarray(res.converged))))

    def log_prob(self, params: PLDSParams, spikes, gaussian=None, covariates=None) -> float:
        """Laplace approximation of log p(y) at ``params`` (summed over trials)."""
        return self.smooth(params, spikes, gaussian, covariates).log_likelihood

    def sample(self, params: PLDSParams, n_steps: int, *, n_trials: int | None = None,
               covariates=None, seed: int = 0):
        """Simulate. Returns (latents, spikes, gaussian): (T, d), (T, N), (T, M), or with a
        leading trial axis when ``n_trials`` is given. ``covariates``: (K, T, q)."""
        if not isinstance(params, PLDSParams):
            raise TypeError(f"params must be PLDSParams, got {type(params).__name__}")
        single = n_trials is None
        K_ = 1 if single else _check_int(n_trials, "n_trials", 1)
        T = _check_int(n_steps, "n_steps", 1)
        rng = np.random.default_rng(_check_int(seed, "seed", 0))
        q, L = params.n_covariates, params.history
        if q:
            if covariates is None:
                raise ValueError(f"covariates (n_trials, n_steps, {q}) are required")
            u = np.asarray(covariates, dtype=np.float64)
            if u.shape != (K_, T, q):
                raise ValueError(f"covariates must have shape {(K_, T, q)}, got {u.shape}")
        else:
            u = np.zeros((K_, T, 0))
        d, N, M = params.state_dim, params.n_neurons, params.n_gaussian
        x = np.zeros((K_, T, d))
        Lq = np.linalg.cholesky(params.Q)
        x[:, 0] = params.m0 + rng.standard_normal((K_, d)) @ np.linalg.cholesky(params.P0).T
        for t in range(1, T):
            x[:, t] = x[:, t - 1] @ params.A.T + params.b + rng.standard_normal((K_, d)) @ Lq.T
        if not np.all(np.isfinite(x)):
            raise ValueError("the latent path overflows float64: params.A is too unstable "
                             f"for n_steps={T}")
        eta = x @ params.C.T + params.d + u @ params.D.T
        y = np.zeros((K_, T, N))

        def draw(log_rate):
            with np.errstate(over="ignore", invalid="ignore"):
                lam = self.bin_width * np.exp(log_rate)
            # NumPy's Poisson sampler refuses means above ~1e19 ("lam value too large")
            if not np.all(lam < POISSON_MAX_MEAN):
                raise ValueError("params give expected spike counts that overflow (rates "
                                 "exp(C x + d + ...) too large to sample); check params.d, "
                                 "params.C and the stability of params.A")
            return rng.poisson(lam)

        if L:
            for t in range(T):
                h = sum(params.H[:, l] * y[:, t - 1 - l] for l in range(L) if t - 1 - l >= 0)
                y[:, t] = draw(eta[:, t] + h)
        else:
            y = draw(eta).astype(np.float64)
        g = np.zeros((K_, T, M))
        if M:
            Lr = np.linalg.cholesky(params.R)
            g = x @ params.Cg.T + params.dg + rng.standard_normal((K_, T, M)) @ Lr.T
        if single:
            return x[0], y[0], g[0]
        return x, y, g


def check_em_args(max_iter, tol, ridge_lambda, newton_iters=1) -> tuple[int, int]:
    """Validate the EM loop's arguments; returns (max_iter, newton_iters) as ints."""
    max_iter = _check_int(max_iter, "max_iter", 1)
    newton_iters = _check_int(newton_iters, "newton_iters", 1)
    for value, name in ((tol, "tol"), (ridge_lambda, "ridge_lambda")):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return max_iter, newton_iters


def run_em_chunks(chunk, P, x, R: int, max_iter: int, progress: bool, desc: str):
    """Drive compiled EM chunks until convergence, failure or ``max_iter``.

    ``chunk(P, x, n_run, prev_ll) -> (P, x, lls (CHUNK,) or (R, CHUNK), n, converged,
    finite)`` (:func:`spikessm.models.plds.em.em_loop`, batched over ``R`` restarts when
    ``R > 1``). Returns (P, x, lls: list over restarts of lists of finite objectives,
    converged (R,), bad (R,): stopped on a non-finite objective or parameters)."""
    batched = R > 1
    lls = [[] for _ in range(R)]
    prev = jnp.full((R,) if batched else (), jnp.nan)
    conv = np.zeros(R, bool)
    bad = np.zeros(R, bool)      # stopped on a non-finite objective or parameters
    done = 0
    bar = tqdm(total=max_iter, desc=desc, disable=not progress, leave=False)
    while done < max_iter and not (conv | bad).all():
        n_run = min(E.CHUNK, max_iter - done)
        P, x, ll_chunk, n, cv, finite = chunk(P, x, n_run, prev)
        ll_chunk = np.atleast_2d(np.asarray(ll_chunk))
        n = np.atleast_1d(np.asarray(n))
        bad = ~np.atleast_1d(np.asarray(finite))
        for r in range(R):
            # a failing iteration's objective is not kept (its parameters were not
            # taken either: the loop returns the last finite ones)
            lls[r].extend(v for v in ll_chunk[r, :n[r]].tolist() if np.isfinite(v))
        conv = np.atleast_1d(np.asarray(cv))
        prev = jnp.asarray([lr[-1] if lr else np.nan for lr in lls]) if batched else \
            jnp.asarray(lls[0][-1] if lls[0] else np.nan)
        done += n_run
        bar.update(n_run)
        if np.asarray(n).max() < n_run:
            break
    bar.close()
    return P, x, lls, conv, bad


def check_trace(trace, tol, bad: bool, seed) -> None:
    """Warn when the Laplace objective decreased noticeably or the fit stopped early on a
    non-finite iteration."""
    if trace.size >= 2:
        drops = -np.diff(trace)
        big = drops > max(1e-5, 10 * tol) * np.abs(trace[:-1])
        if big.any():
            i = int(np.argmax(big))
            warnings.warn(f"the Laplace log-likelihood decreased at EM iteration {i + 1} "
                          f"(by {drops[i]:.3g}); the Laplace objective is an approximation, "
                          "so small decreases can occur, larger ones suggest a poor fit",
                          RuntimeWarning, stacklevel=4)
    if bad:
        warnings.warn(f"EM (seed {seed}) stopped after {len(trace)} iterations: "
                      "the next iteration gave a non-finite objective or parameters; "
                      "the last finite parameters are returned (converged=False)",
                      RuntimeWarning, stacklevel=4)


def canonical_params(p: PLDSParams, modes, valid) -> PLDSParams:
    """Canonical gauge: latents whitened (identity second moment of the posterior modes
    over all valid steps), rotated so the stacked loadings [C; Cg] have C'C diagonal and
    descending, column signs fixed (:func:`spikessm.models.gauge.canonical_transform`)."""
    xs = modes[valid]
    M2 = xs.T @ xs / max(xs.shape[0], 1)
    M2 = M2 + 1e-12 * np.trace(M2) * np.eye(M2.shape[0])
    Cs = np.concatenate([p.C, p.Cg], 0)
    S = gauge.canonical_transform(Cs, P=M2)
    t = gauge.transform_params({"A": p.A, "b": p.b, "Q": p.Q, "C": p.C, "m0": p.m0,
                                "P0": p.P0}, S)
    Sinv = np.linalg.inv(S)
    return PLDSParams(t["A"], t["b"], t["Q"], t["C"], p.d.copy(), p.D.copy(), p.H.copy(),
                      p.Cg @ Sinv, p.dg.copy(), p.R.copy(), t["m0"], t["P0"], p.bin_width)


__all__ = ["PoissonLDS", "PLDSFitResult", "PLDSPosterior", "PLDSParams", "make_plds_params",
           "canonical_params"]
