"""Behavioural learning curve on real data: a macaque associative-learning session from
the COMPASS toolbox (``../shared/data/compass_learning/LEARNING_1.mat``: ``Yb`` correct
(1/0, NaN = missed), ``Yn`` reaction time in ms (NaN = no response), 61 trials).

Fits the Bernoulli state-space model (Smith et al. 2004) alone and with the reaction
times as a Gaussian observation of the same state (Prerau et al. 2009), reports the
ideal-observer learning trial (P(p_k > 0.5) > 0.95 from that trial on) and saves the
figure. Run from the repository root:

    python examples/learning_curve_compass.py [--figure docs/figures/ssglm_learning_curve.png]

Skips (exit 0) when the data file is absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "compass_learning"
        / "LEARNING_1.mat")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--figure", default=None, help="where to save the learning-curve figure")
    a = p.parse_args(argv)
    if not DATA.exists():
        print(f"skipped: data file {DATA} not found")
        return 0
    from scipy.io import loadmat

    from spikessm.models.ssglm import learning_curve

    d = loadmat(DATA)
    correct, rt = d["Yb"].ravel(), d["Yn"].ravel()
    print(f"{correct.size} trials, {int(np.nansum(correct))} correct, "
          f"{int(np.isnan(correct).sum())} missed")
    for name, res in [("correct/incorrect", learning_curve(correct, chance=0.5)),
                      ("with reaction times", learning_curve(correct, rt, chance=0.5))]:
        lt = res.learning_trial
        print(f"{name}: learning trial {None if lt is None else lt + 1} (1-based), "
              f"sigma2 = {res.sigma2:.3f}, P(correct) first/last trial = {res.p[0]:.2f} / "
              f"{res.p[-1]:.2f}, EM iterations {res.n_iter}, converged {res.converged}")
        if res.rt_params is not None:
            a_, b_, s2 = res.rt_params
            print(f"  log RT = {a_:.3f} + {b_:.3f} x_k + N(0, {s2:.4f})")
    if a.figure:
        from spikessm.plotting.ssglm import plot_behavioural_learning_curve

        fig = plot_behavioural_learning_curve(res, correct, rt)
        Path(a.figure).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(a.figure, dpi=110)
        print(f"saved {a.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
