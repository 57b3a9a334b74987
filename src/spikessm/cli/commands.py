"""The work behind ``spikessm fit | score | decode | info``: read a recording, fit a model,
save it (``.npz``, no pickle) and describe it in an HTML report.

Models (``--model``):

- ``plds``: Poisson LDS by Laplace EM, best of ``--restarts`` (batched) by held-out
  predictive log-likelihood (held-out trials when there are at least 4, else the last 20%
  of each trial).
- ``hybrid``: the same latent also drives the Gaussian channels of a covariate of the
  recording (``--gaussian NAME``, e.g. position).
- ``lgssm``: a linear-Gaussian SSM on square-root counts (a variance-stabilised baseline).
- ``hmm``: a Poisson HMM with ``--states K`` (several values: chosen by held-out LL).
- ``ssglm``: a state-space GLM across trials of one unit (``--unit``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..data import SpikeTrials, read
from ..io import load, load_metadata, save
from .report import Report

MODELS = ("lgssm", "plds", "hybrid", "hmm", "ssglm")


@dataclass(frozen=True)
class FitRecord:
    """What ``spikessm fit`` saves: the model kind, its settings and the fitted result.

    model: one of ``MODELS``; bin_width (s); unit_ids (N,) of the fitted units;
    result: the model's own result object (e.g. ``MultiRestartResult``, ``EMResult``,
    ``HMMFitResult``, ``SSGLMResult``); heldout: held-out scores shown in the report
    (name -> float); settings: the command-line settings (name -> plain value)."""

    model: str
    bin_width: float
    unit_ids: np.ndarray
    result: object
    heldout: dict
    settings: dict


@dataclass(frozen=True)
class DecodeRecord:
    """What ``spikessm decode`` saves: per-trial posterior means (T_k, d) and variances
    (T_k, d) of the latent (or state probabilities (T_k, K) and Viterbi paths for an HMM)."""

    model: str
    means: tuple
    variances: tuple
    trial_labels: np.ndarray


def read_recording(path, bin_width=None, layout=None) -> SpikeTrials:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    kw = {}
    if bin_width is not None:
        kw["bin_width"] = bin_width
    if layout is not None:
        kw["layout"] = layout
    return read(p, **kw)


def _split_trials(rec: SpikeTrials, fraction: float, seed: int):
    K = rec.n_trials
    n_test = int(np.clip(round(fraction * K), 1, K - 1))
    perm = np.random.default_rng(seed).permutation(K)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def info_text(path) -> str:
    """A few lines describing a recording or a saved spikessm file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    if p.suffix == ".npz":
        try:
            meta = load_metadata(p)
        except ValueError:
            meta = None
        if meta is not None:
            obj = load(p)
            lines = [f"{p}: saved spikessm object {meta['class']}",
                     f"  written by spikessm {meta['spikessm_version']} on {meta['created']}"]
            if isinstance(obj, FitRecord):
                lines.append(f"  model {obj.model}, {obj.unit_ids.size} units, bin "
                             f"{obj.bin_width * 1e3:g} ms; held-out: " + ", ".join(
                                 f"{k} {v:.6g}" for k, v in obj.heldout.items()))
            if meta.get("provenance"):
                lines.append(f"  data: {json.dumps(meta['provenance'])[:300]}")
            return "\n".join(lines)
    rec = read_recording(p)
    return describe(rec, str(p))


