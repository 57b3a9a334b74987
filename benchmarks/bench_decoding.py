"""Point-process decoding filters (issue 5): PPAF, CMGF, PPHF, every peer on the same data in
the same run.

Parts (``--part``, default all):
  place    decode the whole place-cell recording (49 cells x 43,799 bins): PPAF with
           Zernike place fields (autodiff path) and with a log-linear model of position
           (fast path), seconds after compilation (median of 5).
  dynamax  log-linear Poisson filter and smoother at T = 5,000, N = 50, d = 3 against
           Dynamax's CMGF (EKF integrals, float64), called as users call it and wrapped in
           jax.jit; agreement of the estimates.
  nstat    nSTAT-python's DecodingAlgorithms.PPDecodeFilterLinear (separate venv, run as a
           subprocess peer by this same script with ``--nstat-peer IN OUT``) on the
           place-cell log-linear model and on the simulated d = 3 data: seconds and the
           largest difference of the filtered means / covariances.
  pphf     hybrid filter on simulated rest / movement data (T = 5,000, N = 20; the
           simulation of tests/test_pphf.py): mode accuracy and seconds.

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/bench_decoding.py [--part place ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

NSTAT_PY = Path(os.environ.get("NSTAT_PYTHON", "/work/nstat-venv/bin/python"))
HERE = Path(__file__).resolve().parent


def timed(fn, n=5):
    """(median seconds over n calls after one warm-up call, last result)."""
    out = fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def sim_loglinear(T=5000, N=50, d=3, seed=0):
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    A = 0.98 * Rotation.from_rotvec([0.1, 0.05, 0.08]).as_matrix()[:d, :d]
    Q = 0.01 * np.eye(d)
    C = rng.normal(0, 0.4, (N, d))
    x = np.zeros((T, d))
    for t in range(1, T):
        x[t] = A @ x[t - 1] + rng.normal(0, 0.1, d)
    y = rng.poisson(np.exp(x @ C.T - 0.5)).astype(float)
    return y, A, C, Q, np.zeros(d), 0.1 * np.eye(d), np.full(N, -0.5)


def place_data():
    sys.path.insert(0, str(HERE.parent / "examples"))
    from decode_place_cells import DATA, load

    if not DATA.exists():
        return None
    return load()


# --------------------------------------------------------------------------------------
def part_place():
    from spikessm.models.decoding import ppaf_filter
    from spikessm.models.glm import Zernike
    from spikessm.models.glm.fit import fit_glm, log_intensity

    data = place_data()
    if data is None:
        return {"skipped": "place-cell data not found"}
    counts, pos, dt, _ = data
    T, N = counts.shape
    half = T // 2
    basis = Zernike(3)
    f = log_intensity(fit_glm(counts[:half], basis(pos[:half]), bin_width=dt), basis)
    lin = fit_glm(counts[:half], pos[:half], bin_width=dt)
    C, b = lin.covariate_coef, lin.intercept + np.log(dt)
    A, Q = np.eye(2), 4 * np.cov(np.diff(pos[:half], axis=0).T)
    m0, P0 = pos[:half].mean(0), np.cov(pos[:half].T)
    t_z, rz = timed(lambda: ppaf_filter(counts, A, Q, m0, P0, log_intensity=f))
    t_l, rl = timed(lambda: ppaf_filter(counts, A, Q, m0, P0, C=C, baseline=b))
    err = lambda r: float(np.median(35 * np.hypot(*(r.filtered_means - pos).T)))  # noqa: E731
    return {"T": T, "N": N, "seconds_zernike_autodiff": t_z, "seconds_loglinear": t_l,
            "median_err_cm_zernike_all_bins": err(rz),
            "median_err_cm_loglinear_all_bins": err(rl)}


def part_dynamax():
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # float64 for the peer
    from dynamax.generalized_gaussian_ssm.inference import (
        EKFIntegrals,
        conditional_moments_gaussian_filter,
        conditional_moments_gaussian_smoother,
    )

    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_cmgf import dynamax_cmgf_params

    from spikessm.models.decoding import cmgf_poisson_filter, cmgf_poisson_smoother

    y, A, C, Q, x0, P0, _ = sim_loglinear()
    params = dynamax_cmgf_params(A, C, Q, x0, P0)
    yj = jnp.asarray(y)
    ekf = EKFIntegrals()

    def block(fn):
        return lambda: jax.block_until_ready(fn())

    dyn_f = block(lambda: conditional_moments_gaussian_filter(params, ekf, yj))
    dyn_s = block(lambda: conditional_moments_gaussian_smoother(params, ekf, yj))
    jf = jax.jit(lambda e: conditional_moments_gaussian_filter(params, ekf, e))
    js = jax.jit(lambda e: conditional_moments_gaussian_smoother(params, ekf, e))
    out = {}
    out["dynamax_filter_s"], rf = timed(dyn_f)
    out["dynamax_smoother_s"], rs = timed(dyn_s)
    out["dynamax_filter_jit_s"], _ = timed(block(lambda: jf(yj)))
    out["dynamax_smoother_jit_s"], _ = timed(block(lambda: js(yj)))
    out["ours_filter_s"], of = timed(lambda: cmgf_poisson_filter(y, A, C, Q, x0, P0))
    out["ours_smoother_s"], os_ = timed(lambda: cmgf_poisson_smoother(y, A, C, Q, x0, P0))
    out["max_abs_diff_filter_means"] = float(np.max(np.abs(of.state_means - rf.filtered_means)))
    out["max_abs_diff_smoother_means"] = float(
        np.max(np.abs(os_.state_means - rs.smoothed_means)))
    jax.config.update("jax_enable_x64", False)
    dyn_best_f = min(out["dynamax_filter_s"], out["dynamax_filter_jit_s"])
    dyn_best_s = min(out["dynamax_smoother_s"], out["dynamax_smoother_jit_s"])
    out["ratio_filter"] = dyn_best_f / out["ours_filter_s"]
    out["ratio_smoother"] = dyn_best_s / out["ours_smoother_s"]
    return out


def _nstat_case(name, y, A, C, Q, b):
    """Ours and nSTAT's PPDecodeFilterLinear on the same data. nSTAT's x0, Pi0 are the state
    *before* the first bin; ours is the first bin's prior: m0 = A x0, P0 = A Pi0 A' + Q."""
    from spikessm.models.decoding import ppaf_filter

    d = A.shape[0]
    x0, Pi0 = np.zeros(d), np.eye(d)
    m0, P0 = A @ x0, A @ Pi0 @ A.T + Q
    t_ours, r = timed(lambda: ppaf_filter(y, A, Q, m0, P0, C=C, baseline=b))
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inp, dN=y.T, A=A, Q=Q, mu=b, beta=C.T, x0=x0, Pi0=Pi0)
        subprocess.run([str(NSTAT_PY), __file__, "--nstat-peer", str(inp), str(outp)],
                       check=True, timeout=900)
        with np.load(outp) as z:
            x_u, W_u, secs = z["x_u"], z["W_u"], float(z["seconds"])
    return {"case": name, "T": y.shape[0], "N": y.shape[1], "d": d, "ours_s": t_ours,
            "nstat_s": secs, "ratio": secs / t_ours,
            "max_abs_diff_means": float(np.max(np.abs(r.filtered_means - x_u.T))),
            "max_abs_diff_covs": float(np.max(np.abs(r.filtered_covs
                                                     - np.moveaxis(W_u, -1, 0))))}


def part_nstat():
    if not NSTAT_PY.exists():
        return {"skipped": f"nSTAT venv not found at {NSTAT_PY}"}
    from spikessm.models.glm.fit import fit_glm

    rows = []
    data = place_data()
    if data is not None:
        counts, pos, dt, _ = data
        half = counts.shape[0] // 2
        lin = fit_glm(counts[:half], pos[:half], bin_width=dt)
        Q = 4 * np.cov(np.diff(pos[:half], axis=0).T)
        rows.append(_nstat_case("place cells, log-linear in position", counts, np.eye(2),
                                lin.covariate_coef, Q, lin.intercept + np.log(dt)))
    y, A, C, Q, _, _, b = sim_loglinear()
    rows.append(_nstat_case("simulated d=3", y, A, C, Q, b))
    return {"rows": rows}


def nstat_peer(inp, outp):
    """Runs under the nSTAT venv: PPDecodeFilterLinear on IN.npz, writes x_u, W_u, seconds
    (median of 3 calls)."""
    from nstat.decoding_algorithms import DecodingAlgorithms as DA

    with np.load(inp) as z:
        a = {k: z[k] for k in z.files}
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = DA.PPDecodeFilterLinear(a["A"], a["Q"], a["dN"], a["mu"], a["beta"], "poisson",
                                      1.0, None, None, a["x0"], a["Pi0"])
        ts.append(time.perf_counter() - t0)
    np.savez(outp, x_u=res[2], W_u=res[3], seconds=float(np.median(ts)))


def part_pphf():
    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_pphf import D, two_mode_data

    from spikessm.models.decoding import hybrid_filter

    S = two_mode_data(seed=0, T=5000)
    secs, r = timed(lambda: hybrid_filter(S["y"], S["Pt"], S["A"], S["Q"], np.zeros(D),
                                          0.1 * np.eye(D), C=S["C"], baseline=S["base"]), n=3)
    return {"T": 5000, "N": S["y"].shape[1], "accuracy": float(np.mean(r.modes == S["s"])),
            "seconds": secs, "fraction_movement": float(S["s"].mean())}


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--nstat-peer":
        nstat_peer(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", nargs="*", default=["place", "dynamax", "nstat", "pphf"])
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from _common import environment

    print("ENV " + json.dumps(environment()), flush=True)
    for part in args.part:
        res = {"place": part_place, "dynamax": part_dynamax, "nstat": part_nstat,
               "pphf": part_pphf}[part]()
        print(f"RESULT {part} " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
