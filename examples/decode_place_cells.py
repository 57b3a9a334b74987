"""Decode a rat's position from 49 hippocampal place cells with the point-process adaptive
filter (PPAF) and compare it with a static Bayesian decoder and a linear (Kalman) decoder.

Data: ``../shared/data/place_cells/PlaceCellDataAnimal1.mat`` (Barbieri et al. 2005, via
nSTAT), free foraging in a circular arena of diameter 70 cm, position tracked at 30 Hz and
normalised to [-1, 1] (1 unit = 35 cm). Spikes are binned on the tracking clock
(43,799 bins of 33.3 ms).

1. Encoding: a Poisson GLM per cell on the first half of the recording
   (:func:`spikessm.models.glm.fit.fit_glm`), log-rate = intercept + Zernike polynomials
   of the position up to radial order 3 on the unit disk (:class:`spikessm.models.glm.Zernike`,
   9 features; the basis nSTAT's place-cell example uses). ``--order`` changes the order.
2. Decoding on the second (held-out) half:
   * PPAF (filter and RTS smoother) with a random-walk prior ``x_t = x_{t-1} + w_t``,
     ``Q = k * cov(training increments)`` with ``k`` in {1, 2, 4, 8} chosen by the filter's
     marginal log-likelihood of the *training* spikes, and the fitted place fields as the
     log-intensity (derivatives by JAX autodiff);
   * static per-bin Bayesian decoder on a 2-cm grid of the arena, occupancy prior;
   * linear Kalman decoder (counts linear in position, least squares on the training half).
3. Median error (cm), 95% interval coverage, figures.

Run from the repository root::

    python examples/decode_place_cells.py [--out docs/figures] [--no-figures]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.io as sio
from scipy.stats import chi2

from spikessm.models.decoding import (
    bayesian_decoder,
    kalman_decoder,
    ppaf_filter,
    ppaf_smoother,
)
from spikessm.models.glm import Zernike
from spikessm.models.glm.fit import fit_glm, log_intensity

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "place_cells"
CM = 35.0  # cm per normalised unit (arena diameter 70 cm)


def load(path=DATA / "PlaceCellDataAnimal1.mat"):
    """Counts (T, N), positions (T, 2) in normalised units, bin width (s), bin times (s)."""
    d = sio.loadmat(path, squeeze_me=True, struct_as_record=False)
    t = np.asarray(d["time"], dtype=float).ravel()
    dt = float(np.median(np.diff(t)))
    edges = np.append(t, t[-1] + dt)
    counts = np.stack([np.histogram(np.atleast_1d(n.spikeTimes), edges)[0]
                       for n in d["neuron"]], axis=1).astype(float)
    pos = np.column_stack([np.ravel(d["x"]), np.ravel(d["y"])])
    return counts, pos, dt, t


def ellipse_coverage(truth, means, covs, level=0.95):
    """Fraction of bins whose truth lies in the Gaussian ``level`` credible ellipse."""
    e = truth - means
    m2 = np.einsum("ti,ti->t", e, np.linalg.solve(covs, e[..., None])[..., 0])
    return float(np.mean(m2 <= chi2.ppf(level, truth.shape[1])))


def box_coverage(truth, lo, hi):
    """Fraction of (bin, coordinate) pairs inside their central intervals."""
    return float(np.mean((truth >= lo) & (truth <= hi)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs"
                                         / "figures"))
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--order", type=int, default=3, help="Zernike radial order")
    ap.add_argument("--no-iterated", action="store_true",
                    help="skip the iterated (posterior-mode) PPAF")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    args = ap.parse_args(argv)
    if not DATA.exists():
        print(f"data folder {DATA} not found; nothing to do")
        return None

    counts, pos, dt, times = load()
    T, N = counts.shape
    half = T // 2
    y_tr, y_te, x_tr, x_te = counts[:half], counts[half:], pos[:half], pos[half:]
    print(f"{N} cells, {T} bins of {dt * 1e3:.1f} ms; train {half}, test {T - half} bins")

    # 1. encoding model on the training half
    basis = Zernike(args.order)
    t0 = time.perf_counter()
    fit = fit_glm(y_tr, basis(x_tr), bin_width=dt)
    f = log_intensity(fit, basis)  # log expected count per bin: use bin_width = 1
    print(f"GLM fit: {time.perf_counter() - t0:.1f} s, converged {int(fit.converged.sum())}/{N}")

    # 2a. PPAF with a random-walk prior fitted on the training trajectory
    A = np.eye(2)
    Q1 = np.cov(np.diff(x_tr, axis=0).T)
    m0, P0 = x_tr.mean(0), np.cov(x_tr.T)

    def select_q(**kw):
        scores = {}
        for k in (1, 2, 4, 8):
            try:
                scores[k] = ppaf_filter(y_tr, A, k * Q1, m0, P0, log_intensity=f,
                                        **kw).marginal_log_likelihood
            except FloatingPointError:  # the state left the arena and a rate overflowed
                scores[k] = -np.inf
        print("training marginal log-likelihood by Q scale:",
              {k: round(v, 1) for k, v in scores.items()})
        return max(scores, key=scores.get)

    k_best = select_q()
    Q = k_best * Q1
    print(" -> classic filter: k =", k_best)
    ppaf_filter(y_te, A, Q, m0, P0, log_intensity=f)  # compile for these shapes
    t0 = time.perf_counter()
    filt = ppaf_filter(y_te, A, Q, m0, P0, log_intensity=f)
    t_filter = time.perf_counter() - t0
    smooth = ppaf_smoother(y_te, A, Q, m0, P0, log_intensity=f)

    k_iter = None
    if not args.no_iterated:
        k_iter = select_q(iterated=True)
        print(" -> iterated filter: k =", k_iter)
        filt_it = ppaf_filter(y_te, A, k_iter * Q1, m0, P0, log_intensity=f, iterated=True)

    # 2b. static Bayesian decoder on a 2 cm grid of the arena, occupancy prior
    g = np.arange(-1.0, 1.0 + 1e-9, 2.0 / CM)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    grid = grid[np.hypot(grid[:, 0], grid[:, 1]) <= 1.0]
    near = np.argmin(((x_tr[:, None, :] - grid[None]) ** 2).sum(-1), axis=1)
    occupancy = np.bincount(near, minlength=len(grid)) + 1.0
    bayes = bayesian_decoder(y_te, grid, np.asarray(f(grid)), prior=occupancy, truth=x_te)

    # 2c. linear Kalman decoder
    kal = kalman_decoder(y_tr, x_tr, y_te)

    err = lambda est: CM * np.hypot(*(est - x_te).T)  # noqa: E731
    rows = {
        "PPAF filter": (err(filt.filtered_means),
                        ellipse_coverage(x_te, filt.filtered_means, filt.filtered_covs),
                        box_coverage(x_te, *filt.intervals(0.95))),
        "PPAF smoother": (err(smooth.smoothed_means),
                          ellipse_coverage(x_te, smooth.smoothed_means, smooth.smoothed_covs),
                          box_coverage(x_te, *smooth.intervals(0.95))),
    }
    if k_iter is not None:
        rows["PPAF iterated filter"] = (
            err(filt_it.filtered_means),
            ellipse_coverage(x_te, filt_it.filtered_means, filt_it.filtered_covs),
            box_coverage(x_te, *filt_it.intervals(0.95)))
    rows |= {
        "static Bayesian (posterior mean)": (err(bayes.means), float(np.mean(bayes.in_hpd)),
                                             float("nan")),
        "linear Kalman decoder": (err(kal.filtered_means),
                                  ellipse_coverage(x_te, kal.filtered_means, kal.filtered_covs),
                                  box_coverage(x_te, *kal.intervals(0.95))),
    }
    print(f"\nheld-out half ({T - half} bins, {(T - half) * dt / 60:.1f} min):")
    print(f"{'decoder':36s} {'median err (cm)':>16s} {'mean err':>9s} {'95% region':>11s}"
          f" {'95% per-coord':>14s}")
    out = {}
    for name, (e, cov_joint, cov_box) in rows.items():
        print(f"{name:36s} {np.median(e):16.1f} {np.mean(e):9.1f} {cov_joint:11.3f}"
              f" {cov_box:14.3f}")
        out[name] = dict(median_cm=float(np.median(e)), mean_cm=float(np.mean(e)),
                         coverage_region=cov_joint, coverage_per_coordinate=cov_box)
    print(f"\nPPAF filter on {T - half} bins x {N} cells: {t_filter:.2f} s after compilation "
          f"(fallback steps: {filt.n_fallback})")
    out["ppaf_filter_seconds"] = t_filter
    out["Q_scale"] = k_best
    out["Q_scale_iterated"] = k_iter
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))

    if not args.no_figures:
        from spikessm.plotting.decoding import (
            plot_decoded_trajectory,
            plot_decoding_error,
            plot_rate_maps,
        )

        outdir = Path(args.out)
        outdir.mkdir(parents=True, exist_ok=True)
        tt = times[half:] - times[half]
        win = slice(3000, 3900)  # 30 s of the held-out half
        fig = plot_decoded_trajectory(
            tt[win], CM * x_te[win],
            {"PPAF smoother": CM * smooth.smoothed_means[win],
             "static Bayesian": CM * bayes.means[win],
             "linear Kalman": CM * kal.filtered_means[win]},
            intervals=tuple(CM * v[win] for v in smooth.intervals(0.95)))
        fig.savefig(outdir / "decoding_trajectory.png", dpi=110)
        names = {"PPAF filter": "PPAF filter", "PPAF smoother": "PPAF smoother",
                 "static Bayesian": "static Bayesian (posterior mean)",
                 "linear Kalman": "linear Kalman decoder"}
        fig = plot_decoding_error(tt, {k: rows[v][0] for k, v in names.items()})
        fig.savefig(outdir / "decoding_error.png", dpi=110)
        gx = np.linspace(-1, 1, 61)
        mesh = np.stack(np.meshgrid(gx, gx), -1)
        rates = np.exp(np.asarray(f(mesh.reshape(-1, 2)))) / dt  # Hz
        rates = rates.reshape(61, 61, N).transpose(2, 0, 1)
        # show the fields where the animal went in the training half (polynomial fields are
        # unconstrained outside), cells with the most training spikes first
        step = gx[1] - gx[0]
        occ, _, _ = np.histogram2d(x_tr[:, 1], x_tr[:, 0], bins=np.append(gx - step / 2,
                                                                        gx[-1] + step / 2))
        rates[:, occ == 0] = np.nan
        order = np.argsort(-y_tr.sum(0))[:12]
        fig = plot_rate_maps(CM * gx, CM * gx, rates[order],
                             labels=[f"cell {i}" for i in order])
        fig.savefig(outdir / "decoding_place_fields.png", dpi=110)
        print(f"figures written to {outdir}")
    return out


if __name__ == "__main__":
    main()
