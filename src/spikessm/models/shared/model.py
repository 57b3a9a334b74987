"""Models shared across recordings: common latent dynamics, per-recording loadings.

Recording r has its own neurons (N_r Poisson channels, M_r Gaussian channels) and its own
emission parameters (C_r, d_r; Cg_r, dg_r, R_r), while the latent dynamics (A, b, Q) and,
by default, the initial-state distribution (m0, P0) are common::

    x^r_0 ~ N(m0, P0),    x^r_t = A x^r_{t-1} + b + w_t,    w_t ~ N(0, Q)
    y^r_{t,i} ~ Poisson(bin_width exp(c^r_i' x^r_t + d^r_i))     (Poisson LDS / hybrid)
    g^r_t = Cg_r x^r_t + dg_r + v_t,  v_t ~ N(0, R_r)          (Gaussian channels)

EM runs the single-recording E-step on every recording and the closed-form M-step of
A, b, Q (m0, P0) on the sufficient statistics summed over recordings
(:mod:`spikessm.models.shared.em`). The fitted latents of all recordings live in one
canonical frame (:func:`shared_canonical_transform`), so trajectories from different days
or animals can be plotted together. Each recording's fitted parameters are ordinary
:class:`~spikessm.models.plds.PLDSParams` / :class:`~spikessm.models.lgssm.LGSSMParams`,
so every single-recording tool (smoothing, predictive log-likelihood, co-smoothing) applies
to them unchanged.

Documented handling of edge cases (``docs/shared.md``):

* recordings must share the bin width (the dynamics are per bin): pass ``bin_widths`` (or
  trial containers with a ``bin_width`` attribute) and different values raise ValueError;
  rebin first with :func:`spikessm.data.binning.rebin_counts`;
* a recording without a single spike raises ValueError naming it (it carries no
  information about its loadings, whose M-step would diverge);
* a recording with a single neuron is accepted: it is weakly informative (one projection
  of the latent), its loading is identified through the shared dynamics;
* no covariates or spike history (n_covariates = history = 0); diagonal R for Gaussian
  channels.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy.linalg import expm
from scipy.optimize import minimize

from ..._checks import as_float_array, check_bin_width, check_flag
from ..._checks import check_int as _check_int
from ..._jax import x64
from ...data.trials import TrialBatch, pack_trials
from .. import gauge
from ..lgssm import em as LG
from ..lgssm.model import LinearGaussianSSM
from ..lgssm.params import LGSSMParams, make_params
from ..plds import em as E
from ..plds.model import (
    PLDSPosterior,
    PoissonLDS,
    check_em_args,
    check_trace,
    run_em_chunks,
)
from ..plds.params import PLDSParams
from . import em as SE

INIT_SEPARATE_ITERS = 20   # separate-dynamics EM iterations before aligning recordings


# ------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SharedPLDSParams:
    """Parameters of a shared Poisson LDS / hybrid: ``recordings[r]`` is recording r's
    complete :class:`PLDSParams` (the shared A, b, Q (m0, P0) repeated in each, its own
    C (N_r, d), d (N_r,), Cg (M_r, d), dg, R). ``shared_dynamics``: A, b, Q are common
    (False for separate per-recording fits); ``shared_initial``: m0, P0 are common.

    Built directly, the fields are checked: ``recordings`` a non-empty list or tuple of
    :class:`PLDSParams` with one state dimension and one bin width (stored as a tuple), the
    flags True or False, and the parameters they declare common equal across recordings
    (to a relative 1e-6); ValueError / TypeError name the field."""

    recordings: tuple
    shared_dynamics: bool
    shared_initial: bool

    def __post_init__(self):
        _check_shared(self, PLDSParams)

    @property
    def A(self) -> np.ndarray:
        return self.recordings[0].A

    @property
    def b(self) -> np.ndarray:
        return self.recordings[0].b

    @property
    def Q(self) -> np.ndarray:
        return self.recordings[0].Q

    @property
    def state_dim(self) -> int:
        return self.recordings[0].state_dim

    @property
    def n_recordings(self) -> int:
        return len(self.recordings)


@dataclass(frozen=True)
class SharedLGSSMParams:
    """Parameters of a shared LG-SSM: ``recordings[r]`` is recording r's complete
    :class:`LGSSMParams` (shared A, b, Q (m0, P0) repeated; own C (N_r, d), d, diagonal
    R). ``shared_dynamics``, ``shared_initial`` as in :class:`SharedPLDSParams`, and
    checked the same way when built directly."""

    recordings: tuple
    shared_dynamics: bool
    shared_initial: bool

    def __post_init__(self):
        _check_shared(self, LGSSMParams)

    A = SharedPLDSParams.A
    b = SharedPLDSParams.b
    Q = SharedPLDSParams.Q
    state_dim = SharedPLDSParams.state_dim
    n_recordings = SharedPLDSParams.n_recordings


SHARED_RTOL = 1e-6   # parameters declared common may differ by rounding across recordings


def _check_shared(sp, cls) -> None:
    """Validate a shared-parameter dataclass in place (recordings stored as a tuple)."""
    recs = sp.recordings
    if not isinstance(recs, (list, tuple)):
        raise TypeError(f"recordings must be a list or tuple of {cls.__name__}, got "
                        f"{type(recs).__name__}")
    if len(recs) == 0:
        raise ValueError("recordings is empty; give one parameter set per recording")
    for r, p in enumerate(recs):
        if not isinstance(p, cls):
            raise TypeError(f"recordings[{r}] must be {cls.__name__}, got {type(p).__name__}")
    for flag in ("shared_dynamics", "shared_initial"):
        check_flag(getattr(sp, flag), flag)
    ref = recs[0]
    common = (("A", "b", "Q") if sp.shared_dynamics else ()) + \
        (("m0", "P0") if sp.shared_initial else ())
    for r, p in enumerate(recs):
        if p.state_dim != ref.state_dim:
            raise ValueError(f"recordings[{r}] has state_dim {p.state_dim}, recordings[0] "
                             f"{ref.state_dim}")
        if getattr(p, "bin_width", None) != getattr(ref, "bin_width", None):
            raise ValueError(f"recordings[{r}] has bin width {p.bin_width}, recordings[0] "
                             f"{ref.bin_width}: the shared dynamics are per bin")
        for k in common:
            a, b = getattr(p, k), getattr(ref, k)
            if np.max(np.abs(a - b)) > SHARED_RTOL * max(np.max(np.abs(a)), np.max(np.abs(b))):
                flag = "shared_dynamics" if k in ("A", "b", "Q") else "shared_initial"
                raise ValueError(f"recordings[{r}].{k} differs from recordings[0].{k} but "
                                 f"{flag} is True")
    object.__setattr__(sp, "shared_dynamics", bool(sp.shared_dynamics))
    object.__setattr__(sp, "shared_initial", bool(sp.shared_initial))
    object.__setattr__(sp, "recordings", tuple(recs))


@dataclass(frozen=True)
class SharedFitResult:
    """Result of a shared fit.

    params: :class:`SharedPLDSParams` or :class:`SharedLGSSMParams` (in the joint canonical
    gauge unless ``canonical=False``); log_likelihoods (n_iter,): the objective at the
    parameters entering each iteration, summed over recordings (Laplace-approximate
    marginal log-likelihood for the Poisson LDS / hybrid, exact marginal log-likelihood for
    the LG-SSM); log_likelihood: the objective at the returned parameters;
    per_recording_log_likelihood (R,); converged; n_iter; seconds; init; seed.
    """

    params: object
    log_likelihoods: np.ndarray
    log_likelihood: float
    per_recording_log_likelihood: np.ndarray
    converged: bool
    n_iter: int
    seconds: float
    init: str
    seed: int


# ------------------------------------------------------------------------------------
# validation and padding
# ------------------------------------------------------------------------------------
def _recording_list(recordings, name="recordings") -> list:
    if not isinstance(recordings, (list, tuple)):
        raise TypeError(f"{name} must be a list with one entry per recording (each a (T, N) "
                        f"array, a (K, T, N) array or a list of trials), got "
                        f"{type(recordings).__name__}")
    if len(recordings) == 0:
        raise ValueError(f"{name} is empty; give at least one recording")
    return list(recordings)


def check_bin_widths(recordings, bin_widths, bin_width: float) -> None:
    """Every recording must use the model's bin width (the dynamics are per bin).

    Bin widths come from ``bin_widths`` (one per recording) or from a ``bin_width``
    attribute of a recording (trial containers)."""
    R = len(recordings)
    found = [getattr(r, "bin_width", None) for r in recordings]
    if bin_widths is not None:
        bw = list(np.atleast_1d(np.asarray(bin_widths, dtype=np.float64)))
        if len(bw) != R:
            raise ValueError(f"bin_widths has {len(bw)} entries; there are {R} recordings")
        found = [b if f is None else f for b, f in zip(bw, found)]
    for r, b in enumerate(found):
        if b is None:
            continue
        b = check_bin_width(b, f"bin_widths[{r}]")
        if not np.isclose(b, bin_width, rtol=1e-9, atol=0):
            raise ValueError(
                f"recording {r} has bin width {b} s but the model's is {bin_width} s: the "
                "shared dynamics (A, Q) are per time bin, so every recording must use the same "
                "bin width; rebin it first (spikessm.data.binning.rebin_counts)")


def _pad(a, shape, fill=0):
    a = np.asarray(a)
    out = np.full(shape, fill, dtype=a.dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


def _stack(arrays, fill=0):
    shape = tuple(max(s) for s in zip(*(a.shape for a in arrays)))
    return np.stack([_pad(a, shape, fill) for a in arrays])


@dataclass(frozen=True)
class SharedPrepared:
    data: E.PData            # leading recording axis
    n_neurons: tuple         # N_r
    n_gaussian: tuple        # M_r
    lengths: tuple           # per recording (K_r,) trial lengths
    n_trials: tuple


def _relabel(exc, r):
    return type(exc)(f"recordings[{r}]: {exc}")


MAX_ABS = 1e150  # larger observations overflow the second moments (x**2) in float64


def _check_magnitude(batch: TrialBatch) -> TrialBatch:
    if np.max(np.abs(batch.y), initial=0.0) > MAX_ABS:
        raise ValueError(f"observations have values above {MAX_ABS:g} in magnitude; their "
                         "squares overflow float64 (rescale the data)")
    return batch


# ------------------------------------------------------------------------------------
# canonical gauge and alignment of separately fitted recordings
# ------------------------------------------------------------------------------------
def _second_moment(means, valid, covs=None):
    """Average E[x x'] over valid steps of (K, T, d) means (and (K, T, d, d) covs)."""
    xs = means[valid]
    M2 = xs.T @ xs
    if covs is not None:
        M2 = M2 + covs[valid].sum(0)
    M2 = M2 / max(xs.shape[0], 1)
    return M2 + 1e-12 * np.trace(M2) * np.eye(M2.shape[0])


def shared_canonical_transform(loadings, means, valid) -> np.ndarray:
    """One change of basis S (d, d) for all recordings: latents whitened by their second
    moment pooled over recordings (all valid steps), rotated so that the stacked loadings
    [C_1; ...; C_R] satisfy sum_r C_r'C_r diagonal and descending, column signs fixed
    (:func:`spikessm.models.gauge.canonical_transform`). ``loadings``: list of (N_r, d);
    ``means``: list of (K_r, T_r, d) posterior means; ``valid``: list of (K_r, T_r)."""
    if not all(isinstance(a, (list, tuple)) for a in (loadings, means, valid)):
        raise TypeError("loadings, means and valid must be lists with one entry per recording")
    if not len(loadings) == len(means) == len(valid) >= 1:
        raise ValueError(f"loadings, means and valid must have one entry per recording, got "
                         f"{len(loadings)}, {len(means)} and {len(valid)}")
    Cs, ms, vs = [], [], []
    for r, (C, m, v) in enumerate(zip(loadings, means, valid)):
        C = as_float_array(C, f"loadings[{r}]")
        m = as_float_array(m, f"means[{r}]")
        if isinstance(v, (str, bytes)) or v is None:
            raise TypeError(f"valid[{r}] must be a boolean (K_r, T_r) array")
        v = np.asarray(v)
        if C.ndim != 2 or m.ndim != 3 or m.shape[2] != C.shape[1] or C.shape[1] < 1:
            raise ValueError(f"loadings[{r}] must be (N_r, d) and means[{r}] (K_r, T_r, d); "
                             f"got {C.shape} and {m.shape}")
        if v.dtype != bool or v.shape != m.shape[:2]:
            raise ValueError(f"valid[{r}] must be a boolean array of shape {m.shape[:2]}, got "
                             f"{v.dtype} {v.shape}")
        if not (np.all(np.isfinite(C)) and np.all(np.isfinite(m[v]))):
            raise ValueError(f"loadings[{r}] and means[{r}] must be finite")
        Cs.append(C), ms.append(m), vs.append(v)
    if len({C.shape[1] for C in Cs}) != 1:
        raise ValueError("loadings must share the latent dimension d")
    xs = np.concatenate([m[v] for m, v in zip(ms, vs)], 0)
    if xs.shape[0] == 0:
        raise ValueError("valid marks no time step")
    loadings = Cs
    with np.errstate(over="ignore", invalid="ignore"):
        M2 = xs.T @ xs / max(xs.shape[0], 1)
    if not np.all(np.isfinite(M2)):
        raise ValueError("means are too large: their second moment overflows float64")
    M2 = M2 + 1e-12 * np.trace(M2) * np.eye(M2.shape[0])
    return gauge.canonical_transform(np.concatenate(list(loadings), 0), P=M2)


def align_dynamics(A, A_ref, *, Q=None, Q_ref=None, m0=None, m0_ref=None,
                   n_search: int = 2000, n_starts: int = 3, seed: int = 0) -> np.ndarray:
    """Orthogonal O (d, d) minimising ||O A O' - A_ref||^2 (+ ||O Q O' - Q_ref||^2
    + ||O m0 - m0_ref||^2 when given) over rotations and reflections: a seeded search over
    ``n_search`` random orthogonal matrices, the best ``n_starts`` refined by BFGS.

    Two whitened models of the same dynamics differ by such an O. A alone leaves the
    symmetries of A undetermined (e.g. x -> -x); Q and the initial mean break them when
    they are anisotropic / nonzero."""
    n_search = _check_int(n_search, "n_search", 1)
    n_starts = _check_int(n_starts, "n_starts", 1)
    seed = _check_int(seed, "seed", 0)
    A = as_float_array(A, "A")
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"A must be a square (d, d) matrix, got shape {A.shape}")
    d = A.shape[0]

    def pair(x, x_ref, name, shape):
        if (x is None) != (x_ref is None):
            raise ValueError(f"give both {name} and {name}_ref, or neither")
        if x is None:
            return None
        out = []
        for v, n in ((x, name), (x_ref, f"{name}_ref")):
            v = as_float_array(v, n)
            if v.shape != shape or not np.all(np.isfinite(v)):
                raise ValueError(f"{n} must be a finite array of shape {shape}, got {v.shape}")
            out.append(v)
        return out

    A, A_ref = pair(A, A_ref, "A", (d, d))
    terms = [(A, A_ref, 2)]
    Qs, ms = pair(Q, Q_ref, "Q", (d, d)), pair(m0, m0_ref, "m0", (d,))
    if Qs is not None:
        terms.append((Qs[0], Qs[1], 2))
    if ms is not None:
        terms.append((ms[0][:, None], ms[1][:, None], 1))
        m0, m0_ref = ms
    if d == 1:
        return np.eye(1) if m0 is None or m0 * m0_ref >= 0 else -np.eye(1)
    iu = np.triu_indices(d, 1)
    rng = np.random.default_rng(seed)
    flip = np.diag(np.r_[-1.0, np.ones(d - 1)])

    def total(Os):
        c = 0.0
        for M, M_ref, sides in terms:
            E = (np.einsum("sij,jk,slk->sil", Os, M, Os) if sides == 2
                 else np.einsum("sij,jk->sik", Os, M)) - M_ref
            c = c + np.sum(E * E, axis=(1, 2))
        return c

    def orth(theta, O0):
        Kx = np.zeros((d, d))
        Kx[iu] = theta
        return O0 @ expm(Kx - Kx.T)

    # coarse search: many Haar-random orthogonal matrices (both determinants), vectorised
    G = rng.standard_normal((n_search, d, d))
    Qs, Rs = np.linalg.qr(G)
    Qs = Qs * np.sign(np.diagonal(Rs, axis1=1, axis2=2))[:, None, :]
    Qs = np.concatenate([np.eye(d)[None], flip[None], Qs])
    order = np.argsort(total(Qs))[:n_starts]
    # refinement: BFGS on O = O_k expm(K), K skew
    best, best_O = np.inf, Qs[order[0]]
    for k in order:
        res = minimize(lambda th, O0=Qs[k]: float(total(orth(th, O0)[None])[0]),
                       np.zeros(iu[0].size), method="BFGS")
        if res.fun < best:
            best, best_O = res.fun, orth(res.x, Qs[k])
    return best_O


