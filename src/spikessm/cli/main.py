"""``spikessm`` command line.

    spikessm demo [--state-dim D] [--channels N] [--steps T] [--iters K] [--seed S]

``demo`` simulates a linear-Gaussian latent dynamical system with the library's own
generative model (no download), fits it by EM, and prints a short summary: the
log-likelihood trace, held-out log-likelihood against the true model, and how well the
dynamics and loadings were recovered (gauge-invariant measures).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .. import __version__
from ..evaluation import eigenvalue_match, max_subspace_angle
from ..models.lgssm import LinearGaussianSSM, make_params


def _demo(args) -> int:
    rng = np.random.default_rng(args.seed)
    d, N, T = args.state_dim, args.channels, args.steps
    # slowly rotating, decaying latent dynamics, as in a reach-planning population
    angles = np.linspace(0.05, 0.3, (d + 1) // 2)
    A = np.zeros((d, d))
    for i, th in enumerate(angles):
        j = 2 * i
        blk = 0.97 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        k = min(2, d - j)
        A[j:j + k, j:j + k] = blk[:k, :k]
    truth = make_params(A=A, C=rng.standard_normal((N, d)) / np.sqrt(d), Q=0.05 * np.eye(d),
                        R=np.diag(rng.uniform(0.2, 0.6, N)), d=rng.uniform(-1, 1, N))
    model = LinearGaussianSSM(d, N)
    _, y = model.sample(truth, T, seed=args.seed + 1)
    _, y_test = model.sample(truth, T, seed=args.seed + 2)
    print(f"spikessm {__version__} demo: linear-Gaussian SSM, d={d} latents, N={N} "
          f"channels, T={T} steps (simulated, seed {args.seed})")
    t0 = time.perf_counter()
    fit = model.fit_em(y, max_iter=args.iters, tol=1e-7, progress=not args.quiet)
    secs = time.perf_counter() - t0
    ll = fit.log_likelihoods
    print(f"EM: {fit.n_iter} iterations on the {fit.path} path in {secs:.2f} s "
          f"({'converged' if fit.converged else 'max_iter reached'})")
    print(f"  log-likelihood: first {ll[0]:.2f}  last {ll[-1]:.2f}  final {fit.log_likelihood:.2f}"
          f"  monotone: {bool(np.all(np.diff(ll) >= -1e-8 * np.abs(ll[:-1])))}")
    ll_fit = model.log_prob(fit.params, y_test)
    ll_true = model.log_prob(truth, y_test)
    rel = (ll_true - ll_fit) / abs(ll_true)
    print(f"held-out log-likelihood per step: fitted {ll_fit / T:.4f}  true {ll_true / T:.4f}"
          f"  (gap {100 * rel:.3f}% of the true model's)")
    print(f"dynamics: max eigenvalue error {eigenvalue_match(fit.params.A, truth.A):.4f}")
    print(f"loadings: max subspace angle {max_subspace_angle(fit.params.C, truth.C):.2f} deg")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spikessm", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"spikessm {__version__}")
    sub = p.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="simulate, fit and summarise (no download)")
    demo.add_argument("--state-dim", type=int, default=4)
    demo.add_argument("--channels", type=int, default=40)
    demo.add_argument("--steps", type=int, default=5000)
    demo.add_argument("--iters", type=int, default=200)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "demo":
            for name in ("state_dim", "channels", "steps", "iters"):
                if getattr(args, name) < (2 if name == "steps" else 1):
                    raise ValueError(f"--{name.replace('_', '-')} is too small")
            return _demo(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"spikessm: error: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
