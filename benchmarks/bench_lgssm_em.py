"""LG-SSM EM: spikessm vs Dynamax 1.0.3 (time per call, compilation, log-likelihood).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lgssm_em.py [--quick]

Sections
  A  notebook size (Dynamax "LG-SSM EM and SGD" notebook): d=2, N=10, T=100, 100 EM
     iterations from the same initial parameters, both libraries.
  B  recompilation: a second fit on *different* data of the same shapes.
  C  neural size: d=8, N=120, T=20,000, full R; 20 EM iterations for spikessm (steady and
     general paths), 5 for Dynamax (about 3-4 s per iteration); per-iteration ratios and
     the log-likelihood traces over the iterations both ran.

Every configuration runs in its own fresh Python process (so a "first call" really is
the first call for those shapes, compile included). The JAX backend is initialised
before timing in every process (common one-off cost, not charged to either library).
Dynamax is run in float64 (``jax_enable_x64``); spikessm always computes in float64.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    CompileCounter,
    emit,
    environment,
    fmt_s,
    median,
    run_worker,
    table,
    warm_backend,
)

SCRIPT = os.path.abspath(__file__)


# ----------------------------------------------------------------------------------------
# problems (deterministic)
# ----------------------------------------------------------------------------------------
def sizes(quick: bool) -> dict:
    if quick:
        return {"nb": dict(d=2, N=10, T=100, iters=20, reps=2),
                "neural": dict(d=4, N=30, T=2000, iters=5, dyn_iters=2, reps=2)}
    return {"nb": dict(d=2, N=10, T=100, iters=100, reps=3),
            "neural": dict(d=8, N=120, T=20_000, iters=20, dyn_iters=5, reps=3)}


def rotation(theta):
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def problem(size: str, quick: bool):
    """(model, init params, y1, y2): y1 and y2 are independent draws of the same shape."""
    from spikessm import LinearGaussianSSM, make_params

    cfg = sizes(quick)[size]
    d, N, T = cfg["d"], cfg["N"], cfg["T"]
    model = LinearGaussianSSM(d, N)
    rng = np.random.default_rng(0)
    if size == "nb":
        # as in the Dynamax notebook: rotating 2-D latent, random loadings, R = 0.1 I
        truth = make_params(A=0.99 * rotation(np.pi / 10), C=rng.standard_normal((N, d)),
                            Q=0.01 * np.eye(d), R=0.1 * np.eye(N))
        _, y1 = model.sample(truth, T, seed=1)
        _, y2 = model.sample(truth, T, seed=2)
        # Dynamax's default initialisation: A = 0.99 I, Q = 0.1 I, C ~ N(0, 1), R = 0.1 I,
        # b = d = m0 = 0, P0 = I
        init = make_params(A=0.99 * np.eye(d), C=np.random.default_rng(3).standard_normal(
            (N, d)), Q=0.1 * np.eye(d), R=0.1 * np.eye(N))
    else:
        # random stable dynamics, correlated (full) emission noise
        truth = model.random_params(seed=0)
        Lr = 0.3 * rng.standard_normal((N, N)) / np.sqrt(N)
        truth = truth.replace(R=0.3 * np.eye(N) + Lr @ Lr.T)
        _, y1 = model.sample(truth, T, seed=1)
        _, y2 = model.sample(truth, T, seed=2)
        init = model.initialize(y1, method="pca")  # same init given to both libraries
    return model, init, y1, y2, cfg


# ----------------------------------------------------------------------------------------
# workers (one fresh process each)
# ----------------------------------------------------------------------------------------
def worker_ours(job):
    import jax

    jax.config.update("jax_enable_x64", True)
    cc = CompileCounter()
    model, init, y1, y2, cfg = problem(job["size"], job["quick"])
    warm_backend()
    n_iter, path = cfg["iters"], job["path"]

    def fit(y, path=path):
        s = cc.snapshot()
        c0, t0 = time.process_time(), time.perf_counter()
        r = model.fit_em(y, params=init, max_iter=n_iter, tol=0, progress=False, path=path)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n, cs = cc.since(s)
        return r, wall, n, cs, cc.top(s), cpu

    r1, wall1, nc1, cs1, top1, cpu1 = fit(y1)
    walls, loops, cpus = [], [], []
    for _ in range(job.get("reps", cfg["reps"])):
        r, w, _, _, _, c = fit(y1)
        walls.append(w)
        loops.append(r.seconds)
        cpus.append(c)
    if job.get("new_data", True):
        r2, wall2, nc2, cs2, _, _ = fit(y2)
    else:
        r2, wall2, nc2, cs2 = r1, None, None, None
    out = dict(first_wall=wall1, first_cpu=cpu1, cpu=median(cpus), cpus=cpus, first_loop=r1.seconds, first_compiles=nc1,
               first_compile_s=cs1, first_top=top1, wall=median(walls), loop=median(loops),
               walls=walls, loops=loops, new_wall=wall2, new_loop=r2.seconds,
               new_compiles=nc2, new_compile_s=cs2, n_iter=r1.n_iter, path=r1.path,
               path_new=r2.path, trace=r1.log_likelihoods.tolist(),
               final_ll=r1.log_likelihood,
               repeat_trace_equal=bool(np.array_equal(r.log_likelihoods,
                                                      r1.log_likelihoods)))
    if path == "steady":  # which path does the default path='auto' pick here?
        ra, wa, nca, _, _, _ = fit(y1, path="auto")
        out.update(auto_path=ra.path, auto_wall=wa, auto_compiles=nca)
    return out


def worker_dynamax(job):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.random as jr
    from dynamax.linear_gaussian_ssm import LinearGaussianSSM as DynLGSSM

    cc = CompileCounter()
    model, init, y1, y2, cfg = problem(job["size"], job["quick"])
    warm_backend()
    n_iter = cfg["dyn_iters"] if job["size"] == "neural" else cfg["iters"]
    d, N = init.state_dim, init.emission_dim
    dyn = DynLGSSM(d, N)  # has_dynamics_bias = has_emissions_bias = True (b, d free)
    params, props = dyn.initialize(
        jr.PRNGKey(0), initial_mean=jnp.asarray(init.m0),
        initial_covariance=jnp.asarray(init.P0), dynamics_weights=jnp.asarray(init.A),
        dynamics_bias=jnp.asarray(init.b), dynamics_covariance=jnp.asarray(init.Q),
        emission_weights=jnp.asarray(init.C), emission_bias=jnp.asarray(init.d),
        emission_covariance=jnp.asarray(init.R))
    Y1, Y2 = jnp.asarray(y1), jnp.asarray(y2)

    plain = lambda p, y: dyn.fit_em(p, props, y, num_iters=n_iter, verbose=False)
    # user-level jit: fit_em builds a fresh jitted closure on every call (so every call
    # re-traces and re-compiles); jitting a wrapper with fixed num_iters caches it.
    jitted = jax.jit(plain)
    out = {"n_iter": n_iter}
    for mode in job["modes"]:
        f = plain if mode == "plain" else jitted

        def fit(y, f=f):
            s = cc.snapshot()
            c0, t0 = time.process_time(), time.perf_counter()
            p, lls = f(params, y)
            jax.block_until_ready((p, lls))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            n, cs = cc.since(s)
            return p, lls, wall, n, cs, cpu

        p1, lls1, wall1, nc1, cs1, cpu1 = fit(Y1)
        reps = [fit(Y1) for _ in range(job["reps"])]
        walls, cpus = [x[2] for x in reps], [x[5] for x in reps]
        res = dict(first_wall=wall1, first_cpu=cpu1, first_compiles=nc1, first_compile_s=cs1,
                   wall=median(walls), walls=walls, cpu=median(cpus), cpus=cpus,
                   trace=np.asarray(lls1).tolist())
        if job.get("new_data", True):
            _, _, wall2, nc2, cs2, _ = fit(Y2)
            res.update(new_wall=wall2, new_compiles=nc2, new_compile_s=cs2)
        # log-likelihood of the returned parameters, evaluated with spikessm's filter
        from spikessm import make_params
        g = lambda a: np.asarray(a, dtype=np.float64)
        fitted = make_params(A=g(p1.dynamics.weights), b=g(p1.dynamics.bias),
                             Q=g(p1.dynamics.cov), C=g(p1.emissions.weights),
                             d=g(p1.emissions.bias), R=g(p1.emissions.cov),
                             m0=g(p1.initial.mean), P0=g(p1.initial.cov))
        res["final_ll"] = model.log_prob(fitted, y1)
        out[mode] = res
    return out


# ----------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------
def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = min(a.size, b.size)
    return float(np.max(np.abs(a[:n] - b[:n]) / np.abs(b[:n])))


def main(quick: bool):
    env = environment()
    S = sizes(quick)
    print(f"# bench_lgssm_em {'(--quick) ' if quick else ''}| {env['cpu']}, "
          f"{env['cores']} cores | python {env['python']}, jax {env['jax']}, dynamax "
          f"{env['dynamax']}, numpy {env['numpy']} | OPENBLAS_NUM_THREADS="
          f"{env['OPENBLAS_NUM_THREADS']} | {env['date']} | loadavg {env['loadavg']}",
          flush=True)
    t_start = time.perf_counter()
    R = {}
    jobs = [("ours_nb_steady", dict(lib="ours", size="nb", path="steady")),
            ("ours_nb_general", dict(lib="ours", size="nb", path="general")),
            ("dyn_nb", dict(lib="dynamax", size="nb", modes=["plain", "jit"],
                            reps=S["nb"]["reps"])),
            ("ours_neural_steady", dict(lib="ours", size="neural", path="steady",
                                        reps=7 if not quick else 2)),
            ("ours_neural_general", dict(lib="ours", size="neural", path="general",
                                         new_data=False)),
            ("dyn_neural", dict(lib="dynamax", size="neural", modes=["jit"], reps=2,
                                new_data=False))]
    for name, job in jobs:
        job["quick"] = quick
        t0 = time.perf_counter()
        R[name] = run_worker(SCRIPT, job)
        print(f"  [{name}: {time.perf_counter() - t0:.1f} s]", flush=True)

    # ---------------- A: notebook size
    nb = S["nb"]
    oS, oG, dn = R["ours_nb_steady"], R["ours_nb_general"], R["dyn_nb"]
    dP, dJ = dn["plain"], dn["jit"]
    it = nb["iters"]
    print(f"\n## A. Notebook size: d={nb['d']}, N={nb['N']}, T={nb['T']}, {it} EM "
          f"iterations, same init\n")
    rows = []
    for label, r, loop in (("spikessm path='steady'", oS, True),
                           ("spikessm path='general'", oG, True),
                           ("Dynamax fit_em", dP, False),
                           ("Dynamax jax.jit(fit_em)", dJ, False)):
        rows.append([label, fmt_s(r["first_wall"]),
                     f"{r['first_compiles']} ({r['first_compile_s']:.1f} s)",
                     fmt_s(r["wall"]), fmt_s(r["cpu"]), fmt_s(r["loop"]) if loop else "-",
                     fmt_s(r["wall"] / it), f"{r['trace'][-1]:.6f}", f"{r['final_ll']:.6f}"])
    print(table(["", "1st call (incl. compile)", "compilations (s)",
                 f"2nd call, median of {nb['reps']}", "2nd call CPU time", "EM loop only",
                 "per iter (2nd call)", f"LL entering iter {it}", "LL of returned params"],
                rows))
    best_dyn = min(dP["wall"], dJ["wall"])
    best_dyn_label = "jit" if dJ["wall"] <= dP["wall"] else "plain"
    print(f"\nRatios Dynamax/spikessm (stricter Dynamax figure = {best_dyn_label}, "
          f"{fmt_s(best_dyn)}):")
    rrows = []
    for label, r in (("steady", oS), ("general", oG)):
        rrows.append([label, f"{min(dP['first_wall'], dJ['first_wall']) / r['first_wall']:.2f}x",
                      f"{best_dyn / r['wall']:.2f}x",
                      f"{min(dP['cpu'], dJ['cpu']) / r['cpu']:.2f}x",
                      f"{dP['wall'] / r['wall']:.1f}x"])
    print(table(["spikessm path", "1st call", "2nd call (vs stricter Dynamax)",
                 "2nd call CPU time (vs stricter)", "2nd call (vs plain Dynamax fit_em)"],
                rrows))
    print(f"\nLL agreement (max relative difference over the {it}-iteration traces): "
          f"steady vs Dynamax {rel(oS['trace'], dJ['trace']):.2e}, general vs Dynamax "
          f"{rel(oG['trace'], dJ['trace']):.2e}, steady vs general "
          f"{rel(oS['trace'], oG['trace']):.2e}; LL of returned params: "
          f"{abs(oS['final_ll'] - dJ['final_ll']) / abs(dJ['final_ll']):.2e} (steady), "
          f"{abs(oG['final_ll'] - dJ['final_ll']) / abs(dJ['final_ll']):.2e} (general)")
    print(f"Paths reported by EMResult: steady run -> {oS['path']!r}, general run -> "
          f"{oG['path']!r}; default path='auto' picks {oS['auto_path']!r} here "
          f"({fmt_s(oS['auto_wall'])}, {oS['auto_compiles']} new compilations).")
    print("spikessm EM loop = EMResult.seconds (the iterations plus the final E-step that "
          "gives the log-likelihood of the returned parameters).")

    # ---------------- B: recompilation
    print("\n## B. Recompilation: second fit on different data of the same shapes\n")
    rows = []
    for label, r in (("spikessm path='steady'", oS), ("spikessm path='general'", oG),
                     ("Dynamax fit_em", dP), ("Dynamax jax.jit(fit_em)", dJ)):
        rows.append([label, fmt_s(r["first_wall"]), f"{r['first_compiles']}",
                     fmt_s(r["wall"]), fmt_s(r["new_wall"]),
                     f"{r['new_compiles']} ({r['new_compile_s']:.2f} s)",
                     "yes" if r["new_compiles"] > 0 else "no"])
    print(table(["", "1st call", "compilations in 1st call", "2nd call, same data",
                 "call on new data", "compilations on new data (s)", "recompiles?"], rows))

    # ---------------- C: neural size
    ne = S["neural"]
    nS, nG, dj = R["ours_neural_steady"], R["ours_neural_general"], R["dyn_neural"]["jit"]
    k = R["dyn_neural"]["n_iter"]
    print(f"\n## C. Neural size: d={ne['d']}, N={ne['N']}, T={ne['T']}, full R; spikessm "
          f"{ne['iters']} iterations, Dynamax {k} iterations, same init\n")
    per_s = nS["loop"] / nS["n_iter"]
    per_g = nG["loop"] / nG["n_iter"]
    per_d = dj["wall"] / k
    cpu_s, cpu_g, cpu_d = nS["cpu"] / nS["n_iter"], nG["cpu"] / nG["n_iter"], dj["cpu"] / k
    best_s, best_g = min(nS["loops"]) / nS["n_iter"], min(nG["loops"]) / nG["n_iter"]
    best_d = min(dj["walls"]) / k
    verdict = lambda ok: "n/a (--quick)" if quick else ("met" if ok else "MISSED")
    rows = [["spikessm path='steady'", fmt_s(nS["first_wall"]),
             f"{nS['first_compiles']} ({nS['first_compile_s']:.1f} s)", fmt_s(per_s),
             fmt_s(cpu_s), fmt_s(nS["wall"]), f"{per_d / per_s:.0f}x",
             f"{cpu_d / cpu_s:.0f}x", ">= 100x", verdict(per_d / per_s >= 100)],
            ["spikessm path='general'", fmt_s(nG["first_wall"]),
             f"{nG['first_compiles']} ({nG['first_compile_s']:.1f} s)", fmt_s(per_g),
             fmt_s(cpu_g), fmt_s(nG["wall"]), f"{per_d / per_g:.1f}x",
             f"{cpu_d / cpu_g:.1f}x", ">= 10x", verdict(per_d / per_g >= 10)],
            ["Dynamax jax.jit(fit_em)", fmt_s(dj["first_wall"]),
             f"{dj['first_compiles']} ({dj['first_compile_s']:.1f} s)", fmt_s(per_d),
             fmt_s(cpu_d), fmt_s(dj["wall"]), "1x", "1x", "", ""]]
    print(table(["", "1st call (incl. compile)", "compilations (s)",
                 "per iteration (warm, wall)", "per iteration (CPU time)", "warm call wall",
                 "Dynamax/ours per iter (wall)", "(CPU time)", "target", "verdict (wall)"],
                rows))
    print(f"\nBest-of-runs (minimum) per iteration: steady {fmt_s(best_s)}, general "
          f"{fmt_s(best_g)}, Dynamax {fmt_s(best_d)} -> ratios {best_d / best_s:.0f}x "
          f"(steady), {best_d / best_g:.1f}x (general).")
    print(f"spikessm per-iteration = EMResult.seconds / n_iter (conservative: seconds also "
          f"covers the final E-step for the returned log-likelihood), median of "
          f"{len(nS['loops'])} (steady) / {len(nG['loops'])} (general) warm calls ({', '.join(fmt_s(x / nS['n_iter']) for x in nS['loops'])} steady; "
          f"{', '.join(fmt_s(x / nG['n_iter']) for x in nG['loops'])} general). Dynamax "
          f"per-iteration = median warm jitted call / {k} "
          f"({', '.join(fmt_s(x / k) for x in dj['walls'])}). CPU time = process CPU time "
          f"of the whole call (all threads) / iterations.")
    print(f"First call (steady, compile included): {fmt_s(nS['first_wall'])} "
          f"(target < 5 s: {verdict(nS['first_wall'] < 5)}); slowest compilations: "
          + ", ".join(f"{n} {t:.2f} s" for n, t in nS["first_top"]) + ".")
    print(f"Default path='auto' picks {nS['auto_path']!r} here.")
    print(f"LL traces over the {k} iterations both ran: max relative difference steady vs "
          f"Dynamax {rel(nS['trace'][:k], dj['trace']):.2e}, general vs Dynamax "
          f"{rel(nG['trace'][:k], dj['trace']):.2e}; steady vs general over "
          f"{nS['n_iter']} iterations {rel(nS['trace'], nG['trace']):.2e}.")
    print("Dynamax LL trace: " + ", ".join(f"{v:.6f}" for v in dj["trace"]))
    print("spikessm steady : " + ", ".join(f"{v:.6f}" for v in nS["trace"][:k]))
    print(f"Paths reported: steady run -> {nS['path']!r}, general run -> {nG['path']!r}")
    print(f"\n[total {time.perf_counter() - t_start:.0f} s]")
    return R


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write all raw results to this JSON file")
    a = ap.parse_args()
    if a.worker:
        job = json.loads(a.worker)
        emit((worker_ours if job["lib"] == "ours" else worker_dynamax)(job))
    else:
        res = main(a.quick)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=1)
