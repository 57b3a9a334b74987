"""Place-cell encoding models on a real recording, plus Granger causality on simulations.

Part 1 (real data, ../shared/data/place_cells, Barbieri et al. 2005; skipped when absent):
49 hippocampal cells, rat foraging in a circular arena, position at 30 Hz (43,799 bins).
Fits a Poisson GLM of every cell on a 2-D position basis (Zernike polynomials and a grid of
Gaussian bumps), then with each cell's own spike history added, compares them by AIC, checks
goodness of fit with the time-rescaling KS test, and draws the fitted place fields.

Part 2 (simulated): point-process Granger causality on a 6-neuron network with known
directed couplings, and conditional spectral Granger causality on a 3-channel VAR.

Run from the repository root:  python examples/glm_place_cells.py [--figures docs/figures]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from spikessm.models.glm import (
    GaussianBumps,
    Zernike,
    fit_glm,
    granger_causality,
    simulate_network,
    spectral_granger,
    time_rescaling_fit,
)

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "place_cells"


def load_place_cells(folder=DATA):
    """``(counts (T, 49), positions (T, 2), bin_width)``, spikes binned on the 30 Hz
    position clock (bin ``t`` centred on ``time[t]``); None when the data are absent."""
    path = Path(folder) / "PlaceCellDataAnimal1.mat"
    if not path.exists():
        return None
    from scipy.io import loadmat

    m = loadmat(path, squeeze_me=True, struct_as_record=False)
    t = np.asarray(m["time"], dtype=float)
    dt = float(np.median(np.diff(t)))
    edges = np.r_[t - 0.5 * dt, t[-1] + 0.5 * dt]
    counts = np.stack([np.histogram(np.atleast_1d(n.spikeTimes), edges)[0]
                       for n in m["neuron"]], axis=1).astype(float)
    pos = np.stack([np.asarray(m["x"], float), np.asarray(m["y"], float)], axis=1)
    return counts, pos, dt


def place_cells(figures: Path | None):
    data = load_place_cells()
    if data is None:
        print(f"place-cell data not found at {DATA}; skipping part 1")
        return
    counts, pos, dt = data
    T, N = counts.shape
    print(f"place cells: {N} cells x {T} bins of {dt * 1000:.1f} ms")
    grid = GaussianBumps.grid(7, -1.0, 1.0, dim=2)  # keep the centres inside the arena
    inside = grid.centers[np.hypot(*grid.centers.T) <= 1.0]
    bases = {"zernike(3)": Zernike(3), "zernike(6)": Zernike(6),
             f"bumps ({len(inside)})": GaussianBumps(inside, grid.width)}
    fits = {}
    for name, basis in bases.items():
        t0 = time.perf_counter()
        fits[name] = fit_glm(counts, basis(pos), bin_width=dt,
                             feature_names=basis.feature_names)
        print(f"  {name:11s} {basis.n_features:3d} features: fit in "
              f"{time.perf_counter() - t0:5.1f} s; total AIC {fits[name].aic.sum():.0f}; "
              f"converged {fits[name].converged.sum()}/{N}")
    best = min(fits, key=lambda k: fits[k].aic.sum())
    # the same position basis plus each cell's own spike history (33 ms to 660 ms)
    hist_name = "zernike(6)+hist"
    t0 = time.perf_counter()
    fits[hist_name] = fit_glm(counts, bases["zernike(6)"](pos), bin_width=dt,
                              history=(1, 2, 3, 5, 10, 20))
    print(f"  {hist_name:11s} {fits[hist_name].coef.shape[1]:3d} features: fit in "
          f"{time.perf_counter() - t0:5.1f} s; total AIC {fits[hist_name].aic.sum():.0f}; "
          f"converged {fits[hist_name].converged.sum()}/{N}")
    # per cell, how often each basis wins by AIC
    aics = np.stack([fits[k].aic for k in bases])
    wins = {k: int(np.sum(np.argmin(aics, axis=0) == n)) for n, k in enumerate(bases)}
    print(f"  lowest total AIC without history: {best}; per-cell AIC wins {wins}")
    ks = {k: time_rescaling_fit(fits[k], counts, seed=0) for k in fits}
    for k, res in ks.items():
        inside = sum(r.within_bounds for r in res)
        med = np.median([r.ks_statistic for r in res])
        print(f"  {k:11s} KS within 95% bounds: {inside}/{N} cells; median KS {med:.3f}")
    if figures is not None:
        from spikessm.plotting.glm import plot_ks, plot_place_fields

        cells = [int(i) for i in np.argsort(-counts.sum(0))[1:9]]  # busiest after the interneuron
        fig = plot_place_fields(fits[best], bases[best], neurons=cells, positions=pos,
                                title=f"Fitted place fields ({best}, rate in Hz)")
        fig.savefig(figures / "glm_place_fields.png", dpi=110)
        c = cells[0]
        fig = plot_ks([ks[k][c] for k in ks], labels=list(ks),
                      title=f"Time-rescaling KS plot, cell {c}")
        fig.savefig(figures / "glm_ks.png", dpi=110)


def network(figures: Path | None):
    N, ens, bw = 6, (1, 2, 5, 10), 0.002
    true = {(0, 1): 1.5, (0, 2): 1.2, (2, 3): 1.2, (3, 4): 1.5, (4, 5): -2.0, (5, 0): 1.2}
    K = np.zeros((N, N, 3))
    for (s, t), w in true.items():
        K[t, s] = [w, 0.5 * w, 0.2 * w]
    y = simulate_network(20000, bin_width=bw, baseline_rate=np.full(N, 30.0), coupling=K,
                         ensemble=ens, seed=0)
    res = granger_causality(y, bin_width=bw, history=ens, link="logit")
    print("Granger network (source, target, sign):", sorted(res.edges))
    print("  true edges:                         ",
          sorted((s, t, int(np.sign(w))) for (s, t), w in true.items()))
    fs, f0, r = 200.0, 40.0, 0.95
    A1 = np.array([[2 * r * np.cos(2 * np.pi * f0 / fs), 0, 0], [0.6, 0.3, 0], [0, 0.6, 0.3]])
    A2 = np.array([[-r * r, 0, 0], [0, 0, 0], [0, 0, 0]])
    rng = np.random.default_rng(3)
    x = np.zeros((6200, 3))
    e = rng.normal(size=x.shape)
    for t in range(2, len(x)):
        x[t] = A1 @ x[t - 1] + A2 @ x[t - 2] + e[t]
    g = spectral_granger(x[200:], fs=fs, order=4)
    print(f"spectral Granger 0 -> 1 | 2 peaks at {g.peak_frequency(1, 0):.1f} Hz "
          f"(oscillator at {f0} Hz); max 0 -> 2 | 1 = {np.max(g.spectrum[2, 0]):.3f}")
    if figures is not None:
        from spikessm.plotting.glm import plot_granger_spectrum, plot_network

        plot_network(res).savefig(figures / "glm_network.png", dpi=110)
        fig = plot_granger_spectrum(g, pairs=[(0, 1), (1, 2), (0, 2), (1, 0)])
        fig.savefig(figures / "glm_granger_spectrum.png", dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figures", type=Path, default=None, help="folder for PNG figures")
    args = ap.parse_args()
    if args.figures is not None:
        import matplotlib

        matplotlib.use("Agg")
        args.figures.mkdir(parents=True, exist_ok=True)
    place_cells(args.figures)
    network(args.figures)


if __name__ == "__main__":
    main()