def _transform_rec(P: dict, r: int, S: np.ndarray, c_keys=("C",)) -> None:
    """In place on NumPy dict entries with a leading recording axis: x' = S x."""
    Sinv = np.linalg.inv(S)
    P["A"][r] = S @ P["A"][r] @ Sinv
    P["b"][r] = S @ P["b"][r]
    P["Q"][r] = S @ P["Q"][r] @ S.T
    P["m0"][r] = S @ P["m0"][r]
    P["P0"][r] = S @ P["P0"][r] @ S.T
    for k in c_keys:
        if k in P:
            P[k][r] = P[k][r] @ Sinv


def align_recordings(P: dict, M2s, c_keys=("C",), seed: int = 0) -> dict:
    """Put separately fitted recordings in one frame and average their dynamics.

    Each recording's latent is whitened by its own second moment ``M2s[r]``, then rotated
    onto recording 0's dynamics (A, Q, m0) by :func:`align_dynamics`; A, b, Q, m0, P0 become the
    averages (NumPy dict with a leading recording axis; returns a new dict)."""
    P = {k: np.array(v, dtype=np.float64) for k, v in P.items()}
    R = P["A"].shape[0]
    for r in range(R):
        evals, evecs = np.linalg.eigh(M2s[r])
        W = (evecs / np.sqrt(np.maximum(evals, 1e-12))) @ evecs.T
        _transform_rec(P, r, W, c_keys)
    for r in range(1, R):
        O = align_dynamics(P["A"][r], P["A"][0], Q=P["Q"][r], Q_ref=P["Q"][0],
                           m0=P["m0"][r], m0_ref=P["m0"][0], seed=seed)
        _transform_rec(P, r, O, c_keys)
    for k in ("A", "b", "Q", "m0", "P0"):
        P[k] = np.broadcast_to(P[k].mean(0), P[k].shape).copy()
    return P


