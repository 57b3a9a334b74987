"""The linear-Gaussian state-space model: EM, SGD, inference, forecasts, sampling.

The model object holds configuration only (dimensions, covariance structures); parameters
are passed explicitly and results come back as frozen dataclasses of NumPy arrays.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ..._checks import as_float_array, check_seed
from ..._checks import check_int as _check_int
from ..._jax import x64
from ...data.trials import TrialBatch, pack_trials
from ...kernels import kalman as K
from . import em as E
from . import sgd as SGD
from .params import (
    PARAM_NAMES,
    LGSSMParams,
    check_cov_type,
    check_frozen,
    make_params,
    replace_fields,
    structure,
)

PATHS = ("auto", "steady", "general")
# Observations or inputs larger than this in magnitude are rejected: their squares (in the
# Gaussian log-likelihood, the PCA initialisation and the EM statistics) overflow float64.
MAX_ABS_DATA = 1e150


@dataclass(frozen=True)
class EMResult:
    """Result of :meth:`LinearGaussianSSM.fit_em`.

    params: fitted parameters; log_likelihoods (n_iter,): marginal log-likelihood of the
    parameters *entering* each iteration (monotone non-decreasing for exact EM);
    log_likelihood: marginal log-likelihood of the returned parameters; converged: the
    tolerance was met; n_iter: iterations run; path: 'steady' or 'general'; seconds:
    wall time of the iterations.
    """

    params: LGSSMParams
    log_likelihoods: np.ndarray
    log_likelihood: float
    converged: bool
    n_iter: int
    path: str
    seconds: float


@dataclass(frozen=True)
class SGDResult:
    """Result of :meth:`LinearGaussianSSM.fit_sgd`: params, losses (n_steps,) =
    -log p(y) / (number of observed entries) at each step (before its update),
    log_likelihood of the returned params, seconds."""

    params: LGSSMParams
    losses: np.ndarray
    log_likelihood: float
    seconds: float


@dataclass(frozen=True)
class PosteriorResult:
    """Filtered/smoothed moments. Arrays have a leading trial axis (K, T_max, ...) unless a
    single (T, N) trial was given; ragged trials are padded with NaN beyond ``lengths``.

    filtered_means (T, d), filtered_covs (T, d, d), predicted_means (T, d),
    predicted_covs (T, d, d), smoothed_means (T, d) and smoothed_covs (T, d, d) (None for
    ``filter``), cross_covs (T, d, d) = Cov(x_t, x_{t-1} | y) (zero at t = 0),
    log_likelihood: marginal log-likelihood per trial (K,) or scalar, lengths (K,).
    """

    filtered_means: np.ndarray
    filtered_covs: np.ndarray
    predicted_means: np.ndarray
    predicted_covs: np.ndarray
    smoothed_means: np.ndarray | None
    smoothed_covs: np.ndarray | None
    cross_covs: np.ndarray | None
    log_likelihood: np.ndarray | float
    lengths: np.ndarray


@dataclass(frozen=True)
class PredictiveResult:
    """Posterior predictive of the emissions given all data: mean (T, N) and std (T, N)."""

    mean: np.ndarray
    std: np.ndarray


@dataclass(frozen=True)
class ForecastResult:
    """h-step forecast past the end of each trial: state_means (K, h, d), state_covs
    (K, h, d, d), emission_means (K, h, N), emission_covs (K, h, N, N) (no K axis for a
    single trial)."""

    state_means: np.ndarray
    state_covs: np.ndarray
    emission_means: np.ndarray
    emission_covs: np.ndarray


def _to_j(p: LGSSMParams) -> dict:
    return {k: jnp.asarray(getattr(p, k)) for k in PARAM_NAMES}


def _from_j(P: dict, original: LGSSMParams, frozen=()) -> LGSSMParams:
    out = {k: np.array(P[k], dtype=np.float64) for k in PARAM_NAMES}
    for k in frozen:  # bitwise-unchanged frozen parameters
        out[k] = getattr(original, k).copy()
    return replace_fields(original, **out)


def _data(batch: TrialBatch) -> E.Data:
    return E.Data(jnp.asarray(batch.y), jnp.asarray(batch.mask), jnp.asarray(batch.valid),
                  jnp.asarray(batch.inputs))




def _input_block(x, name, K_, T, q) -> np.ndarray:
    """Validate (T, q) or (K, T, q) inputs and broadcast them to (K, T, q)."""
    if x is None:
        if q == 0:
            return np.zeros((K_, T, 0))
        raise ValueError(f"{name} is required when input_dim > 0")
    u = as_float_array(x, name)   # TypeError for strings, None entries, complex numbers
    if u.ndim == 2:
        u = u[None]
    if u.ndim != 3 or u.shape[1:] != (T, q) or u.shape[0] not in (1, K_):
        raise ValueError(f"{name} must be ({T}, {q}) or ({K_}, {T}, {q}), "
                         f"got shape {np.shape(x)}")
    if not np.all(np.isfinite(u)):
        raise ValueError(f"{name} must be finite")
    if np.max(np.abs(u), initial=0.0) > MAX_ABS_DATA:
        raise ValueError(f"{name} has entries larger than {MAX_ABS_DATA:g} in magnitude")
    return np.broadcast_to(u, (K_, T, q))


class LinearGaussianSSM:
    """Linear-Gaussian state-space model (configuration only; parameters are explicit).

    Args:
      state_dim: latent dimension d >= 1.
      emission_dim: number of channels N (optional; checked against data and params).
      input_dim: number of input covariates q (default 0).
      dynamics_covariance, emission_covariance: 'full', 'diagonal' or 'isotropic'
        structure of Q and R kept by EM and SGD.

    Example:
      >>> import numpy as np
      >>> from spikessm import LinearGaussianSSM
      >>> model = LinearGaussianSSM(state_dim=2, emission_dim=5)
      >>> truth = model.random_params(seed=0)
      >>> x, y = model.sample(truth, n_steps=200, seed=1)
      >>> fit = model.fit_em(y, max_iter=20, progress=False)
      >>> bool(np.all(np.diff(fit.log_likelihoods) > -1e-8))
      True
    """

    def __init__(self, state_dim: int, emission_dim: int | None = None, input_dim: int = 0,
                 *, dynamics_covariance: str = "full", emission_covariance: str = "full"):
        self.state_dim = _check_int(state_dim, "state_dim", 1)
        self.emission_dim = None if emission_dim is None else _check_int(
            emission_dim, "emission_dim", 1)
        self.input_dim = _check_int(input_dim, "input_dim", 0)
        self.dynamics_covariance = check_cov_type(dynamics_covariance, "dynamics_covariance")
        self.emission_covariance = check_cov_type(emission_covariance, "emission_covariance")

    def __repr__(self) -> str:
        return (f"LinearGaussianSSM(state_dim={self.state_dim}, emission_dim="
                f"{self.emission_dim}, input_dim={self.input_dim}, dynamics_covariance="
                f"{self.dynamics_covariance!r}, emission_covariance="
                f"{self.emission_covariance!r})")

    # ------------------------------------------------------------------ parameters
    def random_params(self, seed: int = 0, emission_dim: int | None = None) -> LGSSMParams:
        """Random stable parameters (seeded): A = 0.95 x random rotation, C ~ N(0, 1)."""
        seed = check_seed(seed)
        if emission_dim is not None:
            emission_dim = _check_int(emission_dim, "emission_dim", 1)
            if self.emission_dim is not None and emission_dim != self.emission_dim:
                raise ValueError(f"emission_dim={emission_dim} differs from the model's "
                                 f"emission_dim={self.emission_dim}")
        N = self.emission_dim if emission_dim is None else emission_dim
        if N is None:
            raise ValueError("emission_dim is required (model or argument)")
        rng = np.random.default_rng(seed)
        d, q = self.state_dim, self.input_dim
        Qr, _ = np.linalg.qr(rng.standard_normal((d, d)))
        A = 0.95 * Qr
        return make_params(A=A, C=rng.standard_normal((N, d)), Q=0.1 * np.eye(d),
                           R=0.5 * np.eye(N), d=rng.standard_normal(N),
                           B=0.1 * rng.standard_normal((d, q)),
                           D=0.1 * rng.standard_normal((N, q)))

    def _check_params(self, params, N=None) -> LGSSMParams:
        if not isinstance(params, LGSSMParams):
            raise TypeError(f"params must be LGSSMParams, got {type(params).__name__}")
        if params.state_dim != self.state_dim:
            raise ValueError(f"params has state_dim {params.state_dim}; model has "
                             f"{self.state_dim}")
        if params.input_dim != self.input_dim:
            raise ValueError(f"params has input_dim {params.input_dim}; model has "
                             f"{self.input_dim}")
        n = N or self.emission_dim
        if n is not None and params.emission_dim != n:
            raise ValueError(f"params has emission_dim {params.emission_dim}; expected {n}")
        return self._structured_checked(params)

    def _batch(self, observations, inputs, min_length=2) -> TrialBatch:
        batch = pack_trials(observations, inputs, min_length=min_length,
                            emission_dim=self.emission_dim, input_dim=self.input_dim)
        for arr, name in ((batch.y, "observations"), (batch.inputs, "inputs")):
            if arr.size and np.max(np.abs(arr)) > MAX_ABS_DATA:
                raise ValueError(f"{name} has entries larger than {MAX_ABS_DATA:g} in "
                                 "magnitude; their squares overflow float64 (rescale them)")
        return batch

    def initialize(self, observations, inputs=None, *, method: str = "pca",
                   seed: int = 0) -> LGSSMParams:
        """Data-driven initial parameters.

        'pca': C from the leading principal components, latents from the projection,
        A and Q by least squares on those latents, R from the residual variances.
        'random': random rotation dynamics and loadings scaled to the data (seeded).
        """
        seed = check_seed(seed)
        batch = self._batch(observations, inputs)
        return self._initialize(batch, method, seed)

    def _initialize(self, batch: TrialBatch, method: str, seed: int,
                    moments=None) -> LGSSMParams:
        """``moments``: :func:`_data_moments` of ``batch`` when already computed (they do
        not depend on the seed: computed once for a batch of restarts)."""
        if method not in ("pca", "random"):
            raise ValueError(f"init must be 'pca' or 'random', got {method!r}")
        d, q = self.state_dim, self.input_dim
        obs, Y, mean, var = _data_moments(batch) if moments is None else moments
        N = mean.shape[0]
        rng = np.random.default_rng(seed)
        if method == "random":
            Qr, _ = np.linalg.qr(rng.standard_normal((d, d)))
            C = rng.standard_normal((N, d)) * np.sqrt(var)[:, None] / np.sqrt(d)
            p = make_params(A=0.9 * Qr, C=C, Q=np.eye(d), R=np.diag(0.5 * var), d=mean,
                            B=np.zeros((d, q)), D=np.zeros((N, q)))
            return self._structured(p)
        Z = np.where(obs, batch.y - mean, 0.0)
        flat = Z[batch.valid]
        # principal axes from the N x N covariance (cheaper than an SVD of the data)
        evals, evecs = np.linalg.eigh(flat.T @ flat / len(flat))
        order = np.argsort(evals)[::-1][: min(d, N)]
        V = evecs[:, order]
        scale = np.sqrt(np.maximum(evals[order], 1e-12))
        if V.shape[1] < d:  # fewer channels than latents: pad with small random directions
            V = np.concatenate([V, rng.standard_normal((N, d - V.shape[1])) * 1e-3], axis=1)
            scale = np.concatenate([scale, np.full(d - scale.size, 1e-3)])
        C = V * scale
        X = Z @ V / scale  # (K, T, d) unit-variance latents
        Xp = X[:, :-1][batch.valid[:, 1:]]
        Xn = X[:, 1:][batch.valid[:, 1:]]
        A = np.linalg.lstsq(Xp, Xn, rcond=None)[0].T
        rad = np.max(np.abs(np.linalg.eigvals(A))) if d else 0
        if rad >= 0.999:
            A = A * (0.99 / rad)
        resid = Xn - Xp @ A.T
        Q = np.cov(resid.T).reshape(d, d) + 1e-6 * np.eye(d)
        Rv = np.nanvar((Y - mean - X @ C.T).reshape(-1, N), axis=0)
        Rv = np.maximum(Rv, 1e-3 * var)
        m0 = X[:, 0].mean(axis=0)
        p = make_params(A=A, C=C, Q=Q, R=np.diag(Rv), d=mean, m0=m0, P0=np.eye(d),
                        B=np.zeros((d, q)), D=np.zeros((N, q)))
        return self._structured(p)

    def _structured(self, p: LGSSMParams) -> LGSSMParams:
        return replace_fields(p, Q=structure(p.Q, self.dynamics_covariance),
                              R=structure(p.R, self.emission_covariance))

    # ------------------------------------------------------------------ EM
    @x64
    def fit_em(self, observations, inputs=None, *, params: LGSSMParams | None = None,
               frozen=(), max_iter: int = 100, tol: float = 1e-7, init: str = "pca",
               seed: int = 0, path: str = "auto", progress: bool = True,
               steady_buffer: int = 256) -> EMResult:
        """Fit by exact EM.

        Args:
          observations: (T, N), (K, T, N) or a list of (T_k, N) arrays; NaN = missing.
          inputs: matching (T, q) / (K, T, q) / list, when ``input_dim > 0``.
          params: initial parameters (default: :meth:`initialize` with ``init``, ``seed``).
          frozen: names of parameters EM keeps exactly (e.g. ``("A", "Q")``); the others
            get their exact conditional M-step.
          max_iter: maximum EM iterations; tol: stop when the relative log-likelihood
            gain per iteration falls below ``tol`` (0 runs all ``max_iter``).
          path: 'auto' (steady-state path when nothing is missing, trials have equal
            length and are longer than ``2 * steady_buffer`` or long enough to converge),
            'steady' or 'general'.
          progress: show a tqdm progress bar.

        Returns:
          :class:`EMResult`. A warning is issued if the log-likelihood decreases.
        """
        max_iter = _check_em_args(max_iter, tol, path)
        frozen, batch, params = self._prepare_fit(observations, inputs, params, frozen, init,
                                                  seed)
        return self._fit_em_batch(batch, [params], [""], frozen, max_iter, tol, path,
                                  progress, steady_buffer, "EM")[0]

    @x64
    def fit_restarts(self, observations, inputs=None, *, seeds=(0, 1, 2, 3),
                     init: str = "random", frozen=(), max_iter: int = 100,
                     tol: float = 1e-7, path: str = "auto", progress: bool = True,
                     steady_buffer: int = 256) -> list[EMResult]:
        """Independent EM fits from several seeded initialisations, run batched in one
        compiled computation (vmap over restarts; the data are shared).

        Restart ``i`` is the fit ``fit_em(observations, inputs, init=init,
        seed=seeds[i], frozen=frozen, ...)`` would give: same initialisation, same
        iterations, its own convergence (a restart that has converged stops changing
        while the others continue). ``seeds``: distinct integers >= 0. Other arguments
        as in :meth:`fit_em`. Returns a list of :class:`EMResult`, one per seed, in
        order (``seconds`` is the wall time of the batched iterations, shared by all).
        Raises FloatingPointError, naming the seed, if a restart reaches a non-finite
        log-likelihood or parameters (as :meth:`fit_em` does).
        """
        max_iter = _check_em_args(max_iter, tol, path)
        seeds = _check_seeds(seeds)
        frozen = check_frozen(frozen)
        _check_init(init)
        batch = self._batch(observations, inputs)
        moments = _data_moments(batch)
        params = [self._initial_params(batch, None, init, s, moments) for s in seeds]
        labels = [f" (seed {s})" for s in seeds]
        return self._fit_em_batch(batch, params, labels, frozen, max_iter, tol, path,
                                  progress, steady_buffer, "EM restarts")

    def _fit_em_batch(self, batch, params_list, labels, frozen, max_iter, tol, path,
                      progress, steady_buffer, desc) -> list[EMResult]:
        """EM from each of ``params_list`` on one data batch: the restarts run together in
        one compiled loop per chunk (vmap) when there are several. ``labels`` name the
        restarts in warnings and errors ("" for a single fit)."""
        diag = self.emission_covariance != "full"
        data = _data(batch)
        sums = E.data_sums(data)
        T = batch.y.shape[1]
        L = min(_check_int(steady_buffer, "steady_buffer", 8), (T - 1) // 2)
        steady_ok = not batch.any_missing and not batch.ragged and L >= 8
        if path == "steady" and not steady_ok:
            raise ValueError("path='steady' needs complete data, equal-length trials and "
                             f"T > 16; use path='general' (T={T}, missing="
                             f"{batch.any_missing}, ragged={batch.ragged})")
        R = len(params_list)
        # per restart: the steady path until its covariances fail to settle
        steady = np.full(R, steady_ok and path != "general")
        static = dict(diag=diag, L=L, missing=batch.any_missing, frozen=frozen,
                      q_type=self.dynamics_covariance, r_type=self.emission_covariance,
                      per_channel=batch.any_missing and diag)
        run = _ChunkRunner(data, sums, static, batched=R > 1)
        t0 = time.perf_counter()
        P, lls, converged = _run_em(run, _stack(params_list), steady, max_iter, float(tol),
                                    labels, progress, desc)
        seconds = time.perf_counter() - t0
        outs = [_from_j(Pr, p, frozen) for Pr, p in zip(run.unstack(P), params_list)]
        # log-likelihood of the returned parameters: the E-step of one more (discarded)
        # iteration of the already-compiled loop, so no extra compilation
        final = _final_log_likelihoods(run, _stack(outs), steady)
        results = []
        for r, out in enumerate(outs):
            if not (np.isfinite(final[r]) and _finite_params(out)):
                raise FloatingPointError(
                    f"EM{labels[r]} reached non-finite parameters or log-likelihood; "
                    "the data may be degenerate (e.g. a constant channel)")
            results.append(EMResult(out, np.array(lls[r]), float(final[r]),
                                    bool(converged[r]), len(lls[r]),
                                    "steady" if steady[r] else "general", seconds))
        return results

    # ------------------------------------------------------------------ SGD
    @x64
    def fit_sgd(self, observations, inputs=None, *, params: LGSSMParams | None = None,
                frozen=(), n_steps: int = 1000, learning_rate: float = 1e-2,
                init: str = "pca", seed: int = 0, progress: bool = True) -> SGDResult:
        """Fit by Adam (optax) on the exact negative marginal log-likelihood per observed
        entry. Covariances are optimised through Cholesky / log-variance coordinates that
        respect ``dynamics_covariance`` / ``emission_covariance``; ``frozen`` parameters
        are never touched and come back bitwise unchanged."""
        n_steps = _check_int(n_steps, "n_steps", 1)
        if (isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float))
                or not np.isfinite(learning_rate) or learning_rate <= 0):
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        frozen, batch, params = self._prepare_fit(observations, inputs, params, frozen, init,
                                                  seed)
        diag = self.emission_covariance != "full"
        n_obs = float((batch.mask & batch.valid[..., None]).sum())
        kinds = {"Q": self.dynamics_covariance, "R": self.emission_covariance, "P0": "full"}
        free = tuple(k for k in PARAM_NAMES if k not in frozen)
        bar = tqdm(total=n_steps, disable=not progress, desc="SGD", leave=False)
        t0 = time.perf_counter()
        P, losses = SGD.run_adam(_to_j(params), _data(batch), n_obs, kinds, free, diag,
                                 batch.any_missing, n_steps, learning_rate, bar)
        bar.close()
        out = _from_j(P, params, frozen)
        final = float(np.sum(self._log_prob_batch(out, batch)))
        if not (np.isfinite(final) and _finite_params(out)):
            raise FloatingPointError("SGD reached non-finite parameters or log-likelihood; "
                                     "lower learning_rate")
        return SGDResult(out, losses, final, time.perf_counter() - t0)

    def _prepare_fit(self, observations, inputs, params, frozen, init, seed):
        """Validate the arguments shared by the fitting methods."""
        frozen = check_frozen(frozen)
        seed = check_seed(seed)
        _check_init(init)
        batch = self._batch(observations, inputs)
        return frozen, batch, self._initial_params(batch, params, init, seed)

    def _initial_params(self, batch, params, init, seed, moments=None) -> LGSSMParams:
        """``params`` checked, or (None) the ``init`` initialisation drawn with ``seed``."""
        if params is None:
            params = self._initialize(batch, init, seed, moments)
        return self._check_params(params, batch.emission_dim)

    def _structured_checked(self, p: LGSSMParams) -> LGSSMParams:
        for name, kind in (("Q", self.dynamics_covariance), ("R", self.emission_covariance)):
            M = getattr(p, name)
            scale = np.max(np.abs(M))
            if not np.allclose(M, structure(M, kind), rtol=0, atol=1e-12 * scale):
                raise ValueError(f"params.{name} is not {kind}, but the model's "
                                 f"{'dynamics' if name == 'Q' else 'emission'}_covariance "
                                 f"is {kind!r}")
        return p

    # ------------------------------------------------------------------ inference
    def _posterior(self, params, batch):
        diag = self.emission_covariance != "full"
        return E.posterior_general(_to_j(params), _data(batch), diag=diag,
                                   missing=batch.any_missing)

    def _log_prob_batch(self, params, batch) -> np.ndarray:
        post = self._posterior(params, batch)
        return np.asarray(jnp.sum(post.log_likelihoods * jnp.asarray(batch.valid), axis=1))

    def _unpack(self, arr, batch, single):
        a = np.array(arr, dtype=np.float64)
        inval = ~batch.valid
        a[inval] = np.nan
        return a[0] if single else a

    @staticmethod
    def _single(observations):
        return not isinstance(observations, (list, tuple)) and np.ndim(observations) <= 2

    @x64
    def filter(self, params: LGSSMParams, observations, inputs=None) -> PosteriorResult:
        """Kalman filter (information form): filtered and predicted moments and the
        marginal log-likelihood; exact with NaN entries and ragged trials."""
        return self._infer(params, observations, inputs, smooth=False)

    @x64
    def smooth(self, params: LGSSMParams, observations, inputs=None) -> PosteriorResult:
        """RTS smoother: filtered, predicted and smoothed moments and lag-one
        cross-covariances."""
        return self._infer(params, observations, inputs, smooth=True)

    def _infer(self, params, observations, inputs, smooth):
        batch = self._batch(observations, inputs, min_length=1)
        params = self._check_params(params, batch.emission_dim)
        post = self._posterior(params, batch)
        single = self._single(observations)
        u = lambda a: self._unpack(a, batch, single)
        ll = np.asarray(jnp.sum(post.log_likelihoods * jnp.asarray(batch.valid), axis=1))
        v = batch.valid
        _check_finite("the posterior", ll, np.asarray(post.filtered_means)[v],
                      np.asarray(post.filtered_covs)[v],
                      *((np.asarray(post.smoothed_means)[v], np.asarray(post.smoothed_covs)[v])
                        if smooth else ()))
        return PosteriorResult(
            u(post.filtered_means), u(post.filtered_covs), u(post.predicted_means),
            u(post.predicted_covs), u(post.smoothed_means) if smooth else None,
            u(post.smoothed_covs) if smooth else None, u(post.cross_covs) if smooth else None,
            float(ll[0]) if single else ll, batch.lengths)

    @x64
    def log_prob(self, params: LGSSMParams, observations, inputs=None) -> float:
        """Exact marginal log-likelihood log p(y) summed over trials (NaN entries skipped)."""
        batch = self._batch(observations, inputs, min_length=1)
        params = self._check_params(params, batch.emission_dim)
        ll = float(np.sum(self._log_prob_batch(params, batch)))
        _check_finite("the log-likelihood", ll)
        return ll

    def score(self, params: LGSSMParams, observations, inputs=None) -> float:
        """Marginal log-likelihood per observed entry (higher is better)."""
        batch = self._batch(observations, inputs, min_length=1)
        n = int((batch.mask & batch.valid[..., None]).sum())
        return self.log_prob(params, observations, inputs) / n

    @x64
    def posterior_predictive(self, params: LGSSMParams, observations,
                             inputs=None) -> PredictiveResult:
        """Mean and standard deviation of y_t given all the data (smoothed state pushed
        through the emission model, plus R): (T, N) each, or (K, T, N)."""
        batch = self._batch(observations, inputs, min_length=1)
        params = self._check_params(params, batch.emission_dim)
        post = self._posterior(params, batch)
        C = jnp.asarray(params.C)
        mean = post.smoothed_means @ C.T + params.d + jnp.asarray(batch.inputs) @ params.D.T
        var = jnp.einsum("ni,ktij,nj->ktn", C, post.smoothed_covs, C) + np.diag(params.R)
        single = self._single(observations)
        v = batch.valid
        _check_finite("the posterior predictive", np.asarray(mean)[v], np.asarray(var)[v])
        return PredictiveResult(self._unpack(mean, batch, single),
                                self._unpack(jnp.sqrt(var), batch, single))

    @x64
    def forecast(self, params: LGSSMParams, observations, horizon: int,
                 inputs=None, future_inputs=None) -> ForecastResult:
        """Mean and covariance of states and emissions ``1..horizon`` steps past the end
        of each trial, given all of its data. ``future_inputs``: (horizon, q) or
        (K, horizon, q) when ``input_dim > 0``."""
        horizon = _check_int(horizon, "horizon", 1)
        batch = self._batch(observations, inputs, min_length=1)
        params = self._check_params(params, batch.emission_dim)
        Kn, q = batch.n_trials, self.input_dim
        fu = _input_block(future_inputs, "future_inputs", Kn, horizon, q)
        post = self._posterior(params, batch)
        last = batch.lengths - 1
        idx = np.arange(Kn)
        mu = np.asarray(post.filtered_means)[idx, last]
        Sig = np.asarray(post.filtered_covs)[idx, last]
        A, Q, C, R = params.A, params.Q, params.C, params.R
        sm, sc, em, ec = [], [], [], []
        for h in range(horizon):
            mu = mu @ A.T + params.b + fu[:, h] @ params.B.T
            Sig = A @ Sig @ A.T + Q
            Sig = 0.5 * (Sig + np.swapaxes(Sig, -1, -2))
            sm.append(mu)
            sc.append(Sig)
            em.append(mu @ C.T + params.d + fu[:, h] @ params.D.T)
            ec.append(C @ Sig @ C.T + R)
        out = [np.stack(v, axis=1) for v in (sm, sc, em, ec)]
        _check_finite("the forecast", mu, Sig, *out)
        if self._single(observations):
            out = [o[0] for o in out]
        return ForecastResult(*out)

    # ------------------------------------------------------------------ sampling
    def sample(self, params: LGSSMParams, n_steps: int, *, n_trials: int | None = None,
               inputs=None, seed: int = 0):
        """Draw (states, emissions): (T, d), (T, N), or (K, T, d), (K, T, N) when
        ``n_trials`` is given. ``inputs``: (T, q) or (K, T, q)."""
        n_steps = _check_int(n_steps, "n_steps", 1)
        params = self._check_params(params)
        K_ = 1 if n_trials is None else _check_int(n_trials, "n_trials", 1)
        rng = np.random.default_rng(check_seed(seed))
        d, N, q = params.state_dim, params.emission_dim, params.input_dim
        u = _input_block(inputs, "inputs", K_, n_steps, q)
        Lq, Lr, L0 = (np.linalg.cholesky(M) for M in (params.Q, params.R, params.P0))
        x = np.empty((K_, n_steps, d))
        x[:, 0] = params.m0 + rng.standard_normal((K_, d)) @ L0.T
        for t in range(1, n_steps):
            x[:, t] = (x[:, t - 1] @ params.A.T + params.b + u[:, t] @ params.B.T
                       + rng.standard_normal((K_, d)) @ Lq.T)
        y = (x @ params.C.T + params.d + u @ params.D.T
             + rng.standard_normal((K_, n_steps, N)) @ Lr.T)
        if n_trials is None:
            return x[0], y[0]
        return x, y


def _data_moments(batch: TrialBatch):
    """(observed mask, Y with NaN where unobserved, per-channel mean, variance (1 where
    zero)) for the initialisations."""
    obs = batch.mask & batch.valid[..., None]
    Y = np.where(obs, batch.y, np.nan)
    mean = np.nanmean(Y.reshape(-1, Y.shape[-1]), axis=0)
    var = np.nanvar(Y.reshape(-1, Y.shape[-1]), axis=0)
    return obs, Y, mean, np.where(var > 0, var, 1.0)


def _check_em_args(max_iter, tol, path) -> int:
    """Validate the EM loop's arguments; returns max_iter as an int."""
    max_iter = _check_int(max_iter, "max_iter", 1)
    if (isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating))
            or not np.isfinite(tol) or tol < 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    return max_iter


