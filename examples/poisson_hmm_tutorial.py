"""Poisson HMM tutorial, end to end: simulate the tutorial's 3-state, 5-neuron model
(300 trials x 1,000 bins of 2 ms), fit by EM, align the states, and draw every figure.

Run:  python examples/poisson_hmm_tutorial.py [OUTPUT_DIR]   (default: a temporary dir)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

from spikessm.models.poisson_hmm import (  # noqa: E402
    PoissonHMM,
    align_states,
    make_params,
    transition_matrix_from_rates,
)
from spikessm.plotting import (  # noqa: E402
    plot_learning_curve,
    plot_ll_ecll_epochs,
    plot_ll_ecll_line,
    plot_raster_states,
    plot_rates_comparison,
)


def main(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    K, dt = 3, 0.002  # 3 states, 5 neurons, 2 ms bins
    rates = np.array([[.02, .8, .37], [1., .7, .1], [.92, .07, .5], [.25, .42, .75],
                      [.15, .2, .85]]).T * 50.0  # (K, C) Hz
    rng = np.random.default_rng(0)
    switch = rng.uniform(0.0, 3.0, (K, K))  # off-diagonal transition rates, Hz
    np.fill_diagonal(switch, 0.0)
    truth = make_params(np.array([1.0, 2.0, 3.0]) / 6, transition_matrix_from_rates(switch, dt),
                        rates)
    model = PoissonHMM(K, dt)
    z, y = model.sample(truth, n_trials=300, n_bins=1000, seed=1)

    init = model.random_params(seed=0, data=y)
    fit = model.fit(y, params=init, max_iter=200, tol=1e-8)
    p = fit.params.permute(align_states(fit.params.rates, truth.rates))
    off = ~np.eye(K, dtype=bool)
    rate_err = np.max(np.abs(p.rates / rates - 1))
    trans_err = np.max(np.abs(p.transition_rates(dt)[off] / switch[off] - 1))
    print(f"EM: {fit.n_iter} iterations, converged={fit.converged}, "
          f"LL={fit.log_likelihood:.3f}, {fit.seconds:.2f} s")
    print(f"max relative error: rates {rate_err:.3f}, transition rates {trans_err:.3f}")

    path = model.viterbi(y[0], p)
    figs = {
        "hmm_raster.png": plot_raster_states(y[0], path, dt, n_states=K),
        "hmm_learning_curve.png": plot_learning_curve(fit),
        "hmm_ll_ecll_epochs.png": plot_ll_ecll_epochs(fit),
        "hmm_ll_ecll_line.png": plot_ll_ecll_line(model.ll_ecll_line(y, init)),
        "hmm_rates.png": plot_rates_comparison(p, truth, dt),
    }
    for name, fig in figs.items():
        fig.savefig(out / name, dpi=80)
    print(f"figures written to {out}")
    return dict(rate_err=rate_err, trans_err=trans_err, fit=fit)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="hmm_")))
