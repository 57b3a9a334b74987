"""Peer runner: nSTAT-python's Poisson LDS EM (``fit_point_process_em``) on one data set.

This script is meant to run under a *separate* virtual environment that has the peer
installed (see benchmarks/NSTAT_PEER.md), as a subprocess of a spikessm benchmark:

    /work/nstat-venv/bin/python benchmarks/nstat_peer.py IN.npz OUT.npz \
        --n-iter 30 --seed 0 [--state-dim 3] [--init random] [--ridge-lambda 0.0] \
        [--n-newton-iter 5] [--no-second-call] [--no-x64]

It imports nothing from spikessm and contains no nSTAT code: it only calls nSTAT's public
functions (``nstat.extras.em.dynamax_bridge``) and writes what they return.

Input (IN.npz, loaded with allow_pickle=False):
    y        (T, N) spike counts (any real dtype; non-negative, finite)
    y_test   optional (T2, N) held-out counts, scored with nSTAT's own
             ``point_process_predictive_ll`` using the fitted parameters

Output (OUT.npz, written atomically: temp file in the same folder, then os.replace):
    ok                  bool   fit returned without an exception and all parameters are finite
    raised              bool   the fit raised an exception
    error               str    "" or "ExceptionType: message" (or "NonFinite: ...")
    error_where         str    nstat frames of the traceback ("file:function:line > ...")
    seconds_total       float  wall time of the first fit call (includes JAX tracing/compile)
    seconds_per_iter    float  seconds_total / n_iter
    seconds_total_2     float  wall time of an identical second call in the same process
                               (NaN if skipped or the first call failed)
    seconds_per_iter_2  float  seconds_total_2 / n_iter
    seconds_bootstrap   float  time inside nSTAT's JAX (Dynamax CMGF) bootstrap smoother,
    seconds_bootstrap_2        first / second call (NaN if it could not be measured)
    n_estep_calls       int    E-step calls in the first fit (n_iter + 1 when it completes;
                               on a crash, the EM iteration it reached, 1-based, or
                               n_iter + 1 if it crashed in the final gauge pinning)
    second_call_identical bool the second call returned bit-identical parameters
    A (d,d), Q (d,d), C (N,d), baseline (N,) (zeros: nSTAT's model has no baseline),
    m0 (d,), P0 (d,d)    fitted parameters of the first call (NaN-filled if it failed)
    ll_trace  (n_iter,)  nSTAT's ``marginal_log_likelihoods`` (surrogate Gaussian
                         smoother log-likelihood of the IRLS pseudo-observations,
                         recorded at each E-step, i.e. *before* that iteration's M-step)
    predictive_ll_total  float  nSTAT ``point_process_predictive_ll(y_test, ...).total``
                                (NaN if no y_test or it failed)
    predictive_ll_error  str
    seconds_predictive_ll float
    has_baseline (False), bin_width (NaN: nSTAT takes none), x64 (bool: JAX float64 on),
    n_iter, seed, state_dim, init, ridge_lambda, n_newton_iter, T, N, warnings (str),
    versions (str: "nstat-toolbox=..;jax=..;jaxlib=..;dynamax=..;numpy=..")

nSTAT's observation model is y_{t,i} ~ Poisson(exp(c_i' x_t)): no per-neuron baseline and
no bin width, so a caller comparing against a model with a baseline d_i (and/or a bin
width) must interpret nSTAT's fit accordingly (a constant offset can only be absorbed by a
slow latent direction).  The parameters are nSTAT's canonical gauge; compare
gauge-invariant quantities (eigenvalues of A, C x, predictive likelihoods).

Exit status: 0 whenever OUT.npz was written (inspect ``ok``), non-zero otherwise.
A "RESULT {json}" line with the scalar fields is also printed to stdout.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402


def _parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inp", help="input .npz with y (T, N) [and optional y_test (T2, N)]")
    p.add_argument("out", help="output .npz (written atomically)")
    p.add_argument("--n-iter", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--state-dim", type=int, default=3)
    p.add_argument("--init", default="random", help="'random' or 'log_empirical_rate'")
    p.add_argument("--ridge-lambda", type=float, default=0.0)
    p.add_argument("--n-newton-iter", type=int, default=5)
    p.add_argument("--no-second-call", action="store_true",
                   help="skip the second (warm) fit call")
    p.add_argument("--no-x64", action="store_true",
                   help="leave JAX in its default float32 mode")
    return p.parse_args(argv)


def _versions() -> str:
    from importlib import metadata
    out = []
    for name in ("nstat-toolbox", "jax", "jaxlib", "dynamax", "numpy"):
        try:
            out.append(f"{name}={metadata.version(name)}")
        except Exception:  # noqa: BLE001 - a missing package is just reported
            out.append(f"{name}=?")
    return ";".join(out)


def _fmt_exc(exc: BaseException) -> str:
    msg = str(exc).strip().replace("\n", " ")
    if len(msg) > 2000:
        msg = msg[:2000] + "..."
    return f"{type(exc).__name__}: {msg}"


class _Probe:
    """Wraps two module-level helpers of the bridge to count/time them (no behaviour
    change): the per-iteration E-step and the JAX CMGF smoother used to bootstrap it."""

    def __init__(self, mod):
        self.mod = mod
        self.n_estep = 0
        self.t_boot = 0.0
        self.ok = False
        self._orig = {}

    def __enter__(self):
        self.n_estep, self.t_boot = 0, 0.0
        names = ("_ppem_e_step_lgssm", "cmgf_poisson_smoother")
        if all(callable(getattr(self.mod, n, None)) for n in names):
            e_orig = self.mod._ppem_e_step_lgssm
            s_orig = self.mod.cmgf_poisson_smoother
            self._orig = {"_ppem_e_step_lgssm": e_orig, "cmgf_poisson_smoother": s_orig}

            def estep(*a, **k):
                self.n_estep += 1
                return e_orig(*a, **k)

            def smoother(*a, **k):
                t0 = time.perf_counter()
                try:
                    return s_orig(*a, **k)
                finally:
                    self.t_boot += time.perf_counter() - t0

            self.mod._ppem_e_step_lgssm = estep
            self.mod.cmgf_poisson_smoother = smoother
            self.ok = True
        return self

    def __exit__(self, *exc):
        for n, f in self._orig.items():
            setattr(self.mod, n, f)
        self._orig = {}
        return False


def _write_atomic(path: str, arrays: dict) -> None:
    folder = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".nstat_peer_", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)             # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fit(bridge, y, args, probe_mod):
    """One fit call: (result or None, error, raised, seconds, probe, warnings, where)."""
    caught = []
    where = ""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        with _Probe(probe_mod) as probe:
            t0 = time.perf_counter()
            try:
                res = bridge.fit_point_process_em(
                    y, args.state_dim, n_iter=args.n_iter, n_newton_iter=args.n_newton_iter,
                    seed=args.seed, init=args.init, ridge_lambda=args.ridge_lambda)
                err, raised = "", False
            except Exception as exc:  # noqa: BLE001 - the crash itself is the measurement
                res, err, raised = None, _fmt_exc(exc), True
                where = _where(exc)
            secs = time.perf_counter() - t0
        for item in w:
            caught.append(f"{item.category.__name__}: {str(item.message)[:200]}")
    return res, err, raised, secs, probe, caught, where


def _where(exc: BaseException) -> str:
    """'file:function:line' chain of the frames inside nstat, innermost last."""
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if f"{os.sep}nstat{os.sep}" in f.filename]
    return " > ".join(f"{os.path.basename(f.filename)}:{f.name}:{f.lineno}" for f in inside)


def main(argv=None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    nan = float("nan")
    d = int(args.state_dim)
    out = {
        "ok": False, "raised": False, "error": "", "error_where": "",
        "seconds_total": nan, "seconds_per_iter": nan,
        "seconds_total_2": nan, "seconds_per_iter_2": nan,
        "seconds_bootstrap": nan, "seconds_bootstrap_2": nan,
        "n_estep_calls": -1, "second_call_identical": False,
        "predictive_ll_total": nan, "predictive_ll_error": "", "seconds_predictive_ll": nan,
        "has_baseline": False, "bin_width": nan, "x64": False,
        "n_iter": int(args.n_iter), "seed": int(args.seed), "state_dim": d,
        "init": str(args.init), "ridge_lambda": float(args.ridge_lambda),
        "n_newton_iter": int(args.n_newton_iter), "T": -1, "N": -1,
        "seconds_import": nan, "warnings": "", "versions": "",
    }
    params = {}

    def finish() -> int:
        arrays = {k: np.asarray(v) for k, v in out.items()}
        arrays.update(params)
        _write_atomic(args.out, arrays)
        scal = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in out.items()
                if k not in ("warnings",)}
        print("RESULT " + json.dumps(scal, default=str), flush=True)
        return 0

    # ---- input -----------------------------------------------------------------------
    try:
        with np.load(args.inp, allow_pickle=False) as z:
            y = np.asarray(z["y"], dtype=np.float64)
            y_test = np.asarray(z["y_test"], dtype=np.float64) if "y_test" in z.files else None
        if y.ndim != 2:
            raise ValueError(f"y must be (T, N); got shape {y.shape}")
        if not np.all(np.isfinite(y)) or np.any(y < 0):
            raise ValueError("y must be finite and non-negative")
        if y_test is not None and (y_test.ndim != 2 or y_test.shape[1] != y.shape[1]):
            raise ValueError(f"y_test must be (T2, {y.shape[1]}); got {y_test.shape}")
    except Exception as exc:  # noqa: BLE001
        out["error"] = "input: " + _fmt_exc(exc)
        return finish()
    T, N = y.shape
    out["T"], out["N"] = int(T), int(N)
    params.update(A=np.full((d, d), nan), Q=np.full((d, d), nan), C=np.full((N, d), nan),
                  baseline=np.zeros(N), m0=np.full(d, nan), P0=np.full((d, d), nan),
                  ll_trace=np.zeros(0))

    # ---- import (JAX first, so float64 is on before anything traces) -------------------
    t0 = time.perf_counter()
    try:
        import jax
        if not args.no_x64:
            jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        jnp.zeros(1).block_until_ready()          # backend start-up: not charged to the fit
        out["x64"] = bool(jnp.zeros(1).dtype == jnp.float64)
        from nstat.extras.em import dynamax_bridge as bridge
    except Exception as exc:  # noqa: BLE001
        out["error"] = "import: " + _fmt_exc(exc)
        out["versions"] = _versions()
        return finish()
    out["seconds_import"] = time.perf_counter() - t0
    out["versions"] = _versions()

    # ---- first call --------------------------------------------------------------------
    res, err, raised, secs, probe, caught, where = _fit(bridge, y, args, bridge)
    out["raised"], out["error"], out["error_where"] = raised, err, where
    out["seconds_total"] = secs
    out["seconds_per_iter"] = secs / max(int(args.n_iter), 1)
    if probe.ok:
        out["seconds_bootstrap"] = probe.t_boot
        out["n_estep_calls"] = int(probe.n_estep)
    all_warn = list(caught)
    if res is not None:
        params.update(
            A=np.asarray(res.transition_matrix, dtype=np.float64).reshape(d, d),
            Q=np.asarray(res.transition_covariance, dtype=np.float64).reshape(d, d),
            C=np.asarray(res.observation_matrix, dtype=np.float64).reshape(N, d),
            m0=np.asarray(res.initial_state_mean, dtype=np.float64).reshape(d),
            P0=np.asarray(res.initial_state_covariance, dtype=np.float64).reshape(d, d),
            ll_trace=np.asarray(res.marginal_log_likelihoods, dtype=np.float64).ravel(),
        )
        bad = [k for k in ("A", "Q", "C", "m0", "P0") if not np.all(np.isfinite(params[k]))]
        if bad:
            out["error"] = "NonFinite: fitted " + ",".join(bad) + " contain NaN/inf"
        else:
            out["ok"] = True

    # ---- second (warm) call ------------------------------------------------------------
    if res is not None and not args.no_second_call:
        res2, err2, _raised2, secs2, probe2, caught2, _w2 = _fit(bridge, y, args, bridge)
        all_warn += caught2
        out["seconds_total_2"] = secs2
        out["seconds_per_iter_2"] = secs2 / max(int(args.n_iter), 1)
        if probe2.ok:
            out["seconds_bootstrap_2"] = probe2.t_boot
        if res2 is not None:
            same = all(
                np.array_equal(np.asarray(getattr(res, f)), np.asarray(getattr(res2, f)),
                               equal_nan=True)
                for f in ("transition_matrix", "observation_matrix", "transition_covariance",
                          "initial_state_mean", "initial_state_covariance"))
            out["second_call_identical"] = bool(same)
        elif err2:
            all_warn.append("second call: " + err2)

    # ---- nSTAT's own held-out predictive log-likelihood ---------------------------------
    if y_test is not None and res is not None and out["ok"]:
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score = bridge.point_process_predictive_ll(
                    y_test, params["A"], params["C"], params["Q"], params["m0"], params["P0"])
            out["predictive_ll_total"] = float(score.total)
        except Exception as exc:  # noqa: BLE001
            out["predictive_ll_error"] = _fmt_exc(exc)
        out["seconds_predictive_ll"] = time.perf_counter() - t0

    # de-duplicate warnings, keep order
    seen = []
    for s in all_warn:
        if s not in seen:
            seen.append(s)
    out["warnings"] = "\n".join(seen)
    return finish()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - OUT could not be written
        traceback.print_exc()
        sys.exit(1)