def _check_init(init) -> None:
    if init not in ("pca", "random"):
        raise ValueError(f"init must be 'pca' or 'random', got {init!r}")


def _check_seeds(seeds) -> list[int]:
    """Distinct seeds >= 0, at least one (each checked by :func:`check_seed`)."""
    if isinstance(seeds, (str, bytes)) or not np.iterable(seeds):
        raise TypeError(f"seeds must be a sequence of integer seeds, got {seeds!r:.40}")
    seeds = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
    if not seeds:
        raise ValueError("seeds must name at least one restart")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds has repeated seed(s) {repeated}: a repeated seed refits "
                         "the same initialisation")
    return seeds


def _stack(ps: list) -> dict:
    """Device parameters of one fit, or of several stacked along a leading restart axis
    (stacked on the host: one transfer per parameter)."""
    if len(ps) == 1:
        return _to_j(ps[0])
    return {k: jnp.asarray(np.stack([getattr(p, k) for p in ps])) for k in PARAM_NAMES}


class _ChunkRunner:
    """Calls :func:`spikessm.models.lgssm.em.em_chunk` for one fit or for a batch of
    restarts, with per-restart arrays (R,) in and out either way."""

    def __init__(self, data, sums, static, batched: bool):
        self.data, self.sums, self.static, self.batched = data, sums, static, batched

    def __call__(self, P, n_run, prev, tol, steady: bool):
        """EM chunk for the restarts with ``n_run[r] > 0`` (the others are left exactly
        as they are). Returns (P, lls (R, CHUNK), n_done (R,), converged (R,), ok (R,))."""
        if self.batched:
            out = E.em_chunk(P, self.data, self.sums, jnp.asarray(n_run, jnp.int32),
                             jnp.asarray(prev, jnp.float64), tol, steady=steady,
                             batched=True, **self.static)
        else:  # the scalar call of a single fit
            out = E.em_chunk(P, self.data, self.sums, int(n_run[0]), float(prev[0]), tol,
                             steady=steady, **self.static)
        P, lls, n, conv, ok = out
        return (P, np.atleast_2d(np.asarray(lls)), np.atleast_1d(np.asarray(n)),
                np.atleast_1d(np.asarray(conv)), np.atleast_1d(np.asarray(ok)))

    def unstack(self, P) -> list[dict]:
        """Per-restart host copies of the parameters."""
        if not self.batched:
            return [P]
        host = {k: np.asarray(v) for k, v in P.items()}
        return [{k: v[r] for k, v in host.items()} for r in range(len(host["A"]))]