def describe(rec: SpikeTrials, name: str) -> str:
    counts = [np.nan_to_num(c) for c in rec.counts]
    total = np.sum([c.sum(0) for c in counts], axis=0)
    secs = float(np.sum(rec.lengths)) * rec.bin_width
    rates = total / secs
    labels = np.unique(np.asarray(rec.trial_labels).astype(str))
    lines = [f"{name}: {rec.n_units} units, {rec.n_trials} trials "
             f"({rec.lengths.min()}-{rec.lengths.max()} bins of {rec.bin_width * 1e3:g} ms, "
             f"{secs:.1f} s in all)",
             f"  firing rates: median {np.median(rates):.2f} Hz, range {rates.min():.2f}-"
             f"{rates.max():.2f} Hz; {int(np.sum(total == 0))} silent units",
             f"  trial labels: {', '.join(labels[:10])}{' ...' if labels.size > 10 else ''}"]
    if rec.covariates:
        lines.append("  covariates: " + ", ".join(
            f"{k} ({v[0].shape[1]} columns)" for k, v in rec.covariates.items()))
    return "\n".join(lines)


# ------------------------------------------------------------------------------ fitting
def fit_command(path, model: str, out, *, state_dim: int = 3, states=(2, 3, 4),
                bin_width=None, layout=None, restarts: int = 4, max_iter: int = 100,
                seed: int = 0, gaussian: str | None = None, unit: int = 0,
                holdout_fraction: float = 0.2, progress: bool = True, log=print) -> Path:
    """Fit ``model`` to the recording at ``path``; write ``fit.npz`` and ``report.html``
    (+ ``report.json``) into ``out``. Returns the report's path."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    rec = read_recording(path, bin_width, layout)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log(describe(rec, str(path)))
    rep = Report(f"spikessm fit: {model}", f"{Path(path).name} · spikessm {__version__}")
    rep.section("Data").text(describe(rec, Path(path).name))
    settings = dict(state_dim=state_dim, states=list(states), restarts=restarts,
                    max_iter=max_iter, seed=seed, gaussian=gaussian, unit=unit,
                    holdout_fraction=holdout_fraction)
    fitter = {"plds": _fit_plds, "hybrid": _fit_plds, "lgssm": _fit_lgssm, "hmm": _fit_hmm,
              "ssglm": _fit_ssglm}[model]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result, heldout = fitter(rec, rep, model=model, progress=progress, **settings)
    record = FitRecord(model, float(rec.bin_width), np.asarray(rec.unit_ids), result,
                       heldout, settings)
    save(out / "fit.npz", record, provenance=rec.provenance)
    rep.section("Files").text("fit.npz: the fitted model (load with spikessm.io.load); "
                              "report.json: the numbers of every table.")
    path_html = rep.write(out / "report.html")
    log(f"saved {out / 'fit.npz'} and {path_html}")
    return path_html


def _heldout_table(sec, rows: dict, caption: str, key: str):
    sec.table([{"model": k, "held-out log-likelihood": float(v)} for k, v in rows.items()],
              caption=caption, key=key)


def _fit_plds(rec, rep, *, model, state_dim, restarts, max_iter, seed, gaussian,
              holdout_fraction, progress, **_):
    from ..evaluation import constant_rate_predictive_ll
    from ..evaluation.predictive import hybrid_predictive_ll, point_process_predictive_ll
    from ..evaluation.restarts import fit_hybrid_em_best_of, fit_point_process_em_best_of
    from ..models.plds import PoissonLDS
    from ..plotting import plot_latent_trajectories, plot_objective, plot_rates

    trials = list(rec.counts)
    g = None
    if model == "hybrid":
        if not gaussian or gaussian not in rec.covariates:
            raise ValueError(f"--model hybrid needs --gaussian NAME, one of the recording's "
                             f"covariates {sorted(rec.covariates) or '(none)'}")
        g = list(rec.covariates[gaussian])
    holdout = "trials" if rec.n_trials >= 4 else "time"
    kw = dict(n_restarts=restarts, holdout=holdout, holdout_fraction=holdout_fraction,
              n_iter=max_iter, init="sqrt_lds", seed=seed, bin_width=rec.bin_width,
              n_samples=300, progress=progress)
    best = (fit_point_process_em_best_of(trials, state_dim, **kw) if g is None else
            fit_hybrid_em_best_of(trials, g, state_dim, **kw))
    params = best.best_result.params
    sec = rep.section("Poisson LDS" + (" (hybrid)" if g is not None else ""),
                      f"State dimension {state_dim}; {restarts} restarts (batched), the best "
                      f"chosen by held-out one-step-ahead predictive log-likelihood "
                      f"(holdout: {holdout}).")
    sec.table([{"seed": int(s), "held-out predictive LL": float(v),
                "EM iterations": int(r.n_iter), "converged": bool(r.converged)}
               for s, v, r in zip(best.all_seeds, best.all_predictive_lls, best.all_results)],
              caption="Restarts", key="restarts")
    heldout = {"Poisson LDS (best restart)": best.best_predictive_ll}
    if holdout == "trials":
        tr, te = _split_trials(rec, holdout_fraction, seed)
        train, test = [trials[i] for i in tr], [trials[i] for i in te]
        if g is None:
            heldout["Poisson LDS (best restart)"] = point_process_predictive_ll(
                params, test, n_samples=300, seed=seed).total
        else:
            heldout["Poisson LDS (best restart)"] = hybrid_predictive_ll(
                params, test, [g[i] for i in te], n_samples=300, seed=seed).poisson
        heldout["constant rate per neuron"] = constant_rate_predictive_ll(
            train, test, rec.bin_width).total
        _heldout_table(sec, heldout, "Held-out trials: predictive log-likelihood of the "
                       "spikes (one step ahead, joint over neurons)", "heldout")
    post = PoissonLDS(state_dim, rec.bin_width, gaussian_covariance="diagonal").smooth(
        params, trials, g)
    sec.figure(plot_latent_trajectories(post.means, np.asarray(rec.trial_labels).astype(str)),
               caption="Smoothed latent trajectories (canonical gauge), by trial label")
    k = 0
    busiest = tuple(int(i) for i in np.argsort(np.nansum(trials[k], 0))[::-1][:3])
    sec.figure(plot_rates(trials[k], post.rates[k], rec.bin_width, neurons=busiest),
               caption="Fitted rates vs observed counts, first trial")
    sec.figure(plot_objective(best.best_result.log_likelihoods), caption="EM objective")
    return best, {k: float(v) for k, v in heldout.items()}


def _fit_lgssm(rec, rep, *, state_dim, max_iter, seed, holdout_fraction, progress, **_):
    from ..models.lgssm import LinearGaussianSSM
    from ..plotting import plot_latent_trajectories, plot_objective

    obs = [np.sqrt(c) for c in rec.counts]
    model = LinearGaussianSSM(state_dim, rec.n_units, emission_covariance="diagonal")
    heldout = {}
    sec = rep.section("Linear-Gaussian SSM on square-root counts",
                      f"State dimension {state_dim}, exact EM (diagonal observation noise).")
    if rec.n_trials >= 4:
        tr, te = _split_trials(rec, holdout_fraction, seed)
        fit_tr = model.fit_em([obs[i] for i in tr], max_iter=max_iter, seed=seed,
                              progress=progress)
        heldout["LG-SSM (sqrt counts), per bin"] = model.log_prob(
            fit_tr.params, [obs[i] for i in te]) / float(sum(rec.lengths[te]))
        _heldout_table(sec, heldout, "Held-out trials (model fitted on the others): exact "
                       "log-likelihood of the square-root counts per bin", "heldout")
    fit = model.fit_em(obs, max_iter=max_iter, seed=seed, progress=progress)
    post = model.smooth(fit.params, obs)
    means = post.smoothed_means
    means = list(means) if isinstance(means, (list, tuple)) or np.ndim(means) == 3 else [means]
    sec.figure(plot_latent_trajectories(means, np.asarray(rec.trial_labels).astype(str)),
               caption="Smoothed latents")
    sec.figure(plot_objective(fit.log_likelihoods, title="Log-likelihood per EM iteration"),
               caption="EM log-likelihood (exact, monotone)")
    return fit, heldout


def _fit_hmm(rec, rep, *, states, restarts, max_iter, seed, holdout_fraction, progress, **_):
    from ..models.poisson_hmm import PoissonHMM, select_n_states
    from ..plotting import plot_learning_curve, plot_n_states, plot_raster_states

    trials = list(rec.counts)
    sec = rep.section("Poisson HMM", "Exact EM; number of states by held-out log-likelihood "
                      "(the smallest K within one standard error of the best).")
    ks = sorted({int(k) for k in states})
    heldout = {}
    if rec.n_trials >= 4 and len(ks) > 1:
        tr, te = _split_trials(rec, holdout_fraction, seed)
        sel = select_n_states([trials[i] for i in tr], [trials[i] for i in te], ks,
                              rec.bin_width, n_restarts=restarts, seed=seed,
                              max_iter=max_iter)
        sec.table([{"states": int(k), "held-out LL": float(v), "s.e. vs best": float(e),
                    "BIC": float(b)}
                   for k, v, e, b in zip(sel.n_states, sel.test_log_likelihoods,
                                         sel.test_standard_errors, sel.bic)],
                  caption="Model order", key="n_states")
        sec.figure(plot_n_states(sel), caption="Held-out log-likelihood by number of states")
        K = int(sel.parsimonious_n_states)
        heldout = {f"Poisson HMM, K={int(k)}": float(v)
                   for k, v in zip(sel.n_states, sel.test_log_likelihoods)}
    else:
        K = ks[-1]
    model = PoissonHMM(K, rec.bin_width)
    fit = model.fit(trials, n_restarts=restarts, seed=seed, max_iter=max_iter,
                    progress=progress)
    path = model.viterbi(trials[0], fit.params)
    sec.figure(plot_raster_states(trials[0], path, rec.bin_width, n_states=K),
               caption=f"First trial with the decoded states (K={K})")
    sec.figure(plot_learning_curve(fit), caption="EM log-likelihood")
    return fit, heldout


def _fit_ssglm(rec, rep, *, unit, seed, max_iter, **_):
    from ..models.ssglm import ssglm
    from ..plotting.ssglm import plot_rate_surface

    if not 0 <= unit < rec.n_units:
        raise ValueError(f"--unit must be in 0..{rec.n_units - 1}, got {unit}")
    if len(set(rec.lengths.tolist())) != 1:
        raise ValueError("--model ssglm needs trials of equal length")
    spikes = np.stack([c[:, unit] for c in rec.counts])
    res = ssglm(spikes, rec.bin_width, max_iter=max_iter)
    sec = rep.section("State-space GLM across trials",
                      f"Unit {rec.unit_ids[unit]}: the within-trial rate function drifts "
                      f"across {rec.n_trials} trials as a random walk (EM).")
    sec.figure(plot_rate_surface(res), caption="Rate over trial x time")
    return res, {}


# ------------------------------------------------------------------------------ scoring
def _load_fit(path) -> FitRecord:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    return load(p, expect=FitRecord)


def score_command(fit_path, data_path, *, bin_width=None, layout=None, log=print) -> dict:
    """Log-likelihood of a recording under a saved fit (held-out scoring)."""
    from ..evaluation.predictive import point_process_predictive_ll

    rec_fit = _load_fit(fit_path)
    rec = read_recording(data_path, bin_width or rec_fit.bin_width, layout)
    _check_compatible(rec_fit, rec)
    trials = list(rec.counts)
    res = rec_fit.result
    if rec_fit.model == "plds":
        v = point_process_predictive_ll(res.best_result.params, trials, n_samples=500).total
        name = "one-step-ahead predictive log-likelihood (Poisson LDS)"
    elif rec_fit.model == "lgssm":
        from ..models.lgssm import LinearGaussianSSM
        p = res.params
        v = LinearGaussianSSM(p.A.shape[0], p.C.shape[0]).log_prob(
            p, [np.sqrt(c) for c in trials])
        name = "log-likelihood of square-root counts (LG-SSM)"
    elif rec_fit.model == "hmm":
        from ..models.poisson_hmm import PoissonHMM
        v = PoissonHMM(res.params.n_states, rec_fit.bin_width).log_likelihood(trials,
                                                                              res.params)
        name = "log-likelihood (Poisson HMM)"
    else:
        raise ValueError(f"score is not available for --model {rec_fit.model}")
    n_bins = int(np.sum(rec.lengths))
    log(f"{name}: {v:.6g} ({v / n_bins:.6g} per bin, {n_bins} bins)")
    return {"model": rec_fit.model, "log_likelihood": float(v), "n_bins": n_bins}


def _check_compatible(fit: FitRecord, rec: SpikeTrials):
    if rec.n_units != fit.unit_ids.size:
        raise ValueError(f"the data have {rec.n_units} units; the fit has "
                         f"{fit.unit_ids.size}")
    if not np.isclose(rec.bin_width, fit.bin_width):
        raise ValueError(f"the data have {rec.bin_width} s bins; the fit has "
                         f"{fit.bin_width} s bins")


def decode_command(fit_path, data_path, out, *, bin_width=None, layout=None,
                   log=print) -> Path:
    """Decode the latent (or the HMM state) of every trial of a recording under a saved
    fit; write ``decoded.npz`` and a report."""
    from ..models.decoding import ppaf_smoother
    from ..plotting.decoding import plot_decoded_trajectory

    fit = _load_fit(fit_path)
    rec = read_recording(data_path, bin_width or fit.bin_width, layout)
    _check_compatible(fit, rec)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep = Report(f"spikessm decode: {fit.model}", f"{Path(data_path).name}")
    means, variances = [], []
    if fit.model == "plds":
        p = fit.result.best_result.params
        x_star = np.linalg.solve(np.eye(p.state_dim) - p.A, p.b)
        for c in rec.counts:
            r = ppaf_smoother(c, p.A, p.Q, p.m0 - x_star, p.P0, C=p.C,
                              baseline=p.d + p.C @ x_star, bin_width=p.bin_width)
            means.append(r.smoothed_means + x_star)
            variances.append(np.diagonal(r.smoothed_covs, axis1=1, axis2=2))
        times = np.arange(rec.lengths[0]) * rec.bin_width
        lo = means[0] - 1.96 * np.sqrt(variances[0])
        hi = means[0] + 1.96 * np.sqrt(variances[0])
        dims = min(2, p.state_dim)
        rep.section("Decoded latents", "Point-process adaptive filter + RTS smoother "
                    "under the saved Poisson LDS; 95% credible band.").figure(
            plot_decoded_trajectory(times, means[0][:, :dims], {"smoother": means[0][:, :dims]},
                                    intervals=(lo[:, :dims], hi[:, :dims]),
                                    labels=tuple(f"latent {i + 1}" for i in range(dims))),
            caption="First trial")
    elif fit.model == "hmm":
        from ..models.poisson_hmm import PoissonHMM
        from ..plotting import plot_raster_states
        hp = fit.result.params
        m = PoissonHMM(hp.n_states, fit.bin_width)
        for c in rec.counts:
            probs = np.asarray(m.posterior(c, hp))
            means.append(probs)
            variances.append(probs * (1 - probs))
        rep.section("Decoded states").figure(
            plot_raster_states(rec.counts[0], m.viterbi(rec.counts[0], hp), fit.bin_width,
                               n_states=hp.n_states), caption="First trial, Viterbi path")
    else:
        raise ValueError(f"decode is available for --model plds and hmm, not {fit.model}")
    save(out / "decoded.npz", DecodeRecord(fit.model, tuple(means), tuple(variances),
                                           np.asarray(rec.trial_labels).astype(str)),
         provenance=rec.provenance)
    path = rep.write(out / "report.html")
    log(f"decoded {rec.n_trials} trials: {out / 'decoded.npz'}, {path}")
    return path