# ------------------------------------------------------------------------------------
# shared linear-Gaussian SSM
# ------------------------------------------------------------------------------------
class SharedLinearGaussianSSM:
    """Linear-Gaussian SSMs of several recordings sharing A, b, Q (and m0, P0).

    Each recording has its own channels (N_r), loadings C_r, offsets d_r and diagonal
    R_r. Fitted by exact EM (per-recording Kalman E-steps, pooled dynamics M-step); the
    summed marginal log-likelihood is monotone.

    Args:
      state_dim: latent dimension d.
      share_initial: m0, P0 common to all recordings (default) or per recording.
    """

    def __init__(self, state_dim: int, *, share_initial: bool = True):
        self.state_dim = _check_int(state_dim, "state_dim", 1)
        self.share_initial = bool(share_initial)

    # -- data ---------------------------------------------------------------------------
    def _prepare(self, recordings, bin_widths=None, bin_width=None):
        recs = _recording_list(recordings)
        if bin_width is not None:
            check_bin_widths(recs, bin_widths, bin_width)
        batches = []
        for r, obs in enumerate(recs):
            try:
                batches.append(_check_magnitude(pack_trials(obs, name="observations",
                                                            min_length=2)))
            except (ValueError, TypeError) as exc:
                raise _relabel(exc, r) from None
        return batches

    @staticmethod
    def _device_data(batches) -> LG.Data:
        y = _stack([b.y for b in batches])
        mask = _stack([b.mask & b.valid[..., None] for b in batches], False)
        valid = _stack([b.valid for b in batches], False)
        return LG.Data(jnp.asarray(y), jnp.asarray(mask), jnp.asarray(valid),
                       jnp.zeros(y.shape[:3] + (0,)))

    # -- initialisation -----------------------------------------------------------------
    def _init_random(self, batches, seed):
        d = self.state_dim
        rng = np.random.default_rng(seed)
        Qr, _ = np.linalg.qr(rng.standard_normal((d, d)))
        out = []
        for b in batches:
            Y = np.where(b.mask & b.valid[..., None], b.y, np.nan).reshape(-1, b.y.shape[-1])
            mean, var = np.nanmean(Y, 0), np.nanvar(Y, 0)
            var = np.where(var > 0, var, 1.0)
            C = rng.standard_normal((Y.shape[1], d)) * np.sqrt(var)[:, None] / np.sqrt(d)
            out.append(make_params(A=0.9 * Qr, C=C, Q=0.19 * np.eye(d), R=0.5 * var, d=mean))
        return out

    def _init_pca(self, batches, seed):
        lg = LinearGaussianSSM(self.state_dim, emission_covariance="diagonal")
        out = []
        for b in batches:
            # constant (or never observed) channels carry no information: PCA on the others,
            # zero loadings for them (they are fitted as missing by the guarded M-step)
            Y = np.where(b.mask & b.valid[..., None], b.y, np.nan).reshape(-1, b.y.shape[-1])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                keep = np.nan_to_num(np.nanvar(Y, 0)) > 0
            N = Y.shape[1]
            if not keep.any():
                raise ValueError("a recording has no varying channel")
            sub = TrialBatch(b.y[..., keep], b.mask[..., keep], b.valid, b.lengths,
                             b.inputs, b.any_missing, b.ragged)
            p = lg._initialize(sub, "pca", seed)
            C = np.zeros((N, self.state_dim))
            C[keep] = p.C
            dd = np.nan_to_num(np.nanmean(Y, 0))
            dd[keep] = p.d
            Rv = np.ones(N)
            Rv[keep] = np.diag(p.R)
            out.append(make_params(A=p.A, C=C, Q=p.Q, R=Rv, d=dd, m0=p.m0, P0=p.P0))
        return out

    def _stack_params(self, plist, shape_N) -> dict:
        P = {}
        for k in ("A", "b", "B", "Q", "m0", "P0"):
            P[k] = np.stack([getattr(p, k) for p in plist])
        P["C"] = np.stack([_pad(p.C, (shape_N, self.state_dim)) for p in plist])
        P["d"] = np.stack([_pad(p.d, (shape_N,)) for p in plist])
        P["D"] = np.zeros((len(plist), shape_N, 0))
        P["R"] = np.stack([_pad(p.R, (shape_N, shape_N)) + np.diag(
            np.r_[np.zeros(p.C.shape[0]), np.ones(shape_N - p.C.shape[0])]) for p in plist])
        return P

    @x64
    def _initial(self, batches, data, sums, init, seed, ridge, shared=True):
        """Initial stacked parameters: 'pca' (per-recording PCA, a few separate EM
        iterations, recordings whitened and rotated onto one frame, dynamics averaged) or
        'random' (one random rotation dynamics, random loadings)."""
        if init not in ("pca", "random"):
            raise ValueError(f"init must be 'pca' or 'random', got {init!r}")
        _check_int(seed, "seed", 0)
        N = data.y.shape[-1]
        if init == "random":
            return self._stack_params(self._init_random(batches, seed), N)
        P = self._stack_params(self._init_pca(batches, seed), N)
        if len(batches) == 1 or not shared:
            return P
        Pj = jax.tree_util.tree_map(jnp.asarray, P)
        lls = []
        for _ in range(INIT_SEPARATE_ITERS // SE.CHUNK):
            Pj, _, ll, n, _, finite = SE.lg_chunk(
                Pj, data, sums, SE.CHUNK, jnp.asarray(lls[-1] if lls else np.nan),
                jnp.asarray(0.0), jnp.asarray(False), jnp.asarray(False),
                jnp.asarray(float(ridge)), batched=False)
            lls.append(float(np.asarray(ll)[int(n) - 1]) if int(n) else np.nan)
            if not bool(finite):
                break
        post, _ = SE.lg_posterior(Pj, data)
        mu = np.asarray(post.smoothed_means)
        S = np.asarray(post.smoothed_covs)
        valid = np.asarray(data.valid)
        M2s = [_second_moment(mu[r], valid[r], S[r]) for r in range(len(batches))]
        return align_recordings({k: np.asarray(v) for k, v in Pj.items()}, M2s, seed=seed)

    # -- fitting ------------------------------------------------------------------------
    @x64
    def fit(self, recordings, *, params: SharedLGSSMParams | None = None, init: str = "pca",
            seed: int = 0, max_iter: int = 100, tol: float = 1e-7, ridge_lambda: float = 0.0,
            share_dynamics: bool = True, canonical: bool = True, progress: bool = True,
            bin_width: float | None = None, bin_widths=None) -> SharedFitResult:
        """Fit by exact EM.

        Args:
          recordings: list over recordings of observations ((T, N_r), (K, T, N_r) or a
            list of (T_k, N_r) trials; NaN = missing).
          params: initial :class:`SharedLGSSMParams` (default: ``init``, ``seed``).
          init: 'pca' (default) or 'random'.
          max_iter, tol: stop when the relative gain of the summed log-likelihood is below
            ``tol``.
          ridge_lambda: prior A ~ MN(I, Q, I / ridge_lambda) (0 = none).
          share_dynamics: False fits every recording separately (same code, for
            comparisons).
          canonical: joint canonical gauge (:func:`shared_canonical_transform`).
          bin_width, bin_widths: optional check that every recording has the same bin width.
        """
        batches = self._prepare(recordings, bin_widths,
                                None if bin_width is None else check_bin_width(bin_width))
        return self._fit_batches(batches, params, init, seed, max_iter, tol, ridge_lambda,
                                 share_dynamics, canonical, progress)[0]

    def _fit_batches(self, batches, params, init, seed, max_iter, tol, ridge_lambda,
                     share_dynamics, canonical, progress):
        """Fit on packed recordings. Returns (result, final stacked parameters before the
        gauge, smoothed means (R, K, T, d) and covariances at them)."""
        max_iter, _ = check_em_args(max_iter, tol, ridge_lambda)
        data = self._device_data(batches)
        sums = SE.data_sums(data)
        t0 = time.perf_counter()
        N = data.y.shape[-1]
        shared = bool(share_dynamics)
        if params is None:
            P = self._initial(batches, data, sums, init, seed, ridge_lambda, shared)
            if shared:   # one dynamics for all recordings from the start
                P = {k: (np.broadcast_to(v[0], v.shape) if k in ("A", "b", "Q") else v)
                     for k, v in P.items()}
        else:
            P = self._from_params(params, batches, N)
        P = jax.tree_util.tree_map(jnp.asarray, P)
        pool = jnp.asarray(shared)
        pool_init = jnp.asarray(self.share_initial and shared)

        def chunk(P, x, n_run, prev):
            P, _, lls, n, cv, finite = SE.lg_chunk(
                P, data, sums, n_run, prev, jnp.asarray(float(tol)), pool, pool_init,
                jnp.asarray(float(ridge_lambda)), batched=False)
            return P, x, lls, n, cv, finite

        P, _, lls, conv, bad = run_em_chunks(chunk, P, None, 1, max_iter, progress,
                                             "shared LG-SSM EM")
        trace = np.asarray(lls[0])
        if trace.size >= 2 and np.any(np.diff(trace) < -1e-8 * np.abs(trace[:-1])):
            warnings.warn("the shared EM log-likelihood decreased (exact EM is monotone: a "
                          "numerical problem, e.g. a nearly constant channel)",
                          RuntimeWarning, stacklevel=4)
        if bad[0]:
            warnings.warn("EM stopped on a non-finite log-likelihood or parameters; the last "
                          "finite parameters are returned", RuntimeWarning, stacklevel=4)
        post, ll_r = SE.lg_posterior(P, data)
        raw = {k: np.array(v) for k, v in P.items()}
        Pn = {k: v.copy() for k, v in raw.items()}
        valid = np.asarray(data.valid)
        mu = np.asarray(post.smoothed_means)
        if canonical:
            Pn = _canonicalize(Pn, mu, valid, [b.emission_dim for b in batches],
                               [0] * len(batches), shared)
        out = tuple(make_params(A=Pn["A"][r], b=Pn["b"][r], Q=Pn["Q"][r],
                                C=Pn["C"][r, :b.emission_dim], d=Pn["d"][r, :b.emission_dim],
                                R=np.diag(Pn["R"][r])[:b.emission_dim], m0=Pn["m0"][r],
                                P0=Pn["P0"][r]) for r, b in enumerate(batches))
        sp = SharedLGSSMParams(out, shared, shared and self.share_initial)
        ll_r = np.asarray(ll_r, dtype=np.float64)
        res = SharedFitResult(sp, trace, float(ll_r.sum()), ll_r,
                              bool(conv[0] and not bad[0]), trace.size,
                              time.perf_counter() - t0, init if params is None else "params",
                              int(seed))
        return res, raw, mu, np.asarray(post.smoothed_covs)

    def _from_params(self, params, batches, N) -> dict:
        if not isinstance(params, SharedLGSSMParams):
            raise TypeError(f"params must be SharedLGSSMParams, got {type(params).__name__}")
        if params.n_recordings != len(batches):
            raise ValueError(f"params are for {params.n_recordings} recordings; got "
                             f"{len(batches)}")
        for r, (p, b) in enumerate(zip(params.recordings, batches)):
            if p.state_dim != self.state_dim or p.emission_dim != b.emission_dim:
                raise ValueError(f"params.recordings[{r}] has state_dim {p.state_dim} and "
                                 f"{p.emission_dim} channels; the model/data have "
                                 f"{self.state_dim} and {b.emission_dim}")
            if p.input_dim:
                raise ValueError("the shared LG-SSM takes no inputs (input_dim must be 0)")
        return self._stack_params(list(params.recordings), N)

    # -- inference ----------------------------------------------------------------------
    def smooth(self, params: SharedLGSSMParams, recordings) -> list:
        """Kalman smoother of every recording: a list of
        :class:`~spikessm.models.lgssm.PosteriorResult` (one per recording)."""
        recs = self._checked(params, recordings)
        lg = LinearGaussianSSM(self.state_dim)
        out = []
        for r, (p, y) in enumerate(zip(params.recordings, recs)):
            try:
                post = lg.smooth(p, y)
            except (ValueError, TypeError) as exc:
                raise _relabel(exc, r) from None
            if not np.isfinite(post.log_likelihood):
                raise FloatingPointError(f"recordings[{r}]: the marginal log-likelihood is "
                                         "not finite at these params (values overflow?)")
            out.append(post)
        return out

    def log_prob(self, params: SharedLGSSMParams, recordings) -> np.ndarray:
        """Exact marginal log-likelihood of each recording (R,)."""
        return np.array([p.log_likelihood for p in self.smooth(params, recordings)])

    def _checked(self, params, recordings) -> list:
        recs = _recording_list(recordings)
        if not isinstance(params, SharedLGSSMParams) or params.n_recordings != len(recs):
            raise ValueError("params must be SharedLGSSMParams for as many recordings as "
                             f"given ({len(recs)})")
        for r, obs in enumerate(recs):  # the same checks as fit (names, magnitudes)
            try:
                _check_magnitude(pack_trials(obs, name="observations", min_length=2))
            except (ValueError, TypeError) as exc:
                raise _relabel(exc, r) from None
        return recs


def _canonicalize(P: dict, mu, valid, n_c, n_g, shared: bool, c_keys=("C",)) -> dict:
    """Joint canonical gauge (shared) or each recording's own (separate fits), in place
    on a NumPy dict with a leading recording axis."""
    R = P["A"].shape[0]

    def loads(r):
        parts = [P["C"][r, :n_c[r]]]
        if "Cg" in P:
            parts.append(P["Cg"][r, :n_g[r]])
        return np.concatenate(parts, 0)

    if shared:
        S = shared_canonical_transform([loads(r) for r in range(R)],
                                       [mu[r] for r in range(R)], [valid[r] for r in range(R)])
        for r in range(R):
            _transform_rec(P, r, S, c_keys)
    else:
        for r in range(R):
            S = shared_canonical_transform([loads(r)], [mu[r]], [valid[r]])
            _transform_rec(P, r, S, c_keys)
    return P


# ------------------------------------------------------------------------------------
# shared Poisson LDS / hybrid
# ------------------------------------------------------------------------------------
class SharedPoissonLDS:
    """Poisson LDS (optionally with Gaussian channels: hybrid) of several recordings
    sharing A, b, Q (and m0, P0); each recording has its own neurons, loadings C_r,
    log baselines d_r (and Gaussian Cg_r, dg_r, diagonal R_r).

    Fitted by Laplace EM: per-recording Laplace E-steps (the single-recording ones), the
    dynamics M-step on statistics pooled over recordings, the single-recording emission
    M-steps per recording. Objective: summed Laplace-approximate marginal log-likelihood.

    Args:
      state_dim: latent dimension d.
      bin_width: seconds per bin, common to every recording.
      share_initial: m0, P0 common (default) or per recording.
    """

    def __init__(self, state_dim: int, bin_width: float, *, share_initial: bool = True):
        self.state_dim = _check_int(state_dim, "state_dim", 1)
        self.bin_width = check_bin_width(bin_width)
        self.share_initial = bool(share_initial)
        self._single = PoissonLDS(self.state_dim, self.bin_width)

    # -- data ---------------------------------------------------------------------------
    def prepare(self, recordings, gaussian=None, *, bin_widths=None,
                n_neurons=None, n_gaussian=None) -> SharedPrepared:
        """Validate every recording and pad them to common shapes (leading axis R)."""
        recs = _recording_list(recordings)
        R = len(recs)
        check_bin_widths(recs, bin_widths, self.bin_width)
        if gaussian is None:
            gaussian = [None] * R
        gaussian = _recording_list(gaussian, "gaussian")
        if len(gaussian) != R:
            raise ValueError(f"gaussian has {len(gaussian)} entries; there are {R} recordings "
                             "(use None for a recording without Gaussian channels)")
        preps = []
        for r, (sp, g) in enumerate(zip(recs, gaussian)):
            try:
                pr = self._single.prepare(
                    sp, g, n_neurons=None if n_neurons is None else n_neurons[r],
                    n_gaussian=None if n_gaussian is None else (n_gaussian[r] or None))
            except (ValueError, TypeError) as exc:
                raise _relabel(exc, r) from None
            y, m = np.asarray(pr.data.y), np.asarray(pr.data.mask)
            if not np.any(y * m > 0):
                raise ValueError(f"recordings[{r}] has no spikes at all: it carries no "
                                 "information about its loadings (drop it)")
            preps.append(pr)
        hybrid = any(p.n_gaussian for p in preps)
        Kn = max(p.data.y.shape[0] for p in preps)
        T = max(p.data.y.shape[1] for p in preps)
        N = max(p.n_neurons for p in preps)
        shape = (Kn, T, N)
        y = np.stack([_pad(p.data.y, shape) for p in preps])
        mask = np.stack([_pad(p.data.mask, shape, False) for p in preps])
        valid = np.stack([_pad(p.data.valid, (Kn, T), False) for p in preps])
        Z = np.stack([_pad(p.data.Z, shape + (1,)) for p in preps])
        g = gsums = None
        if hybrid:
            M = max(p.n_gaussian for p in preps)
            gy = np.zeros((R, Kn, T, M))
            gm = np.zeros((R, Kn, T, M), bool)
            for r, p in enumerate(preps):
                if p.n_gaussian:
                    gy[r] = _pad(p.data.g.y, (Kn, T, M))
                    gm[r] = _pad(p.data.g.mask, (Kn, T, M), False)
            with jax.enable_x64(True):
                g = LG.Data(jnp.asarray(gy), jnp.asarray(gm), jnp.asarray(valid),
                            jnp.zeros((R, Kn, T, 0)))
                gsums = SE.data_sums(g)
        with jax.enable_x64(True):
            data = E.PData(jnp.asarray(y), jnp.asarray(mask), jnp.asarray(valid),
                           jnp.asarray(Z), g, gsums)
        return SharedPrepared(data, tuple(p.n_neurons for p in preps),
                              tuple(p.n_gaussian for p in preps),
                              tuple(p.lengths for p in preps),
                              tuple(p.data.y.shape[0] for p in preps))

    def _settings(self, prep: SharedPrepared, newton_iters: int) -> E.Settings:
        return E.Settings(diag=True, r_type="diagonal", per_channel=True,
                          newton_iters=newton_iters)

    # -- initialisation -----------------------------------------------------------------
    @x64
    def _initialize(self, prep: SharedPrepared, method: str, seed: int, ridge: float,
                    shared: bool = True):
        if method not in ("sqrt_lds", "random"):
            raise ValueError(f"init must be 'sqrt_lds' or 'random', got {method!r}")
        _check_int(seed, "seed", 0)
        data = prep.data
        d, dt = self.state_dim, self.bin_width
        y, m = np.asarray(data.y), np.asarray(data.mask)
        R, Kn, T, N = y.shape
        rate = (y * m).sum((1, 2)) / np.maximum(m.sum((1, 2)), 1) / dt
        logr = np.log(np.maximum(rate, 0.1 / (dt * np.maximum(m.sum((1, 2)).max(), 1))))
        W = np.zeros((R, N, 1))
        W[..., 0] = logr
        rng = np.random.default_rng(seed)
        M = data.g.y.shape[-1] if data.g is not None else 0
        if method == "random":
            Qr, _ = np.linalg.qr(rng.standard_normal((d, d)))
            C = rng.standard_normal((R, N, d)) * 0.5 / np.sqrt(d)
            W[..., 0] -= 0.5 * np.sum(C * C, -1)
            P = {"A": np.broadcast_to(0.9 * Qr, (R, d, d)), "b": np.zeros((R, d)),
                 "Q": np.broadcast_to(0.19 * np.eye(d), (R, d, d)), "C": C, "W": W,
                 "m0": np.zeros((R, d)), "P0": np.broadcast_to(np.eye(d), (R, d, d))}
            if M:
                gy = np.where(np.asarray(data.g.mask), np.asarray(data.g.y), np.nan)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mean = np.nan_to_num(np.nanmean(gy.reshape(R, -1, M), 1))
                    var = np.nan_to_num(np.nanvar(gy.reshape(R, -1, M), 1))
                var = np.where(var > 0, var, 1.0)
                P.update(Cg=rng.standard_normal((R, M, d)) * np.sqrt(var)[..., None]
                         / np.sqrt(2 * d), dg=mean, R=jax.vmap(jnp.diag)(0.5 * var))
            x0 = np.zeros((R, Kn, T, d))
            return jax.tree_util.tree_map(jnp.asarray, P), jnp.asarray(x0)
        # sqrt_lds: a shared LG-SSM on the square-root counts (and the standardised
        # Gaussian channels), then every recording's Poisson loadings by the exact M-step
        obs = np.where(m, np.sqrt(y), np.nan)
        gs = np.ones((R, M))
        if M:
            gy = np.where(np.asarray(data.g.mask), np.asarray(data.g.y), np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                gs = np.nan_to_num(np.nanstd(gy.reshape(R, -1, M), 1))
            gs = np.where(gs > 0, gs, 1.0)
            obs = np.concatenate([obs, gy / gs[:, None, None, :]], -1)
        valid = np.asarray(data.valid)
        batches = []
        for r in range(R):
            # the recording's own channels (padding dropped), its own trials
            cols = np.r_[np.arange(prep.n_neurons[r]), N + np.arange(prep.n_gaussian[r])]
            o = obs[r, :prep.n_trials[r]][..., cols]
            ok = ~np.isnan(o) & valid[r, :prep.n_trials[r], :, None]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                const = ~(np.nan_to_num(np.nanvar(np.where(ok, o, np.nan).reshape(
                    -1, o.shape[-1]), 0)) > 0)
            ok = ok & ~const   # a constant channel (silent neuron) would drive its R to 0
            L = prep.lengths[r]
            batches.append(TrialBatch(np.where(ok, o, 0.0), ok, valid[r, :prep.n_trials[r]],
                                      L, np.zeros(o.shape[:2] + (0,)),
                                      bool((valid[r, :prep.n_trials[r], :, None] & ~ok).any()),
                                      bool(len(set(L.tolist())) > 1)))
        lg = SharedLinearGaussianSSM(d, share_initial=self.share_initial)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit, raw, mu, S = lg._fit_batches(batches, None, "pca" if seed == 0 else
                                                  "random", seed, 100, 1e-6, ridge, shared,
                                                  False, False)
        except (FloatingPointError, ValueError, np.linalg.LinAlgError) as exc:
            warnings.warn(f"init='sqrt_lds' failed ({exc}); using 'random'", RuntimeWarning,
                          stacklevel=3)
            return self._initialize(prep, "random", seed, ridge, shared)
        mu = np.where(valid[..., None], _pad(mu, (R, Kn, T, d)), 0.0)
        S = np.where(valid[..., None, None], _pad(S, (R, Kn, T, d, d)), 0.0)
        C, Wn = SE.poisson_loadings(data, jnp.asarray(mu), jnp.asarray(S), jnp.asarray(W),
                                    jnp.asarray(dt))
        ps = fit.params.recordings
        P = {"A": np.stack([p.A for p in ps]), "b": np.stack([p.b for p in ps]),
             "Q": np.stack([p.Q for p in ps]), "C": C, "W": Wn,
             "m0": np.stack([p.m0 for p in ps]), "P0": np.stack([p.P0 for p in ps])}
        if M:
            Cg = np.zeros((R, M, d))
            dg = np.zeros((R, M))
            Rg = np.tile(np.eye(M), (R, 1, 1))
            for r, p in enumerate(ps):
                n, k = prep.n_neurons[r], prep.n_gaussian[r]
                Cg[r, :k] = p.C[n:] * gs[r, :k, None]
                dg[r, :k] = p.d[n:] * gs[r, :k]
                Rg[r, :k, :k] = np.diag(np.diag(p.R)[n:] * gs[r, :k] ** 2)
            P.update(Cg=Cg, dg=dg, R=Rg)
        return jax.tree_util.tree_map(jnp.asarray, P), jnp.asarray(mu)

    # -- fitting ------------------------------------------------------------------------
    def fit(self, recordings, gaussian=None, *, params: SharedPLDSParams | None = None,
            init: str = "sqrt_lds", seed: int = 0, max_iter: int = 100, tol: float = 1e-6,
            ridge_lambda: float = 0.0, newton_iters: int = 50, newton_tol: float = 1e-8,
            share_dynamics: bool = True, canonical: bool = True, progress: bool = True,
            bin_widths=None) -> SharedFitResult:
        """Fit by Laplace EM.

        Args:
          recordings: list over recordings of spike counts ((T, N_r), (K, T, N_r) or a
            list of (T_k, N_r) trials; NaN = missing). Recordings may differ in neurons,
            trial counts and trial lengths.
          gaussian: optional list (one entry per recording, None for none) of Gaussian
            channels matching that recording's trials (hybrid model).
          params: initial :class:`SharedPLDSParams` (default: ``init``, ``seed``).
          init: 'sqrt_lds' (a shared LG-SSM on square-root counts, its recordings aligned
            onto one frame, then the exact Poisson M-step) or 'random'.
          max_iter, tol, ridge_lambda, newton_iters, newton_tol: as in
            :meth:`spikessm.models.plds.PoissonLDS.fit`.
          share_dynamics: False fits every recording separately (the same compiled code;
            the baseline the shared fit is compared with).
          canonical: the joint canonical gauge (:func:`shared_canonical_transform`).
          bin_widths: each recording's bin width, checked against the model's.
        """
        prep = self.prepare(recordings, gaussian, bin_widths=bin_widths)
        return self._fit_batch(prep, [params], [init], [seed], max_iter, tol, ridge_lambda,
                               newton_iters, newton_tol, share_dynamics, canonical,
                               progress)[0]

    def fit_restarts(self, recordings, gaussian=None, *, seeds=(0, 1, 2, 3),
                     init: str = "random", max_iter: int = 100, tol: float = 1e-6,
                     ridge_lambda: float = 0.0, newton_iters: int = 50,
                     newton_tol: float = 1e-8, share_dynamics: bool = True,
                     canonical: bool = True, progress: bool = True,
                     bin_widths=None) -> list[SharedFitResult]:
        """Independent fits from seeded initialisations, batched in one compiled
        computation (vmap over restarts). Other arguments as in :meth:`fit`."""
        seeds = [_check_int(s, "seed", 0) for s in seeds]
        if not seeds:
            raise ValueError("seeds must name at least one restart")
        prep = self.prepare(recordings, gaussian, bin_widths=bin_widths)
        return self._fit_batch(prep, [None] * len(seeds), [init] * len(seeds), seeds,
                               max_iter, tol, ridge_lambda, newton_iters, newton_tol,
                               share_dynamics, canonical, progress)

    @x64
    def _fit_batch(self, prep, params_list, inits, seeds, max_iter, tol, ridge_lambda,
                   newton_iters, newton_tol, share_dynamics, canonical, progress):
        max_iter, newton_iters = check_em_args(max_iter, tol, ridge_lambda, newton_iters)
        shared = bool(share_dynamics)
        t0 = time.perf_counter()
        s = self._settings(prep, newton_iters)
        dt = jnp.asarray(self.bin_width)
        ntol = jnp.asarray(float(newton_tol))
        ridge = jnp.asarray(float(ridge_lambda))
        Ps, xs = [], []
        for p, init, seed in zip(params_list, inits, seeds):
            if p is None:
                align = shared and init == "sqrt_lds" and len(prep.n_neurons) > 1
                P, x = self._initialize(prep, init, seed, ridge_lambda, shared and not align)
                if align:
                    P, x = self._separate_then_align(P, x, prep, s, dt, ntol, ridge, seed)
                if shared:   # one dynamics for all recordings from the start
                    P = {k: (jnp.broadcast_to(v[0], v.shape) if k in ("A", "b", "Q") else v)
                         for k, v in P.items()}
            else:
                P = self._from_params(p, prep)
                x = jnp.zeros(prep.data.y.shape[:3] + (self.state_dim,))
            Ps.append(P)
            xs.append(x)
        nR = len(Ps)
        batched = nR > 1
        P = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *Ps) if batched else Ps[0]
        x = jnp.stack(xs) if batched else xs[0]
        pool = jnp.asarray(shared)
        pool_init = jnp.asarray(shared and self.share_initial)

        def chunk(P, x, n_run, prev):
            return SE.plds_chunk(P, prep.data, x, n_run, prev, jnp.asarray(float(tol)), dt,
                                 ridge, ntol, pool, pool_init,
                                 s=s, batched=batched)

        P, x, lls, conv, bad = run_em_chunks(chunk, P, x, nR, max_iter, progress,
                                             "shared Poisson LDS EM")
        out = []
        for k in range(nR):
            Pk = jax.tree_util.tree_map(lambda a, k=k: a[k], P) if batched else P
            xk = x[k] if batched else x
            res = SE.plds_posterior(Pk, prep.data, xk, dt, ntol, s=s)
            ll_r = np.asarray(jnp.sum(res.log_likelihood, axis=1), dtype=np.float64)
            trace = np.asarray(lls[k], dtype=np.float64)
            check_trace(trace, tol, bad[k], seeds[k])
            Pn = {key: np.array(v) for key, v in Pk.items()}
            if canonical:
                Pn = _canonicalize(Pn, np.asarray(res.mode), np.asarray(prep.data.valid),
                                   prep.n_neurons, prep.n_gaussian, shared, ("C", "Cg"))
            sp = SharedPLDSParams(self._to_params(Pn, prep), shared,
                                  shared and self.share_initial)
            out.append(SharedFitResult(sp, trace, float(ll_r.sum()), ll_r,
                                       bool(conv[k] and not bad[k]), trace.size,
                                       time.perf_counter() - t0,
                                       inits[k] if params_list[k] is None else "params",
                                       int(seeds[k])))
        return out

    def _separate_then_align(self, P, x, prep, s, dt, ntol, ridge, seed):
        """Shared initialisation: each recording's own Poisson LDS (separate-dynamics EM,
        ``INIT_SEPARATE_ITERS`` iterations, the compiled code of the shared fit), then every
        recording whitened and rotated onto recording 0 (:func:`align_recordings`) and the
        dynamics averaged."""
        for _ in range(INIT_SEPARATE_ITERS // SE.CHUNK):
            P, x, _, _, _, finite = SE.plds_chunk(
                P, prep.data, x, SE.CHUNK, jnp.asarray(np.nan), jnp.asarray(0.0), dt, ridge,
                ntol, jnp.asarray(False), jnp.asarray(False), s=s, batched=False)
            if not bool(finite):
                break
        res = SE.plds_posterior(P, prep.data, x, dt, ntol, s=s)
        mu = np.asarray(res.mode)
        S = np.asarray(res.posterior.smoothed_covs)
        valid = np.asarray(prep.data.valid)
        M2s = [_second_moment(mu[r], valid[r], S[r]) for r in range(mu.shape[0])]
        Pn = align_recordings({k: np.asarray(v) for k, v in P.items()}, M2s, ("C", "Cg"),
                              seed=seed)
        return jax.tree_util.tree_map(jnp.asarray, Pn), jnp.zeros_like(x)

    def _to_params(self, Pn: dict, prep: SharedPrepared) -> tuple:
        out = []
        d = self.state_dim
        for r, (n, m) in enumerate(zip(prep.n_neurons, prep.n_gaussian)):
            g = {}
            if m:
                g = dict(Cg=Pn["Cg"][r, :m].copy(), dg=Pn["dg"][r, :m].copy(),
                         R=np.diag(np.diag(Pn["R"][r])[:m]))
            else:
                g = dict(Cg=np.zeros((0, d)), dg=np.zeros(0), R=np.zeros((0, 0)))
            out.append(PLDSParams(Pn["A"][r].copy(), Pn["b"][r].copy(), Pn["Q"][r].copy(),
                                  Pn["C"][r, :n].copy(), Pn["W"][r, :n, 0].copy(),
                                  np.zeros((n, 0)), np.zeros((n, 0)), g["Cg"], g["dg"],
                                  g["R"], Pn["m0"][r].copy(), Pn["P0"][r].copy(),
                                  self.bin_width))
        return tuple(out)

    def _from_params(self, params, prep: SharedPrepared) -> dict:
        if not isinstance(params, SharedPLDSParams):
            raise TypeError(f"params must be SharedPLDSParams, got {type(params).__name__}")
        R = len(prep.n_neurons)
        if params.n_recordings != R:
            raise ValueError(f"params are for {params.n_recordings} recordings; got {R}")
        N = prep.data.y.shape[-1]
        M = prep.data.g.y.shape[-1] if prep.data.g is not None else 0
        for r, p in enumerate(params.recordings):
            if (p.state_dim != self.state_dim or p.n_neurons != prep.n_neurons[r]
                    or p.n_gaussian != prep.n_gaussian[r]):
                raise ValueError(f"params.recordings[{r}] is for state_dim {p.state_dim}, "
                                 f"{p.n_neurons} neurons, {p.n_gaussian} Gaussian channels; "
                                 f"the model/data have {self.state_dim}, "
                                 f"{prep.n_neurons[r]}, {prep.n_gaussian[r]}")
            if p.n_covariates or p.history:
                raise ValueError("shared models take no covariates or spike history")
        ps = params.recordings
        P = {k: np.stack([getattr(p, k) for p in ps]) for k in ("A", "b", "Q", "m0", "P0")}
        P["C"] = np.stack([_pad(p.C, (N, self.state_dim)) for p in ps])
        P["W"] = np.stack([_pad(p.d[:, None], (N, 1)) for p in ps])
        if M:
            P["Cg"] = np.stack([_pad(p.Cg, (M, self.state_dim)) for p in ps])
            P["dg"] = np.stack([_pad(p.dg, (M,)) for p in ps])
            P["R"] = np.stack([np.diag(np.r_[np.diag(p.R), np.ones(M - p.n_gaussian)])
                               for p in ps])
        return jax.tree_util.tree_map(jnp.asarray, P)

    # -- inference ----------------------------------------------------------------------
    @x64
    def smooth(self, params: SharedPLDSParams, recordings, gaussian=None, *,
               newton_iters: int = 50, newton_tol: float = 1e-10,
               bin_widths=None) -> list[PLDSPosterior]:
        """Laplace posterior of every recording at ``params`` (one compiled call for all
        recordings): a list of :class:`~spikessm.models.plds.PLDSPosterior`."""
        if not isinstance(params, SharedPLDSParams):
            raise TypeError(f"params must be SharedPLDSParams, got {type(params).__name__}")
        prep = self.prepare(recordings, gaussian, bin_widths=bin_widths,
                            n_neurons=[p.n_neurons for p in params.recordings],
                            n_gaussian=[p.n_gaussian for p in params.recordings])
        P = self._from_params(params, prep)
        s = self._settings(prep, _check_int(newton_iters, "newton_iters", 1))
        x0 = jnp.zeros(prep.data.y.shape[:3] + (self.state_dim,))
        res = SE.plds_posterior(P, prep.data, x0, jnp.asarray(self.bin_width),
                                jnp.asarray(float(newton_tol)), s=s)
        mu = np.asarray(res.mode)
        S = np.asarray(res.posterior.smoothed_covs)
        X = np.asarray(res.posterior.cross_covs)
        ll = np.asarray(res.log_likelihood)
        conv = np.asarray(res.converged)
        for r in range(len(params.recordings)):
            K_r = prep.n_trials[r]
            if not (np.all(np.isfinite(ll[r, :K_r])) and np.all(np.isfinite(mu[r]))):
                raise FloatingPointError(f"recordings[{r}]: the Laplace posterior is not "
                                         "finite at these params (rates overflow?)")
        out = []
        for r, p in enumerate(params.recordings):
            n = p.n_neurons
            L = prep.lengths[r]
            quad = np.einsum("ni,ktij,nj->ktn", p.C, S[r], p.C)
            rates = np.exp(mu[r] @ p.C.T + p.d + 0.5 * quad[..., :n])
            K_r = prep.n_trials[r]
            out.append(PLDSPosterior([mu[r, k, :t] for k, t in enumerate(L)],
                                     [S[r, k, :t] for k, t in enumerate(L)],
                                     [X[r, k, :t] for k, t in enumerate(L)],
                                     [rates[k, :t] for k, t in enumerate(L)],
                                     float(ll[r, :K_r].sum()), bool(conv[r, :K_r].all())))
        return out

    def log_prob(self, params: SharedPLDSParams, recordings, gaussian=None) -> np.ndarray:
        """Laplace approximation of log p(y) of each recording (R,)."""
        return np.array([p.log_likelihood for p in self.smooth(params, recordings, gaussian)])

    def sample(self, params: SharedPLDSParams, n_steps, *, n_trials=None, seed: int = 0):
        """Simulate every recording: a list of (latents, spikes, gaussian) as
        :meth:`spikessm.models.plds.PoissonLDS.sample` (``n_steps``, ``n_trials``: one
        value or one per recording; recording r uses seed ``seed + r``)."""
        if not isinstance(params, SharedPLDSParams):
            raise TypeError(f"params must be SharedPLDSParams, got {type(params).__name__}")
        R = params.n_recordings
        steps = np.broadcast_to(np.asarray(n_steps, dtype=object), (R,))
        trials = np.broadcast_to(np.asarray(n_trials, dtype=object), (R,))
        return [self._single.sample(p, int(steps[r]), n_trials=None if trials[r] is None
                                    else int(trials[r]), seed=_check_int(seed, "seed", 0) + r)
                for r, p in enumerate(params.recordings)]


def shared_params_from(recordings: list, *, shared_initial: bool = True) -> SharedPLDSParams:
    """:class:`SharedPLDSParams` from per-recording :class:`PLDSParams` that share A, b, Q
    (e.g. ground truth for a simulation). Raises ValueError when they do not."""
    recs = tuple(recordings)
    if not recs or not all(isinstance(p, PLDSParams) for p in recs):
        raise TypeError("recordings must be a non-empty list of PLDSParams")
    ref = recs[0]
    for r, p in enumerate(recs):
        if p.state_dim != ref.state_dim or not all(
                np.allclose(getattr(p, k), getattr(ref, k)) for k in ("A", "b", "Q")):
            raise ValueError(f"recordings[{r}] does not share A, b, Q with recordings[0]")
        if p.bin_width != ref.bin_width:
            raise ValueError(f"recordings[{r}] has bin width {p.bin_width}, recordings[0] "
                             f"{ref.bin_width}: the shared dynamics are per bin")
    same0 = all(np.allclose(p.m0, ref.m0) and np.allclose(p.P0, ref.P0) for p in recs)
    return SharedPLDSParams(recs, True, bool(shared_initial and same0))


__all__ = ["SharedPoissonLDS", "SharedLinearGaussianSSM", "SharedPLDSParams",
           "SharedLGSSMParams", "SharedFitResult", "shared_canonical_transform",
           "align_dynamics", "check_bin_widths", "shared_params_from"]