def _run_em(run: _ChunkRunner, P, steady, max_iter: int, tol: float, labels, progress,
            desc):
    """EM chunks until every restart has converged or run ``max_iter`` iterations.

    ``steady`` (R,) bool: each restart's path, switched (in place) to the general path
    for a restart whose steady covariances did not settle; the restarts on each path run
    together. Returns (P, lls: per restart the list of log-likelihoods, converged (R,)).
    Raises FloatingPointError on a non-finite log-likelihood; warns on a decrease."""
    R = len(labels)
    lls: list[list[float]] = [[] for _ in range(R)]
    converged = np.zeros(R, bool)
    bar = tqdm(total=max_iter, disable=not progress, desc=desc, leave=False)
    while True:
        n_run = np.array([0 if c else min(E.CHUNK, max_iter - len(t))
                          for t, c in zip(lls, converged)])
        if not n_run.any():
            break
        prev = np.array([t[-1] if t else np.nan for t in lls])
        before = max(len(t) for t in lls)
        groups = [(s, (steady == s) & (n_run > 0)) for s in (True, False)]
        for on_steady, sel in groups:
            if not sel.any():
                continue
            P, chunk_lls, n_done, conv, ok = run(P, np.where(sel, n_run, 0), prev, tol,
                                                 bool(on_steady))
            for r in np.flatnonzero(sel):
                if not ok[r]:  # steady covariances did not settle: continue exactly
                    steady[r] = False
                trace = lls[r]
                for v in chunk_lls[r, :n_done[r]].tolist():
                    if not np.isfinite(v):
                        bar.close()
                        raise FloatingPointError(
                            f"EM{labels[r]} produced a non-finite log-likelihood; the data "
                            "may be degenerate (e.g. a constant channel)")
                    if trace and v - trace[-1] < -1e-8 * abs(trace[-1]):
                        warnings.warn(f"EM{labels[r]} log-likelihood decreased by "
                                      f"{trace[-1] - v:.3g}", RuntimeWarning, stacklevel=5)
                    trace.append(v)
                converged[r] = bool(conv[r])
        bar.update(max(len(t) for t in lls) - before)
        if any(lls):
            bar.set_postfix(ll=f"{max(t[-1] for t in lls if t):.4f}")
    bar.close()
    return P, lls, converged


