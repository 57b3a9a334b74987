"""Held-out one-step-ahead predictive log-likelihood and particle-filter (SMC) likelihoods
for the Poisson LDS and its hybrid (Poisson + Gaussian) form, and a constant-rate baseline.

* :func:`point_process_predictive_ll` / :func:`hybrid_predictive_ll`: sum over scored
  steps of ``log p(g_t | past) + log p(y_t | past, g_t)``, the Poisson term integrated
  over the filter's predictive Gaussian jointly across neurons by importance sampling with
  a Laplace proposal (:mod:`spikessm.kernels.pointprocess`), with a Monte Carlo standard
  error. The Gaussian term is exact given the filter's Gaussian; a model without Poisson
  neurons reproduces the Kalman filter's log-likelihood to rounding.
* :func:`smc_log_likelihood`: particle-filter estimate of the exact log p(y) (the gold
  standard for checking the Gaussian approximations), with a standard error from
  independent repeats.
* :func:`constant_rate_predictive_ll`: held-out Poisson log-likelihood of each neuron at
  its training mean rate (the usual baseline for "bits per spike").

Warm start: the held-out part of each trial is scored after filtering through the part
that precedes it. Either pass ``train_spikes`` (one training segment per trial, followed
by the trial's held-out segment in ``spikes``; they are concatenated internally, so one
long recording split into train then test is one trial of each), or pass the whole data
as ``spikes`` with ``score_from`` (int or one int per trial): steps ``t < score_from`` are
filtered, not scored.

Scores are natural logs and include every constant (``-log y!``, ``log 2 pi``), so they
are comparable across models and with :func:`constant_rate_predictive_ll`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from .._checks import check_bin_width, check_seed
from .._checks import check_int as _check_int
from .._jax import x64
from ..data.trials import as_trial_list, pack_trials
from ..kernels import kalman as K
from ..kernels import pointprocess as PP
from ..models.plds.model import check_counts, history_features
from ..models.plds.params import PLDSParams

DEFENSIVE_FRACTION = 0.1
INFLATION = 1.2


@dataclass(frozen=True)
class PredictiveLogLik:
    """Held-out one-step-ahead predictive log-likelihood (natural log).

    total: sum over scored steps and trials of log p(g_t | past) + log p(y_t | past, g_t);
    poisson, gaussian: the two parts of ``total`` (gaussian is 0 for a pure Poisson LDS);
    std_error: Monte Carlo standard error of ``total`` (the Gaussian part is exact; the
    per-step errors are independent and add in quadrature).
    per_trial (K,), per_trial_std_error (K,): the same per trial.
    per_timestep (K, T_max): each scored step's term (NaN where not scored: before
    ``score_from`` and on padding); poisson_per_timestep, gaussian_per_timestep,
    per_timestep_std_error: its parts and error (same layout). With a single (T, N)
    trial the leading trial axis is dropped.
    n_scored: number of scored time steps; n_spikes: spikes in the scored bins;
    min_ess: smallest importance-sampling effective sample size over scored steps with
    Poisson observations (out of ``n_samples``; NaN if none); n_samples, seed.
    """

    total: float
    per_timestep: np.ndarray
    poisson: float
    gaussian: float
    std_error: float
    per_trial: np.ndarray
    per_trial_std_error: np.ndarray
    poisson_per_timestep: np.ndarray
    gaussian_per_timestep: np.ndarray
    per_timestep_std_error: np.ndarray
    n_scored: int
    n_spikes: int
    min_ess: float
    n_samples: int
    seed: int

    def bits_per_spike(self, baseline: PredictiveLogLik) -> float:
        """(total - baseline.total) / (n_spikes log 2): information gain over a baseline
        scored on the same held-out spikes (e.g. :func:`constant_rate_predictive_ll`)."""
        if not isinstance(baseline, PredictiveLogLik):
            raise TypeError(f"baseline must be a PredictiveLogLik, got "
                            f"{type(baseline).__name__}")
        if baseline.n_spikes != self.n_spikes:
            raise ValueError(f"baseline scored {baseline.n_spikes} spikes, this score "
                             f"{self.n_spikes}: they must be scored on the same bins")
        return (self.poisson - baseline.poisson) / (max(self.n_spikes, 1) * np.log(2.0))


@dataclass(frozen=True)
class SMCLogLik:
    """Particle-filter estimate of log p(y) (and of the Gaussian channels, hybrid).

    total: sum over trials of the per-trial estimates; std_error: its standard error.
    per_trial (K,): log of the mean over ``n_repeats`` independent particle filters of the
    unbiased likelihood estimates; per_trial_std_error (K,): delta-method standard error
    from the spread of the repeats, sd(Z_r) / (mean(Z_r) sqrt(n_repeats)).
    repeats (K, n_repeats): each run's log-likelihood estimate.
    per_timestep (K, T_max): mean over repeats of each step's log mean weight (NaN where
    not scored); min_ess (K,): smallest effective sample size over the trial's steps.
    With ``score_from`` the estimates are of log p(y_scored | y_before) (sum of the
    scored steps' increments). n_particles, n_repeats, seed.
    """

    total: float
    std_error: float
    per_trial: np.ndarray
    per_trial_std_error: np.ndarray
    repeats: np.ndarray
    per_timestep: np.ndarray
    min_ess: np.ndarray
    n_particles: int
    n_repeats: int
    seed: int


# ------------------------------------------------------------------------------------
# validation and packing
# ------------------------------------------------------------------------------------


def _check_params(params):
    if not isinstance(params, PLDSParams):
        raise TypeError(f"params must be PLDSParams (see make_plds_params), got "
                        f"{type(params).__name__}")
    return params


def _is_single(x):
    return x is not None and not isinstance(x, (list, tuple)) and np.ndim(x) <= 2


def _concat(train, test, name_train, name_test):
    """Concatenate per-trial training and held-out segments; returns (list, n_train)."""
    tr = as_trial_list(train, name_train, min_length=1)
    te = as_trial_list(test, name_test, min_length=1)
    if len(tr) != len(te):
        raise ValueError(f"{name_train} has {len(tr)} trials and {name_test} {len(te)}; "
                         "give one training segment per held-out trial")
    if tr[0].shape[1] != te[0].shape[1]:
        raise ValueError(f"{name_train} has {tr[0].shape[1]} columns and {name_test} "
                         f"{te[0].shape[1]}")
    return [np.concatenate([a, b], 0) for a, b in zip(tr, te)], np.array(
        [a.shape[0] for a in tr])


@dataclass(frozen=True)
class _Packed:
    y: np.ndarray        # (K, T, N)
    mask: np.ndarray     # (K, T, N) observed and inside the trial
    valid: np.ndarray    # (K, T)
    scored: np.ndarray   # (K, T) valid and t >= score_from
    off: np.ndarray      # (K, T, N)
    g: np.ndarray        # (K, T, M)
    gmask: np.ndarray    # (K, T, M)
    lengths: np.ndarray
    single: bool


def _pack(params: PLDSParams, spikes, gaussian, covariates, train_spikes, train_gaussian,
          train_covariates, score_from, need_gaussian: bool) -> _Packed:
    N, M, q, L = params.n_neurons, params.n_gaussian, params.n_covariates, params.history
    if need_gaussian and M == 0:
        raise ValueError("params have no Gaussian channels (n_gaussian = 0); use "
                         "point_process_predictive_ll")
    if not need_gaussian and M:
        raise ValueError(f"params have {M} Gaussian channels; use hybrid_predictive_ll "
                         "with the Gaussian observations")
    if M and gaussian is None:
        raise ValueError(f"gaussian observations are required: params have {M} Gaussian "
                         "channels")
    single = _is_single(spikes if N else gaussian)
    n_train = None
    if train_spikes is not None or train_gaussian is not None:
        if score_from is not None:
            raise ValueError("give either train_spikes (training segments preceding the "
                             "held-out spikes) or score_from, not both")
        if N:
            if train_spikes is None:
                raise ValueError("train_spikes is required with train_gaussian")
            spikes, n_train = _concat(train_spikes, spikes, "train_spikes", "spikes")
        if M:
            if train_gaussian is None:
                raise ValueError("train_gaussian is required with train_spikes: the "
                                 "Gaussian channels of the training segments")
            gaussian, n_tr_g = _concat(train_gaussian, gaussian, "train_gaussian",
                                       "gaussian")
            if n_train is not None and not np.array_equal(n_train, n_tr_g):
                raise ValueError("train_gaussian and train_spikes differ in trial lengths")
            n_train = n_tr_g
        if q:
            if train_covariates is None or covariates is None:
                raise ValueError(f"covariates and train_covariates (q = {q}) are required")
            covariates, n_tr_u = _concat(train_covariates, covariates, "train_covariates",
                                         "covariates")
            if not np.array_equal(n_train, n_tr_u):
                raise ValueError("train_covariates and train_spikes differ in trial lengths")
    elif train_covariates is not None:
        raise ValueError("train_covariates given without train_spikes")

    if N:
        if spikes is None:
            raise ValueError("spikes are required: params have Poisson neurons")
        trials = as_trial_list(spikes, "spikes", min_length=1, feature_dim=N)
        check_counts(trials, "spikes")
        if q and covariates is None:
            raise ValueError(f"covariates are required: params have {q} covariates")
        batch = pack_trials(trials, covariates if q else None, name="spikes", min_length=1,
                            input_dim=q if q else None)
        lengths = batch.lengths
        y, mask, valid, u = batch.y, batch.mask & batch.valid[..., None], batch.valid, \
            batch.inputs
    if M:
        gb = pack_trials(gaussian, name="gaussian", min_length=1, emission_dim=M)
        if N:
            if gb.y.shape[0] != y.shape[0] or not np.array_equal(gb.lengths, lengths):
                raise ValueError("gaussian must have the same trials and trial lengths as "
                                 f"spikes: got lengths {gb.lengths.tolist()} vs "
                                 f"{lengths.tolist()}")
        else:
            if spikes is not None:
                raise ValueError("params have no Poisson neurons; pass spikes=None")
            lengths, valid = gb.lengths, gb.valid
            Kn, T = valid.shape
            y, mask = np.zeros((Kn, T, 0)), np.zeros((Kn, T, 0), bool)
            u = np.zeros((Kn, T, q))
            if q:
                if covariates is None:
                    raise ValueError(f"covariates are required: params have {q} covariates")
                u = pack_trials(gaussian, covariates, name="gaussian", min_length=1).inputs
        g, gmask = gb.y, gb.mask & gb.valid[..., None]
    else:
        g, gmask = np.zeros(y.shape[:2] + (0,)), np.zeros(y.shape[:2] + (0,), bool)
    Kn, T = valid.shape

    if n_train is not None:
        start = n_train
    elif score_from is None:
        start = np.zeros(Kn, np.int64)
    else:
        if np.ndim(score_from) == 0:
            start = np.full(Kn, _check_int(score_from, "score_from", 0))
        else:
            start = np.asarray(score_from)
            if start.shape != (Kn,) or not np.issubdtype(start.dtype, np.integer):
                raise ValueError(f"score_from must be an int or {Kn} ints (one per trial), "
                                 f"got {score_from!r}")
        if (start < 0).any() or (start >= lengths).any():
            raise ValueError(f"score_from must lie in [0, trial length) for every trial; "
                             f"got {start.tolist()} for lengths {lengths.tolist()}")
    scored = valid & (np.arange(T)[None, :] >= np.asarray(start)[:, None])

    off = np.broadcast_to(params.d, (Kn, T, N)) + u @ params.D.T
    if L:
        off = off + np.einsum("ktnl,nl->ktn", history_features(y, mask, valid, L), params.H)
    off = np.where(valid[..., None], off, 0.0)
    return _Packed(y, mask, valid, scored, np.ascontiguousarray(off), g, gmask, lengths,
                   single)


# ------------------------------------------------------------------------------------
# compiled cores
# ------------------------------------------------------------------------------------
def _info(P, g, gmask, d):
    Kn, T = gmask.shape[:2]
    if g.shape[-1] == 0:
        dtype = P["A"].dtype
        return (jnp.zeros((Kn, T, d, d), dtype), jnp.zeros((Kn, T, d), dtype),
                jnp.zeros((Kn, T), dtype))
    diag = P["diag"]
    R = jnp.diag(P["R"]) if diag else P["R"]
    e = g - P["dg"]
    return jax.vmap(lambda e_k, m_k: K.gaussian_information(
        e_k, m_k, P["Cg"], R, diagonal=diag))(e, gmask)


@partial(jax.jit, static_argnames=("n_samples", "n_defensive", "diag"))
def _predictive_core(P, y, mask, valid, off, g, gmask, dt, seed, inflation, nodes, scored,
                     *, n_samples, n_defensive, diag):
    P = dict(P, diag=diag)
    d = P["A"].shape[0]
    Jg, hg, rg = _info(P, g, gmask, d)
    key = jax.random.PRNGKey(seed)
    keys = jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(y.shape[0]))
    fn = partial(PP.laplace_predictive_filter, n_samples=n_samples, n_defensive=n_defensive,
                 inflation=inflation, nodes=nodes)
    # scored (T,): steps scored in any trial, unbatched so the sampling is really skipped
    return jax.vmap(fn, in_axes=(0, None, None, None, None, None, 0, 0, 0, 0, None, None,
                                 0, 0, 0, None))(
        keys, P["m0"], P["P0"], P["A"], P["b"], P["Q"], y, mask, valid, off, P["C"], dt,
        Jg, hg, rg, scored)


@partial(jax.jit, static_argnames=("n_particles", "n_repeats", "diag"))
def _smc_core(P, y, mask, valid, off, g, gmask, dt, seed, ess_threshold, *, n_particles,
              n_repeats, diag):
    P = dict(P, diag=diag)
    d = P["A"].shape[0]
    Jg, hg, rg = _info(P, g, gmask, d)
    key = jax.random.PRNGKey(seed)
    fn = partial(PP.particle_filter, n_particles=n_particles, ess_threshold=ess_threshold)

    def one_trial(k, y_k, m_k, v_k, o_k, J_k, h_k, r_k):
        kk = jax.random.fold_in(key, k)

        def one_rep(r):
            return fn(jax.random.fold_in(kk, r), P["m0"], P["P0"], P["A"], P["b"], P["Q"],
                      y_k, m_k, v_k, o_k, P["C"], dt, J_k, h_k, r_k)

        return jax.lax.map(one_rep, jnp.arange(n_repeats))

    return jax.lax.map(lambda a: one_trial(*a), (jnp.arange(y.shape[0]), y, mask, valid, off,
                                                 Jg, hg, rg))


def cubature_nodes(d: int):
    """Nodes (n, d) and weights (n,) of a cubature rule for N(0, I_d): the Gauss-Hermite
    product rule with 7 points per axis for d <= 3 (exact to degree 13 per axis), else the
    fully symmetric degree-5 rule with 2 d^2 + 1 points (Stroud; generators 0,
    sqrt(3) e_i, sqrt(3) (e_i +- e_j); weights 1 + (d^2 - 7d)/18, (4 - d)/18, 1/36)."""
    if d <= 3:
        x, w = np.polynomial.hermite_e.hermegauss(7)
        w = w / w.sum()
        grids = np.meshgrid(*([x] * d), indexing="ij")
        wg = np.meshgrid(*([w] * d), indexing="ij")
        return (np.stack([g.ravel() for g in grids], 1),
                np.prod(np.stack([g.ravel() for g in wg], 1), 1))
    lam = np.sqrt(3.0)
    pts = [np.zeros(d)]
    wts = [1.0 + (d * d - 7.0 * d) / 18.0]
    for i in range(d):
        for s in (1.0, -1.0):
            p = np.zeros(d)
            p[i] = s * lam
            pts.append(p)
            wts.append((4.0 - d) / 18.0)
    for i in range(d):
        for j in range(i + 1, d):
            for si in (1.0, -1.0):
                for sj in (1.0, -1.0):
                    p = np.zeros(d)
                    p[i], p[j] = si * lam, sj * lam
                    pts.append(p)
                    wts.append(1.0 / 36.0)
    return np.array(pts), np.array(wts)


def _nodes(d):
    xi, w = cubature_nodes(d)
    return jnp.asarray(xi), jnp.asarray(w)


def _device_params(params: PLDSParams):
    P = {k: jnp.asarray(getattr(params, k)) for k in ("A", "b", "Q", "C", "m0", "P0")}
    diag = True
    if params.n_gaussian:
        R = params.R
        diag = bool(np.all(R[~np.eye(R.shape[0], dtype=bool)] == 0))
        P.update(Cg=jnp.asarray(params.Cg), dg=jnp.asarray(params.dg), R=jnp.asarray(R))
    return P, diag


def _unpack(a, pk: _Packed):
    a = np.array(a, dtype=np.float64)
    return a[0] if pk.single else a


def _score(params, pk: _Packed, n_samples, seed) -> PredictiveLogLik:
    n_samples = _check_int(n_samples, "n_samples", 10)
    seed = check_seed(seed)
    n_def = int(round(DEFENSIVE_FRACTION * n_samples))
    P, diag = _device_params(params)
    out = _predictive_core(P, jnp.asarray(pk.y), jnp.asarray(pk.mask), jnp.asarray(pk.valid),
                           jnp.asarray(pk.off), jnp.asarray(pk.g), jnp.asarray(pk.gmask),
                           jnp.asarray(params.bin_width), jnp.asarray(seed, jnp.uint32),
                           jnp.asarray(INFLATION), _nodes(params.state_dim),
                           jnp.asarray(np.any(pk.scored, axis=0)),
                           n_samples=n_samples, n_defensive=n_def, diag=diag)
    sc = pk.scored
    gau = np.where(sc, np.asarray(out.gaussian), np.nan)
    poi = np.where(sc, np.asarray(out.poisson), np.nan)
    se = np.where(sc, np.asarray(out.poisson_se), np.nan)
    per = gau + poi
    bad = sc & ~np.isfinite(np.where(sc, per, 0.0))
    if bad.any():
        k, t = (int(i[0]) for i in np.nonzero(bad))
        raise FloatingPointError(
            f"the predictive log-likelihood is not finite at trial {k}, step {t} (and "
            f"{int(bad.sum()) - 1} other scored steps): the parameters give rates beyond "
            "float64 range or a degenerate filter; no score is returned")
    per_trial = np.nansum(per, axis=1)
    per_trial_se = np.sqrt(np.nansum(se ** 2, axis=1))
    has = sc & pk.mask.any(-1)
    ess = np.asarray(out.ess)[has]
    return PredictiveLogLik(
        total=float(per_trial.sum()), per_timestep=_unpack(per, pk),
        poisson=float(np.nansum(poi)), gaussian=float(np.nansum(gau)),
        std_error=float(np.sqrt(np.sum(per_trial_se ** 2))), per_trial=per_trial,
        per_trial_std_error=per_trial_se, poisson_per_timestep=_unpack(poi, pk),
        gaussian_per_timestep=_unpack(gau, pk), per_timestep_std_error=_unpack(se, pk),
        n_scored=int(sc.sum()), n_spikes=int(np.sum(pk.y * pk.mask * sc[..., None])),
        min_ess=float(ess.min()) if ess.size else float("nan"), n_samples=n_samples,
        seed=seed)


# ------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------
@x64
def point_process_predictive_ll(params: PLDSParams, spikes, *, train_spikes=None,
                                covariates=None, train_covariates=None, score_from=None,
                                n_samples: int = 1000, seed: int = 0) -> PredictiveLogLik:
    """One-step-ahead predictive log-likelihood of spike counts under a Poisson LDS.

    ``sum_t log p(y_t | y_{<t})`` over the scored steps, each term the Poisson likelihood
    of all neurons jointly integrated over the filter's predictive Gaussian of the latent,
    by importance sampling with a Laplace proposal (``n_samples`` draws per step, defensive
    mixture; :mod:`spikessm.kernels.pointprocess`). The filter itself is a Gaussian
    (assumed-density) filter whose filtered moments are matched by deterministic cubature,
    so the score is that of this approximate predictive; its Monte Carlo standard error is
    reported, and :func:`smc_log_likelihood` gives the exact marginal likelihood to compare
    with.

    Args:
      params: :class:`~spikessm.models.plds.params.PLDSParams` with no Gaussian channels.
      spikes: held-out counts (T, N), (K, T, N) or a list of (T_k, N) arrays; NaN marks a
        missing bin (it contributes nothing).
      train_spikes: optional training segments, one per trial (same layout), each
        immediately preceding its trial in ``spikes``: they are filtered through (warm
        start) and not scored.
      covariates, train_covariates: (T_k, q) per trial when the model has covariates.
      score_from: alternative to ``train_spikes`` when ``spikes`` holds whole trials: the
        first scored step (int, or one int per trial); earlier steps are only filtered.
      n_samples: importance samples per step (>= 10); seed: seeds the draws (each trial
        and step has its own stream, so a trial's score does not depend on padding).

    Returns:
      :class:`PredictiveLogLik` (its ``gaussian`` part is 0).
    """
    params = _check_params(params)
    pk = _pack(params, spikes, None, covariates, train_spikes, None, train_covariates,
               score_from, need_gaussian=False)
    return _score(params, pk, n_samples, seed)


@x64
def hybrid_predictive_ll(params: PLDSParams, spikes, gaussian, *, train_spikes=None,
                         train_gaussian=None, covariates=None, train_covariates=None,
                         score_from=None, n_samples: int = 1000,
                         seed: int = 0) -> PredictiveLogLik:
    """One-step-ahead predictive log-likelihood under the hybrid (Poisson + Gaussian) model.

    Each scored step contributes ``log p(g_t | past)`` (exact, Kalman update of the
    filter's Gaussian) plus ``log p(y_t | past, g_t)`` (importance sampling as in
    :func:`point_process_predictive_ll`); the result splits ``total`` into these
    ``gaussian`` and ``poisson`` parts. With no Poisson neurons (``params.n_neurons == 0``,
    ``spikes=None``) the score is the exact Kalman predictive log-likelihood.

    Args:
      params: :class:`PLDSParams` with Gaussian channels (M >= 1).
      spikes, gaussian: matching trials (T_k, N) and (T_k, M); NaN = missing.
      train_spikes, train_gaussian, covariates, train_covariates, score_from, n_samples,
      seed: as in :func:`point_process_predictive_ll`.
    """
    params = _check_params(params)
    pk = _pack(params, spikes, gaussian, covariates, train_spikes, train_gaussian,
               train_covariates, score_from, need_gaussian=True)
    return _score(params, pk, n_samples, seed)


@x64
def smc_log_likelihood(params: PLDSParams, spikes, gaussian=None, *, covariates=None,
                       score_from=None, n_particles: int = 10000, n_repeats: int = 4,
                       ess_threshold: float = 0.5, seed: int = 0) -> SMCLogLik:
    """Particle-filter (SMC) estimate of the exact marginal log-likelihood log p(y[, g]).

    Each of ``n_repeats`` independent particle filters (``n_particles`` particles; Gaussian
    channels by the locally optimal proposal, Poisson counts by bootstrap weights;
    systematic resampling when the effective sample size falls below
    ``ess_threshold * n_particles``) gives an unbiased estimate Z_r of the trial's
    likelihood. The per-trial estimate is log mean_r Z_r, and its standard error
    sd(Z_r) / (mean(Z_r) sqrt(n_repeats)) (delta method) comes from the repeats
    themselves: independent runs are the one error estimate that makes no assumption
    about the correlations that resampling induces between steps. Trials are
    independent, so their errors add in quadrature.

    Args:
      params: :class:`PLDSParams` (with or without Gaussian channels).
      spikes: counts as in :func:`point_process_predictive_ll` (None when the model has
        no Poisson neurons); gaussian: Gaussian channels (hybrid); covariates.
      score_from: first scored step (int or per trial): estimates
        log p(y_scored | y_before) as the sum of the scored steps' log mean weights.
      n_particles (>= 2), n_repeats (>= 2), ess_threshold in (0, 1], seed.
    """
    params = _check_params(params)
    n_particles = _check_int(n_particles, "n_particles", 2)
    n_repeats = _check_int(n_repeats, "n_repeats", 2)
    seed = check_seed(seed)
    if isinstance(ess_threshold, bool) or not isinstance(ess_threshold, (int, float)) or \
            not 0 < ess_threshold <= 1:
        raise ValueError(f"ess_threshold must be a number in (0, 1], got {ess_threshold!r}")
    pk = _pack(params, spikes, gaussian, covariates, None, None, None, score_from,
               need_gaussian=params.n_gaussian > 0)
    P, diag = _device_params(params)
    out = _smc_core(P, jnp.asarray(pk.y), jnp.asarray(pk.mask), jnp.asarray(pk.valid),
                    jnp.asarray(pk.off), jnp.asarray(pk.g), jnp.asarray(pk.gmask),
                    jnp.asarray(params.bin_width), jnp.asarray(seed, jnp.uint32),
                    jnp.asarray(float(ess_threshold)), n_particles=n_particles,
                    n_repeats=n_repeats, diag=diag)
    lz = np.asarray(out.log_z)  # (K, R, T)
    sc = pk.scored[:, None, :]
    if not np.all(np.isfinite(np.where(sc, lz, 0.0))):
        raise FloatingPointError("the particle filter produced a non-finite weight (the "
                                 "parameters give rates beyond float64 range); no estimate "
                                 "is returned")
    reps = np.sum(np.where(sc, lz, 0.0), axis=2)  # (K, R)
    top = reps.max(axis=1, keepdims=True)
    w = np.exp(reps - top)
    mw = w.mean(axis=1)
    per_trial = top[:, 0] + np.log(mw)
    per_se = w.std(axis=1, ddof=1) / (mw * np.sqrt(n_repeats))
    per_t = np.where(pk.scored, lz.mean(axis=1), np.nan)
    ess = np.where(pk.valid[:, None, :], np.asarray(out.ess), np.inf).min(axis=(1, 2))
    return SMCLogLik(float(per_trial.sum()), float(np.sqrt(np.sum(per_se ** 2))), per_trial,
                     per_se, reps, _unpack(per_t, pk), ess, n_particles, n_repeats, seed)


def constant_rate_predictive_ll(train_spikes, test_spikes, bin_width: float
                                ) -> PredictiveLogLik:
    """Held-out Poisson log-likelihood of each neuron at its constant training mean rate.

    rate_i = (spikes of neuron i in ``train_spikes``) / (its observed training bins x
    bin_width); a neuron silent in training gets half a spike over its observed training
    time (so a held-out spike does not score -inf). Each observed held-out bin scores
    log Poisson(y_ti | bin_width rate_i); NaN bins are skipped.

    Args:
      train_spikes, test_spikes: counts (T, N), (K, T, N) or lists of (T_k, N) arrays
        (the trial counts may differ; the rates pool all training trials).
      bin_width: seconds per bin.

    Returns:
      :class:`PredictiveLogLik` with exact terms (``std_error`` 0, ``gaussian`` 0).
    """
    check_bin_width(bin_width)
    tr = as_trial_list(train_spikes, "train_spikes", min_length=1)
    check_counts(tr, "train_spikes")
    N = tr[0].shape[1]
    te = as_trial_list(test_spikes, "test_spikes", min_length=1, feature_dim=N)
    check_counts(te, "test_spikes")
    tr_all = np.concatenate(tr, 0)
    n_bins = np.sum(~np.isnan(tr_all), axis=0)
    if (n_bins == 0).any():
        raise ValueError(f"train_spikes: neuron(s) {np.flatnonzero(n_bins == 0).tolist()} "
                         "have no observed training bin")
    counts = np.nansum(tr_all, axis=0)
    lam = np.maximum(counts, 0.5) / n_bins  # expected count per bin
    batch = pack_trials(te, name="test_spikes", min_length=1)
    y, mask = batch.y, batch.mask & batch.valid[..., None]
    terms = np.where(mask, y * np.log(lam) - lam - gammaln(y + 1.0), 0.0)
    per = np.where(batch.valid, terms.sum(-1), np.nan)
    per_trial = np.nansum(per, axis=1)
    zeros = np.where(batch.valid, 0.0, np.nan)
    single = _is_single(test_spikes)
    pick = (lambda a: a[0]) if single else (lambda a: a)
    return PredictiveLogLik(
        total=float(per_trial.sum()), per_timestep=pick(per), poisson=float(per_trial.sum()),
        gaussian=0.0, std_error=0.0, per_trial=per_trial,
        per_trial_std_error=np.zeros_like(per_trial), poisson_per_timestep=pick(per.copy()),
        gaussian_per_timestep=pick(zeros), per_timestep_std_error=pick(zeros.copy()),
        n_scored=int(batch.valid.sum()), n_spikes=int(np.sum(y * mask)),
        min_ess=float("nan"), n_samples=0, seed=0)


__all__ = ["PredictiveLogLik", "SMCLogLik", "point_process_predictive_ll",
           "hybrid_predictive_ll", "smc_log_likelihood", "constant_rate_predictive_ll"]
