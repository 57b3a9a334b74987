"""``spikessm demo``: the main job on an embedded default (no download).

It simulates one session with the library's own generative models and analyses it as a
user would analyse a real recording:

1. **Population dynamics** (Poisson LDS): 30 neurons driven by a 3-D rotational latent
   (20 ms bins, two reach-like conditions that differ in their initial state). A Poisson LDS
   is fitted with batched restarts chosen by held-out one-step-ahead predictive
   log-likelihood on held-out trials, compared with a per-neuron constant-rate model, a
   Gaussian LDS on square-root counts (co-smoothing) and the true model; with
   ``--state-dims`` the state dimension is also chosen by the same held-out score.
2. **Discrete modes** (Poisson HMM): a 3-state session (quiet / active / burst) of 20
   neurons; the number of states is chosen by held-out log-likelihood, the states are
   decoded (Viterbi) and the fitted rates compared with the truth.
3. **Decoding** the latent on held-out trials from spikes with the fitted encoding model
   (point-process adaptive filter and its smoother), against the true latent.

Everything is written to one self-contained HTML page (``report.html``, with
``report.json`` holding the numbers of its tables) and the fitted models are saved
(``*.npz``, no pickle).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from .. import __version__
from ..evaluation import (
    affine_align,
    co_smoothing,
    constant_rate_predictive_ll,
    eigenvalue_match,
)
from ..evaluation.cosmoothing import split_neurons, sqrt_gaussian_co_smoothing
from ..evaluation.predictive import point_process_predictive_ll
from ..evaluation.restarts import fit_point_process_em_best_of, select_state_dim
from ..models.decoding import ppaf_smoother
from ..models.plds import PoissonLDS, make_plds_params
from ..models.poisson_hmm import PoissonHMM, align_states, select_n_states
from ..models.poisson_hmm.params import make_params as make_hmm_params
from ..models.poisson_hmm.params import transition_matrix_from_rates
from .report import Report

BIN = 0.02  # s
CONDITIONS = ("condition 1", "condition 2")


def _rotation(theta: float) -> np.ndarray:
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def simulate_population(seed: int, n_neurons: int = 30, n_trials: int = 32,
                        n_bins: int = 80):
    """Two conditions x n_trials/2 trials of a 3-D rotational latent driving Poisson
    neurons (baseline ~8 Hz). Returns (truth per condition, latents, spikes, labels)."""
    rng = np.random.default_rng(seed)
    A = np.zeros((3, 3))
    A[:2, :2] = 0.97 * _rotation(0.15)
    A[2, 2] = 0.95
    C = rng.normal(0.0, 0.5, (n_neurons, 3))
    d = np.log(8.0) + rng.normal(0.0, 0.4, n_neurons)
    base = dict(A=A, C=C, d=d, Q=0.02 * np.eye(3), P0=0.05 * np.eye(3), bin_width=BIN)
    truths = [make_plds_params(m0=np.array([1.6, 0.0, 0.8]), **base),
              make_plds_params(m0=np.array([-1.6, 0.0, -0.8]), **base)]
    model = PoissonLDS(3, BIN)
    xs, ys, labels = [], [], []
    for c, truth in enumerate(truths):
        x, y, _ = model.sample(truth, n_bins, n_trials=n_trials // 2, seed=seed + 1 + c)
        xs += list(x)
        ys += list(y)
        labels += [CONDITIONS[c]] * (n_trials // 2)
    order = np.random.default_rng(seed + 7).permutation(n_trials)  # interleave conditions
    return (truths, [xs[i] for i in order], [ys[i] for i in order],
            np.array([labels[i] for i in order]))


def simulate_modes(seed: int, n_neurons: int = 20, n_trials: int = 30, n_bins: int = 400,
                   dt: float = 0.01):
    """A 3-state Poisson HMM session: quiet, active and burst modes."""
    rng = np.random.default_rng(seed)
    rates = np.vstack([rng.uniform(1, 5, n_neurons), rng.uniform(5, 20, n_neurons),
                       rng.uniform(2, 40, n_neurons)])  # (K, N) Hz
    switch = np.array([[0.0, 1.0, 0.3], [0.8, 0.0, 0.6], [0.5, 1.5, 0.0]])  # Hz
    truth = make_hmm_params(np.array([0.6, 0.3, 0.1]), transition_matrix_from_rates(switch, dt),
                            rates)
    states, y = PoissonHMM(3, dt).sample(truth, n_trials=n_trials, n_bins=n_bins, seed=seed + 1)
    return truth, states, y


def _split(n: int, n_test: int, seed: int):
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _centred(p):
    """(A, Q, m0, P0, C, baseline) of the same model with the dynamics offset b moved into
    the loadings' baseline: x = x' + x*, x* = (I - A)^-1 b, so x'_t = A x'_{t-1} + w_t."""
    x_star = np.linalg.solve(np.eye(p.state_dim) - p.A, p.b)
    return x_star, (p.A, p.Q, p.m0 - x_star, p.P0, p.C, p.d + p.C @ x_star)


def _decode(p, y):
    x_star, (A, Q, m0, P0, C, base) = _centred(p)
    res = ppaf_smoother(y, A, Q, m0, P0, C=C, baseline=base, bin_width=p.bin_width)
    return (res.filtered_means + x_star, res.filtered_covs,
            res.smoothed_means + x_star, res.smoothed_covs)


def _scores(est, covs, truth, M=None):
    """R^2 over every coordinate and 95% interval coverage (per coordinate)."""
    est, truth = np.concatenate(est), np.concatenate(truth)
    var = np.concatenate([np.diagonal(c, axis1=1, axis2=2) if M is None else
                          np.einsum("ij,tik,kj->tj", M, c, M) for c in covs])
    r2 = 1.0 - np.sum((est - truth) ** 2) / np.sum((truth - truth.mean(0)) ** 2)
    cover = np.mean(np.abs(est - truth) <= 1.959964 * np.sqrt(var))
    return float(r2), float(cover)


def decode_latents(params, truths, xs, ys, labels, train_idx, test_idx) -> dict:
    """Decode each test trial's latent with the PPAF (filter and smoother), under the fitted
    model (mapped to the true frame by an affine map learnt on training trials) and under
    the true model. Returns R^2 and 95% coverage of each, and one trial's trace."""
    post = PoissonLDS(params.state_dim, params.bin_width).smooth(params, [ys[i]
                                                                          for i in train_idx])
    X = np.concatenate(post.means)
    Y = np.concatenate([xs[i] for i in train_idx])
    _, M = affine_align(X, Y)
    mx, my = X.mean(0), Y.mean(0)
    out, trace = {}, None
    for key in ("fit", "true"):
        f_est, f_cov, s_est, s_cov, tru = [], [], [], [], []
        for i in test_idx:
            p = params if key == "fit" else truths[CONDITIONS.index(labels[i])]
            fm, fc, sm, sc = _decode(p, ys[i])
            if key == "fit":
                fm, sm = (fm - mx) @ M + my, (sm - mx) @ M + my
            f_est.append(fm)
            f_cov.append(fc)
            s_est.append(sm)
            s_cov.append(sc)
            tru.append(xs[i])
            if key == "fit" and trace is None:
                sd = np.sqrt(np.einsum("ij,tik,kj->tj", M, fc, M))
                trace = {"trial": int(i), "times": np.arange(len(fm)) * p.bin_width,
                         "truth": xs[i], "filter": fm, "smoother": sm,
                         "lower": fm - 1.959964 * sd, "upper": fm + 1.959964 * sd}
        Mk = M if key == "fit" else None
        out[f"{key}_filter_r2"], out[f"{key}_filter_coverage"] = _scores(f_est, f_cov, tru, Mk)
        out[f"{key}_smoother_r2"], out[f"{key}_smoother_coverage"] = _scores(s_est, s_cov,
                                                                             tru, Mk)
    out["trace"] = trace
    return out