def _final_log_likelihoods(run: _ChunkRunner, P, steady) -> np.ndarray:
    """Log-likelihood of each restart's parameters ``P``: the E-step of one more
    (discarded) iteration on its path, or on the general path where the steady
    covariances do not settle there."""
    R = len(steady)
    nan = np.full(R, np.nan)
    f_lls, ok = np.full((R, 1), np.nan), np.zeros(R, bool)
    if steady.any():
        _, f_lls, _, _, ok = run(P, steady.astype(int), nan, 0.0, True)
    general = ~steady | ~ok
    if general.any():
        _, g_lls, _, _, _ = run(P, general.astype(int), nan, 0.0, False)
        f_lls = np.where(general[:, None], g_lls, f_lls)
    return f_lls[:, 0]


def _finite_params(p: LGSSMParams) -> bool:
    return all(np.all(np.isfinite(getattr(p, k))) for k in PARAM_NAMES)


def _check_finite(what, *arrays):
    """FloatingPointError (naming params and observations) when a result is not finite:
    parameters or data whose scales overflow float64 (e.g. loadings of 1e150, a noise
    covariance of 1e-300 with large residuals)."""
    with np.errstate(all="ignore"):
        ok = all(np.all(np.isfinite(a)) for a in arrays)
    if not ok:
        raise FloatingPointError(f"{what} is not finite at these params and observations "
                                 "(their scales overflow float64)")


