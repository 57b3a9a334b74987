"""SSGLM across trials: accuracy on the simulated acceptance scenario, speed and memory,
side by side with nSTAT-python's ``PPSS_EMFB`` (the engine of its ``ssglmFB``).

Run:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ssglm.py [--quick]
      [--no-nstat] [--seeds 20]

* accuracy: 50 trials x 1 s at 1 ms; 20 Hz baseline, from trial 20 a response in the
  200-400 ms pulses that grows to exp(2.5) x baseline (time constant 3 trials); unit
  pulses of 50 ms. Per seed: per-trial rate RMSE of the SSGLM, of independent per-trial
  GLM fits and of the GLM-PSTH; coverage of the 95% bands over all bins (and over the
  bins whose rate changes / stays flat; mean and spread over the seeds); learning trial
  (first trial credibly above trial 1 in 250-350 ms, sustained). "pulse" truth is
  piecewise constant on the basis; "smooth" truth is a Gaussian bump (basis
  misspecified, reported for honesty).
* speed: K = 50 trials x 3,000 bins x 30 unit pulses (100 ms), drifting rates; first
  call (compilation included) and second call on new data of the same shapes, each in a
  fresh process; peak RSS during the second call for K = 50, 100, 200 (linear in K).
* nSTAT: ``nstat.decoding_algorithms.DecodingAlgorithms.PPSS_EMFB`` (nstat-toolbox 0.6.0,
  separate venv /work/nstat-venv, GPL: called as a subprocess, never imported here) on
  the same data, initialised like ours (x0 = GLM-PSTH log counts per bin, Q0 = 0.01);
  rates exp(x)/bin_width.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
SCRIPT = os.path.abspath(__file__)
NSTAT_PY = "/work/nstat-venv/bin/python"
DT = 1e-3
ONSET = 19


def drift_truth(K=50, T=1000, smooth=False):
    t = (np.arange(T) + 0.5) * DT
    if smooth:
        g = np.exp(-(t - 0.3) ** 2 / (2 * 0.05 ** 2))
    else:
        g = np.interp(np.floor(t / 0.05) * 0.05 + 0.025, [0.2, 0.3, 0.4], [0, 1, 0])
    k = np.arange(K)
    a = np.where(k >= ONSET, 2.5 * (1 - np.exp(-(k - ONSET + 1) / 3.0)), 0.0)
    return 20.0 * np.exp(a[:, None] * g[None])


def speed_data(K, T=3000, R=30, seed=0):
    """Rates drifting as independent random walks per 100 ms pulse around 20 Hz."""
    rng = np.random.default_rng(seed)
    th = np.log(20.0) + np.cumsum(rng.normal(0, 0.1, size=(K, R)), axis=0)
    lam = np.exp(np.repeat(th, T // R, axis=1))
    return rng.poisson(lam * DT).astype(float), lam


def proc_status(key: str) -> int:
    """Bytes of a /proc/self/status field ("VmRSS": resident now, "VmHWM": peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return -1


def worker(job):
    from _common import emit, warm_backend

    warm_backend()
    from spikessm.models.ssglm import ssglm

    if job["kind"] == "accuracy":
        out = []
        lam = drift_truth(smooth=job["smooth"])
        for seed in job["seeds"]:
            y = np.random.default_rng(seed).poisson(lam * DT).astype(float)
            t0 = time.perf_counter()
            res = ssglm(y, DT, basis_width=0.05, initial=job["initial"])
            sec = time.perf_counter() - t0
            rm = lambda r: float(np.sqrt(np.mean((r - lam) ** 2)))  # noqa: E731
            inside = (res.rates_lower <= lam) & (lam <= res.rates_upper)
            resp = np.ptp(lam, axis=0) > 0  # bins whose rate changes across trials
            out.append({
                "seed": seed, "seconds": sec, "n_iter": res.n_iter, "converged": res.converged,
                "rmse": rm(res.rates), "rmse_trial": rm(res.trial_glm.rates),
                "rmse_psth": rm(res.psth.rates[None]),
                "coverage": float(np.mean(inside)),
                "coverage_resp": float(np.mean(inside[:, resp])),
                "coverage_flat": float(np.mean(inside[:, ~resp])),
                "n_drifting": int(np.sum(np.diag(res.Q) > 1e-7)),
                "learning_trial": res.learning_trial(window=(0.25, 0.35))})
        emit({"rows": out})
        return
    K = job["K"]
    y1, _ = speed_data(K, seed=1)
    y2, lam = speed_data(K, seed=2)
    t0, c0 = time.perf_counter(), time.process_time()
    ssglm(y1, DT, basis_width=0.1)
    cold, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
    base = proc_status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    t0, c0 = time.perf_counter(), time.process_time()
    res = ssglm(y2, DT, basis_width=0.1)
    warm, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
    emit({"K": K, "cold": cold, "warm": warm, "cold_cpu": cold_cpu, "warm_cpu": warm_cpu,
          "loadavg": os.getloadavg()[0], "n_iter": res.n_iter,
          "converged": res.converged, "base_mb": base / 2 ** 20,
          "peak_mb": proc_status("VmHWM") / 2 ** 20,
          "rmse": float(np.sqrt(np.mean((res.rates - lam) ** 2))),
          "rmse_trial": float(np.sqrt(np.mean((res.trial_glm.rates - lam) ** 2)))})


def nstat_worker(inp, outp):
    """Runs under the nSTAT venv: imports nothing from spikessm."""
    import traceback
    import warnings

    d = np.load(inp, allow_pickle=False)
    y, R, delta = d["y"], int(d["R"]), float(d["delta"])
    K, T = y.shape
    w = T // R
    counts = y.reshape(K, R, w).sum(axis=(0, 2))
    x0 = np.log(np.maximum(counts, 0.5) / (K * w))
    res = {"ok": False, "error": ""}
    try:
        from nstat.decoding_algorithms import DecodingAlgorithms as DA

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            out = DA.PPSS_EMFB(np.eye(R), np.full(R, 0.01), x0, y, "poisson", delta,
                               np.array([]), None, R)
            res["seconds"] = time.perf_counter() - t0
        res.update(ok=True, xK=np.asarray(out[0]), Q=np.asarray(out[3]).ravel(),
                   n_iter=int(np.ravel(out[-1])[0]))
    except Exception as exc:  # noqa: BLE001 - recorded for the report
        res["error"] = f"{type(exc).__name__}: {exc}"[:500] + traceback.format_exc()[-800:]
    np.savez(outp, **res)


def run_nstat(y, R):
    if not os.path.exists(NSTAT_PY):
        return {"ok": False, "error": "nSTAT venv not found"}
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inp, y=y, R=R, delta=DT)
        proc = subprocess.run([NSTAT_PY, SCRIPT, "--nstat-worker", inp, outp],
                              capture_output=True, text=True, timeout=3000)
        if not os.path.exists(outp):
            return {"ok": False, "error": proc.stderr[-800:]}
        d = np.load(outp, allow_pickle=False)
        return {k: d[k] for k in d.files}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-nstat", action="store_true")
    p.add_argument("--seeds", type=int, default=20,
                   help="seeds of the pulse truth (coverage varies a lot from seed to seed)")
    p.add_argument("--worker")
    p.add_argument("--nstat-worker", nargs=2)
    a = p.parse_args()
    if a.nstat_worker:
        nstat_worker(*a.nstat_worker)
        return
    if a.worker:
        worker(json.loads(a.worker))
        return
    from _common import environment, run_worker, table

    print(json.dumps(environment()))
    seeds = list(range(2 if a.quick else a.seeds))
    rows, cov = [], []
    for smooth, initial in ((False, "diffuse"), (True, "diffuse"), (False, "em")):
        res = run_worker(SCRIPT, {"kind": "accuracy", "smooth": smooth, "initial": initial,
                                  "seeds": seeds if (not smooth and initial == "diffuse")
                                  else seeds[:2]})
        for r in res["rows"]:
            rows.append(["smooth" if smooth else "pulse", initial, r["seed"],
                         f"{r['seconds']:.1f}",
                         r["n_iter"], f"{r['rmse']:.2f}", f"{r['rmse_trial']:.2f}",
                         f"{r['rmse'] / r['rmse_trial']:.3f}", f"{r['rmse_psth']:.2f}",
                         f"{r['coverage']:.3f}", f"{r['coverage_resp']:.3f}",
                         f"{r['coverage_flat']:.3f}", r["n_drifting"], r["learning_trial"]])
            if not smooth and initial == "diffuse":
                cov.append(r["coverage"])
    print("\nAccuracy (50 x 1000 bins, onset at trial index 19):")
    print(table(["truth", "initial", "seed", "fit s", "iters", "RMSE SSGLM", "RMSE per-trial",
                 "ratio", "RMSE PSTH", "coverage", "cov. changing bins", "cov. flat bins",
                 "drifting pulses", "learning trial"], rows))
    cov = np.asarray(cov)
    print(f"coverage of the 95% bands, pulse truth, {cov.size} seeds: mean {cov.mean():.3f}, "
          f"sd {cov.std(ddof=1) if cov.size > 1 else 0:.3f}, min {cov.min():.3f}, "
          f"max {cov.max():.3f}, seeds in [0.90, 0.99]: {np.mean((cov >= .9) & (cov <= .99)):.2f}")
    srows = []
    for K in ((50,) if a.quick else (50, 100, 200)):
        r = run_worker(SCRIPT, {"kind": "speed", "K": K})
        srows.append([K, f"{r['cold']:.2f} ({r['cold_cpu']:.2f})",
                      f"{r['warm']:.2f} ({r['warm_cpu']:.2f})", f"{r['loadavg']:.1f}",
                      r["n_iter"], r["converged"],
                      f"{r['base_mb']:.0f}", f"{r['peak_mb']:.0f}",
                      f"{r['peak_mb'] - r['base_mb']:.0f}", f"{r['rmse']:.2f}",
                      f"{r['rmse_trial']:.2f}"])
    print("\nSpeed and memory (K x 3000 bins x 30 pulses):")
    print(table(["K", "first call s (CPU s)", "second call s (CPU s)", "load", "iters",
                 "converged", "base MB",
                 "peak MB", "peak - base MB", "RMSE", "RMSE per-trial"], srows))
    if a.no_nstat:
        return
    print("\nnSTAT PPSS_EMFB on the same data:")
    nrows = []
    for name, y, lam, R in [
        ("accuracy seed 0", *(lambda lam: (np.random.default_rng(0).poisson(lam * DT)
                                           .astype(float), lam))(drift_truth()), 20),
        ("speed K=50", *speed_data(50, seed=2), 30),
    ]:
        t0 = time.perf_counter()
        r = run_nstat(y, R)
        wall = time.perf_counter() - t0
        if bool(r.get("ok", False)):
            w = y.shape[1] // R
            rates = np.repeat(np.exp(r["xK"]).T / DT, w, axis=1)
            rm = float(np.sqrt(np.mean((rates - lam) ** 2)))
            nrows.append([name, f"{float(r['seconds']):.1f}", f"{wall:.1f}", int(r["n_iter"]),
                          f"{rm:.2f}", "ok"])
        else:
            nrows.append([name, "-", f"{wall:.1f}", "-", "-", str(r.get("error"))[:200]])
    print(table(["data", "PPSS_EMFB s", "subprocess wall s", "nIter", "RMSE", "status"],
                nrows))


if __name__ == "__main__":
    main()