def run_demo(out: Path, *, seed: int = 0, n_restarts: int = 3, state_dims=None,
             progress: bool = True, save_fits: bool = True, log=print) -> dict:
    """Run the demo; write ``out/report.html`` (+ ``report.json``) and the fitted models.
    Returns the numbers shown in the report."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from ..plotting import (
        plot_latent_trajectories,
        plot_learning_curve,
        plot_n_states,
        plot_objective,
        plot_raster_states,
        plot_rates,
        plot_rates_comparison,
        plot_state_dim_sweep,
    )
    from ..plotting.decoding import plot_decoded_trajectory

    out = Path(out)
    t_start = time.perf_counter()
    rep = Report("spikessm demo report",
                 f"spikessm {__version__} · simulated session (seed {seed}) · no download")
    numbers: dict = {}

    # ---------------------------------------------------------------- 1. Poisson LDS
    truths, xs, ys, labels = simulate_population(seed)
    train_idx, test_idx = _split(len(ys), 8, seed)
    train = [ys[i] for i in train_idx]
    test = [ys[i] for i in test_idx]
    N = ys[0].shape[1]
    log(f"[1/3] Poisson LDS: {len(ys)} trials x {ys[0].shape[0]} bins of {BIN * 1e3:.0f} ms, "
        f"{N} neurons (train {len(train)}, test {len(test)})")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        best = fit_point_process_em_best_of(train, 3, n_restarts=n_restarts, holdout="trials",
                                            holdout_fraction=0.25, n_iter=100, init="sqrt_lds",
                                            seed=seed, bin_width=BIN, n_samples=200,
                                            progress=progress)
    t_fit = time.perf_counter() - t0
    fit = best.best_result
    params = fit.params
    model = PoissonLDS(3, BIN)
    # held-out trials: one-step-ahead predictive LL (joint over neurons), baselines, truth
    ll_fit = point_process_predictive_ll(params, test, n_samples=500, seed=seed).total
    test_labels = labels[test_idx]
    ll_true = sum(point_process_predictive_ll(truth, [t for t, lab in zip(test, test_labels)
                                                      if lab == name],
                                              n_samples=500, seed=seed).total
                  for truth, name in zip(truths, CONDITIONS))  # each trial under its own
    ll_const = constant_rate_predictive_ll(train, test, BIN).total
    held = split_neurons(N, 0.25, seed)
    cs = co_smoothing(params, train, test, held)
    cs_sqrt = sqrt_gaussian_co_smoothing(train, test, held, 3)
    eig_err = eigenvalue_match(params.A, truths[0].A)
    n_spikes = float(sum(t.sum() for t in test))
    gain = (ll_fit - ll_const) / (ll_true - ll_const)
    numbers["plds"] = dict(ll_fit=ll_fit, ll_true=ll_true, ll_const=ll_const, gain=gain,
                           eig_err=eig_err, cosmooth_bits=cs.bits_per_spike,
                           cosmooth_sqrt_bits=cs_sqrt.bits_per_spike, seconds=t_fit)
    sec = rep.section(
        "1. Population dynamics: Poisson LDS",
        f"{len(ys)} simulated trials ({ys[0].shape[0] * BIN:.0f} s each, two conditions) of "
        f"{N} neurons driven by a 3-D rotational latent. {n_restarts} restarts were fitted "
        f"batched on {len(train)} training trials and the best chosen by the held-out "
        f"one-step-ahead predictive log-likelihood of a quarter of them; the scores below are "
        f"on {len(test)} further test trials never used in fitting or selection.")
    sec.table([{"restart seed": int(s), "held-out predictive LL": float(v),
                "EM iterations": int(r.n_iter), "converged": bool(r.converged),
                "chosen": bool(s == best.best_seed)}
               for s, v, r in zip(best.all_seeds, best.all_predictive_lls, best.all_results)],
              caption="Restarts (selection split)", key="plds_restarts")
    sec.table([
        {"model": "Poisson LDS (fitted, d=3)", "test predictive LL": ll_fit,
         "bits/spike vs constant": (ll_fit - ll_const) / n_spikes / np.log(2)},
        {"model": "true model", "test predictive LL": ll_true,
         "bits/spike vs constant": (ll_true - ll_const) / n_spikes / np.log(2)},
        {"model": "constant rate per neuron", "test predictive LL": ll_const,
         "bits/spike vs constant": 0.0}],
        caption="Held-out one-step-ahead predictive log-likelihood (test trials)",
        key="plds_heldout")
    sec.table([{"model": "Poisson LDS", "co-smoothing bits/spike": cs.bits_per_spike},
               {"model": "Gaussian LDS on sqrt counts", "co-smoothing bits/spike":
                cs_sqrt.bits_per_spike}],
              caption=f"Co-smoothing: {held.size} held-out neurons predicted from the others",
              key="plds_cosmoothing")
    sec.text(f"The fitted model recovers {100 * gain:.1f}% of the true model's held-out gain "
             f"over the constant-rate model; eigenvalues of A within {eig_err:.3f} of the "
             f"truth. Fitting took {t_fit:.1f} s including compilation.")
    post = model.smooth(params, ys)
    sec.figure(plot_latent_trajectories(post.means, labels,
                                        title="Smoothed latents (canonical gauge)"),
               caption="Latent trajectories, coloured by condition")
    k0 = int(test_idx[0])
    busiest = tuple(int(i) for i in np.argsort(ys[k0].sum(0))[::-1][:3])
    sec.figure(plot_rates(ys[k0], post.rates[k0], BIN, neurons=busiest, smooth=3,
                          title=f"Trial {k0} (test)"),
               caption="Fitted (smoothed) rates vs observed counts")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for r in best.all_results:
        plot_objective(r.log_likelihoods, ax=ax, label=f"seed {r.seed}")
    ax.legend(fontsize=8)
    sec.figure(fig, caption="Objective (Laplace log p(y)) of every restart")

    if state_dims:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sweep = select_state_dim(train, state_dims, n_restarts=1, holdout="trials",
                                     holdout_fraction=0.25, n_iter=100, init="sqrt_lds",
                                     seed=seed, bin_width=BIN,
                                     n_samples=200)
        numbers["state_dim"] = int(sweep.best_state_dim)
        sec.table([{"state dim": r["state_dim"], "best held-out LL": r["best"],
                    "failed restarts": r["n_failed"]} for r in sweep.table()],
                  caption="Model order: held-out predictive LL by state dimension",
                  key="plds_state_dim")
        sec.figure(plot_state_dim_sweep(sweep.state_dims, sweep.best),
                   caption=f"State dimension chosen: {sweep.best_state_dim} (true: 3)")
    log(f"      gain {100 * gain:.1f}% of true, co-smoothing {cs.bits_per_spike:.3f} vs "
        f"{cs_sqrt.bits_per_spike:.3f} bits/spike (sqrt LDS)  "
        f"[{time.perf_counter() - t_start:.0f} s]")

    # ---------------------------------------------------------------- 3 (data). decoding
    dec = decode_latents(params, truths, xs, ys, labels, train_idx, test_idx)
    numbers["decoding"] = {k: v for k, v in dec.items() if k != "trace"}

    # ---------------------------------------------------------------- 2. Poisson HMM
    dt = 0.01
    htruth, hstates, hy = simulate_modes(seed + 100)
    htr, hte = _split(hy.shape[0], 8, seed)
    log(f"[2/3] Poisson HMM: {hy.shape[0]} trials x {hy.shape[1]} bins of {dt * 1e3:.0f} ms, "
        f"{hy.shape[2]} neurons")
    sel = select_n_states(hy[htr], hy[hte], (1, 2, 3, 4), dt, n_restarts=2, seed=seed,
                          max_iter=150, tol=1e-7)
    hfit = sel.fits[list(sel.n_states).index(3)]
    hmm = PoissonHMM(3, dt)
    hp = hfit.params.permute(align_states(hfit.params.rates, htruth.rates))
    path = hmm.viterbi(hy[hte[0]], hp)
    acc = float(np.mean(path == hstates[hte[0]]))
    rate_err = float(np.median(np.abs(hp.rates / htruth.rates - 1)))
    numbers["hmm"] = dict(best_n_states=int(sel.best_n_states),
                          chosen_n_states=int(sel.parsimonious_n_states),
                          viterbi_accuracy=acc, median_rate_error=rate_err)
    sec = rep.section("2. Discrete modes: Poisson HMM",
                      "A 3-state session (quiet / active / burst). Poisson HMMs with 1-4 "
                      "states were fitted by exact EM (best of 2 restarts each) and scored on "
                      f"{len(hte)} held-out trials; the number of states chosen is the "
                      "smallest within one standard error (paired over test trials) of the "
                      "best held-out log-likelihood.")
    sec.table([{"states": int(k), "train LL": float(a), "held-out LL": float(b),
                "s.e. vs best": float(se), "held-out LL per bin": float(c), "BIC": float(e)}
               for k, a, b, se, c, e in zip(sel.n_states, sel.train_log_likelihoods,
                                            sel.test_log_likelihoods, sel.test_standard_errors,
                                            sel.test_per_bin, sel.bic)],
              caption="Model order", key="hmm_n_states")
    sec.table([{"chosen states": int(sel.parsimonious_n_states),
                "highest held-out LL at": int(sel.best_n_states),
                "Viterbi accuracy (test trial)": acc,
                "median relative rate error": rate_err}],
              caption="Recovery at 3 states", key="hmm_recovery")
    sec.figure(plot_n_states(sel), caption="Held-out log-likelihood by number of states")
    sec.figure(plot_raster_states(hy[hte[0]], path, dt, n_states=3),
               caption="Test trial: spikes with the decoded (Viterbi) states")
    sec.figure(plot_rates_comparison(hp, htruth, dt), caption="Fitted vs true rates")
    sec.figure(plot_learning_curve(hfit), caption="EM log-likelihood by iteration")
    log(f"      states chosen {sel.parsimonious_n_states} (highest held-out LL at "
        f"{sel.best_n_states}), Viterbi accuracy {acc:.3f}  "
        f"[{time.perf_counter() - t_start:.0f} s]")

    sec = rep.section(
        "3. Decoding the latent from spikes",
        "The point-process adaptive filter (Eden et al. 2004) and its fixed-interval "
        "smoother decode the latent state of each test trial from its spikes, with the "
        "fitted Poisson LDS as encoding model and, for reference, with the true model. "
        "Fitted latents are defined only up to an affine map, so they are mapped onto the "
        "true latents with the least-squares affine map learnt on the training trials' "
        "smoothed latents (never on test data); 95% intervals are mapped with it.")
    sec.table([{"encoding model": name, "decoder": kind, "R^2": dec[f"{key}_{kk}_r2"],
                "95% interval coverage": dec[f"{key}_{kk}_coverage"]}
               for key, name in (("fit", "fitted Poisson LDS"), ("true", "true model"))
               for kk, kind in (("filter", "PPAF filter (causal)"),
                                ("smoother", "PPAF + RTS smoother"))],
              caption="Decoding accuracy on the test trials (true latent as reference)",
              key="decoding")
    tr = dec["trace"]
    sec.figure(plot_decoded_trajectory(tr["times"], tr["truth"][:, :2],
                                       {"filter (fitted model)": tr["filter"][:, :2],
                                        "smoother (fitted model)": tr["smoother"][:, :2]},
                                       intervals=(tr["lower"][:, :2], tr["upper"][:, :2]),
                                       labels=("latent 1", "latent 2")),
               caption=f"Test trial {tr['trial']}: decoded vs true latent (95% band of the "
                       "filter)")
    log(f"[3/3] decoding R^2 filter {dec['fit_filter_r2']:.3f}, smoother "
        f"{dec['fit_smoother_r2']:.3f}, coverage {dec['fit_filter_coverage']:.3f}  "
        f"[{time.perf_counter() - t_start:.0f} s]")

    numbers["seconds"] = time.perf_counter() - t_start
    rep.section("About this run").table(
        [{"spikessm": __version__, "seed": seed, "total seconds": numbers["seconds"]}],
        caption="Run", key="run")
    rep.write(out / "report.html")
    log(f"report: {out / 'report.html'}  ({numbers['seconds']:.0f} s)")
    return numbers
