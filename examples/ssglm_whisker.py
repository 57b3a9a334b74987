"""SSGLM on real data: rat VPm thalamic neurons, 50 repeats of a whisker deflection
(nSTAT's whisker data set; see ../shared/data/README.md).

For each neuron / stimulus the two files (17 + 33 trials) are merged by their trial
numbers into a (50, 3000) matrix at 1 ms. The held-out-trial log-likelihood of the SSGLM
(5 folds over trials: the held-out trials are masked, their rate is predicted from the
other trials by the smoother, and their spikes are scored by the Laplace approximation
of the predictive) is compared with a static GLM-PSTH fitted on the same training trials,
scored the same way (Laplace predictive over its coefficients' posterior) and, as
before, plug-in at its coefficients; the SSGLM's plug-in score (at the posterior mode)
is printed too. The SSGLM runs with its defaults (Q maximised exactly with the test of
drift, EM to convergence); the held-out trials never inform either fit.

Run from the repository root:  python examples/ssglm_whisker.py [--all] [--sets 1 2]
[--q-type isotropic] [--drift-level 0.05] [--trial-gain] [--figures DIR]
(``--trial-gain``: the SSGLM with a per-trial gain, ``ssglm(..., trial_gain=True)``; the
GLM-PSTH baseline is unchanged)
Skips (exit 0) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "whisker_thalamus"
BIN = 0.001
HISTORY = [0, 0.001, 0.002, 0.005, 0.010]  # s: refractoriness / bursting windows


def load(folder: Path) -> np.ndarray:
    """(50, 3000) 0/1 spikes ordered by the original trial number."""
    from scipy.io import loadmat

    tr = loadmat(folder / "trngdataBis.mat")
    ts = loadmat(folder / "testdataBis.mat")
    idx = np.concatenate([tr["idxtr"].ravel(), ts["idxts"].ravel()]) - 1
    y = np.concatenate([tr["y"].reshape(-1, 3000), ts["y"].reshape(-1, 3000)], axis=0)
    out = np.empty_like(y, dtype=float)
    out[idx] = y
    return out


def heldout_comparison(y: np.ndarray, *, n_folds: int = 5, basis_width: float = 0.05,
                       window_times=HISTORY, **fit_kw) -> dict:
    """Summed held-out-trial log-likelihood of the SSGLM and of a GLM-PSTH (nats).

    Each model is scored two ways: by the Laplace predictive (integrating over the
    posterior of the coefficients: ``heldout_log_likelihood`` /
    ``predictive_log_likelihoods``) and plug-in (at the posterior mode / the fitted
    coefficients). ``fit_kw`` go to :func:`ssglm`."""
    from spikessm.models.ssglm import glm_psth, ssglm

    K = y.shape[0]
    folds = np.arange(K) % n_folds
    out = dict.fromkeys(("ssglm", "ssglm_plugin", "glm_psth", "glm_psth_predictive"), 0.0)
    iters, converged, drifting, gains = [], [], [], []
    for f in range(n_folds):
        test = np.flatnonzero(folds == f)
        train = np.flatnonzero(folds != f)
        masked = y.copy()
        masked[test] = np.nan  # the held-out trials never inform the fit
        res = ssglm(masked, BIN, basis_width=basis_width, window_times=window_times, **fit_kw)
        out["ssglm"] += float(np.sum(res.heldout_log_likelihood(y, test)))
        out["ssglm_plugin"] += float(np.sum(res.plugin_log_likelihood(y, test)))
        ps = glm_psth(y[train], BIN, basis_width=basis_width, window_times=window_times)
        out["glm_psth"] += float(np.sum(ps.trial_log_likelihoods(y[test])))
        out["glm_psth_predictive"] += float(np.sum(ps.predictive_log_likelihoods(y[test])))
        iters.append(res.n_iter)
        converged.append(res.converged)
        drifting.append(int(np.sum(np.diag(res.Q) > 10 * 1e-8)))
        gains.append(res.gain_var)
    n_spikes = float(y.sum())
    out["gain_bits_per_spike"] = (out["ssglm"] - out["glm_psth_predictive"]) / n_spikes / np.log(2)
    out.update(iters=iters, converged=all(converged), drifting=drifting, gain_var=gains)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--all", action="store_true", help="every neuron / stimulus (12 sets)")
    p.add_argument("--sets", type=int, nargs="*", default=None,
                   help="indices of the sets (sorted Dir*/Neuron*/Stim*) to run; default 0")
    p.add_argument("--figures", default=None, help="folder for the figures")
    p.add_argument("--q-type", default="diagonal", choices=("diagonal", "isotropic", "full"))
    p.add_argument("--trial-gain", action="store_true",
                   help="SSGLM with a per-trial gain g_k ~ N(0, V) on every bin's log-rate")
    p.add_argument("--drift-level", type=float, default=0.05,
                   help="level of the per-pulse test of no drift (<= 0: none, plain ML Q)")
    a = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: data folder {DATA} not found")
        return 0
    sets = sorted(DATA.glob("Dir*/Neuron*/Stim*"))
    if not a.all:
        sets = [sets[i] for i in (a.sets or [0])]
    for folder in sets:
        y = load(folder)
        t0 = time.perf_counter()
        out = heldout_comparison(y, q_type=a.q_type, trial_gain=a.trial_gain,
                                 drift_level=a.drift_level if a.drift_level > 0 else None)
        name = "/".join(folder.parts[-3:])
        print(f"{name}: {int(y.sum())} spikes; held-out LL, predictive: SSGLM "
              f"{out['ssglm']:.1f} vs GLM-PSTH {out['glm_psth_predictive']:.1f} "
              f"({out['ssglm'] - out['glm_psth_predictive']:+.1f}); plug-in: SSGLM "
              f"{out['ssglm_plugin']:.1f} vs GLM-PSTH {out['glm_psth']:.1f} "
              f"({out['ssglm_plugin'] - out['glm_psth']:+.1f}); SSGLM predictive - PSTH "
              f"plug-in {out['ssglm'] - out['glm_psth']:+.1f} nats; drifting pulses per fold "
              f"{out['drifting']}, "
              + (f"gain variance per fold {np.round(out['gain_var'], 4).tolist()}, "
                 if a.trial_gain else "")
              + f"EM iterations {out['iters']}, converged "
              f"{out['converged']}, {time.perf_counter() - t0:.0f} s", flush=True)
    if a.figures:
        from spikessm.models.ssglm import ssglm
        from spikessm.plotting.ssglm import plot_rate_comparison, plot_rate_surface

        out_dir = Path(a.figures)
        out_dir.mkdir(parents=True, exist_ok=True)
        res = ssglm(load(sets[0]), BIN, basis_width=0.05, window_times=HISTORY)
        plot_rate_surface(res).savefig(out_dir / "ssglm_whisker_surface.png", dpi=110)
        plot_rate_comparison(res.rate_comparison_matrix(window=(0.0, 3.0))).savefig(
            out_dir / "ssglm_whisker_prob.png", dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