def steady_state_posterior(params: LGSSMParams, observations, buffer: int = 256):
    """Steady-path filter/smoother means and shared covariances (advanced use, tests).

    Returns (SteadyPosterior batched over trials, SteadyCovariances)."""
    if np.any(params.B) or np.any(params.D):
        raise ValueError("steady_state_posterior does not take inputs; params has nonzero "
                         "input weights B or D")
    params = replace_fields(params, B=np.zeros((params.state_dim, 0)),
                            D=np.zeros((params.emission_dim, 0)))
    with jax.enable_x64(True):
        batch = pack_trials(observations, min_length=2 * buffer + 1, name="observations")
        if batch.any_missing or batch.ragged:
            raise ValueError("observations must be complete, equal-length trials")
        data = _data(batch)
        J, h, _ = E._project_complete(_to_j(params), data, E.data_sums(data), diag=False)
        cov = K.steady_covariances(jnp.asarray(params.P0), jnp.asarray(params.A),
                                   jnp.asarray(params.Q), J, buffer)
        a = jnp.broadcast_to(jnp.asarray(params.b), h.shape)
        post = jax.vmap(K.steady_filter_smooth, in_axes=(None, None, 0, None, 0, None, None))(
            jnp.asarray(params.m0), jnp.asarray(params.A), a, J, h,
            jnp.zeros(h.shape[1]), cov)
        return post, cov
