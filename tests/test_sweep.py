"""Sweeps on Dask (spikessm.distributed): a 2-worker LocalCluster on loopback gives the same
numbers as fitting in this process, survives a worker killed mid-sweep, resumes, and
isolates failing tasks.

One cluster serves the module. The heavy runs use the Poisson HMM (cheapest to compile in
each worker); the PLDS and LG-SSM tasks are checked in-process against independent
recomputations of their held-out scores.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("pandas")

from distributed import Client, LocalCluster  # noqa: E402

from spikessm.distributed import SweepResult, TaskSpec, fit_task, sweep, task_seed  # noqa: E402
from spikessm.distributed import tasks as tasks_mod  # noqa: E402
from spikessm.distributed.cli import sweep_main  # noqa: E402
from spikessm.io import load  # noqa: E402

GRID = dict(models=("hmm",), state_dims=(2, 3), n_restarts=2, max_iter=8,
            holdout_fraction=0.25, seed=3)


def _datasets():
    rng = np.random.default_rng(11)
    out = {}
    for i in range(4):                      # 4 recordings, 4 trials x 60 bins x 6 neurons
        rates = rng.uniform(0.3, 2.0, size=6)
        state = (rng.random((4, 60, 1)) < 0.5)
        out[f"rec{i}"] = rng.poisson(rates * (0.5 + state)).astype(float)
    return out


DATASETS = _datasets()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # the workers share a persistent compilation cache, so the worker the nanny restarts
    # after the kill below loads the compiled programs instead of compiling them again
    env = {"OPENBLAS_NUM_THREADS": "1", "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
           "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache")),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env=env) as cluster, Client(cluster) as c:
        yield c


def _specs():
    return [TaskSpec(name, "hmm", d, r, GRID["seed"], GRID["max_iter"],
                     GRID["holdout_fraction"])
            for name in DATASETS for d in GRID["state_dims"] for r in range(2)]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The same 16 fits run one after another in this process."""
    out = tmp_path_factory.mktemp("serial")
    return {s.key: fit_task(s, DATASETS[s.dataset], out) for s in _specs()}


def _key(row):
    return f"{row['dataset']}/{row['model']}/d{row['state_dim']}/r{row['restart']}"


def _assert_equals_serial(result: SweepResult, serial):
    t = result.table
    assert len(t) == 16 and set(t["status"]) <= {"ok", "skipped"}, t
    assert sorted(_key(r) for _, r in t.iterrows()) == sorted(serial)
    for _, row in t.iterrows():
        ref = serial[_key(row)]
        assert ref["status"] == "ok"
        assert row["seed"] == ref["seed"]
        np.testing.assert_allclose(row["heldout_ll"], ref["heldout_ll"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(row["train_ll"], ref["train_ll"], rtol=0, atol=1e-10)
        assert row["n_iter"] == ref["n_iter"]
        ours, theirs = load(row["fit_path"]).params, load(ref["fit_path"]).params
        for name in ("rates", "transition_matrix", "initial_probs"):
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=0,
                                       atol=1e-10)


def _files(out: Path, pattern: str):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob(pattern))


def test_sweep_with_a_worker_killed_midway_equals_serial_fits(client, serial, tmp_path):
    """Acceptance: 4 datasets x 2 state dims x 2 restarts on 2 workers; one worker is
    SIGKILLed while it is running a task (the first results have arrived); the sweep
    completes with every task exactly once, in the table and on disk, equal to serial fits.
    """
    pids = client.run(os.getpid)
    killed = {}

    def killer():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            if list(tmp_path.rglob("r*.json")):
                for addr, keys in client.processing().items():
                    if keys and addr in pids and any(k.startswith("fit-") for k in keys):
                        killed["n_done"] = len(list(tmp_path.rglob("r*.json")))
                        killed["addr"] = addr
                        os.kill(pids[addr], signal.SIGKILL)
                        return
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = sweep(DATASETS, out_dir=tmp_path, client=client, progress=False, **GRID)
    thread.join(timeout=5)
    assert killed, "no worker was running a task after the first result"
    assert killed["n_done"] < 16                    # killed in the middle of the sweep
    _assert_equals_serial(result, serial)
    assert set(result.table["status"]) == {"ok"}
    assert _files(tmp_path, "r*.json") == sorted(f"{k}.json" for k in serial)
    assert _files(tmp_path, "r*.npz") == sorted(f"{k}.npz" for k in serial)
    assert _files(tmp_path, ".*.tmp") == []         # no partial file of the killed task
    # the nanny brought a fresh worker up
    client.wait_for_workers(2, timeout=120)


@pytest.fixture(scope="module")
def finished(client, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return out, sweep(DATASETS, out_dir=out, client=client, progress=False, **GRID)


def test_sweep_on_two_workers_equals_serial_fits(finished, serial):
    out, result = finished
    _assert_equals_serial(result, serial)
    # the table on disk is the one returned
    import pandas as pd
    disk = pd.read_csv(out / "sweep.csv")
    np.testing.assert_array_equal(disk["heldout_ll"].to_numpy(),
                                  result.table["heldout_ll"].to_numpy())
    best = result.best()
    assert len(best) == 4 * 2
    for _, row in best.iterrows():
        group = result.table[(result.table["dataset"] == row["dataset"])
                             & (result.table["state_dim"] == row["state_dim"])]
        assert row["heldout_ll"] == group["heldout_ll"].max()


def test_resume_refits_only_what_is_missing(client, finished, serial):
    out, first = finished
    gone = {"rec1/hmm/d2/r0": ("json",), "rec2/hmm/d3/r1": ("npz",),
            "rec3/hmm/d2/r1": ("json", "npz")}
    for key, exts in gone.items():
        for ext in exts:
            (out / f"{key}.{ext}").unlink()
    # a stored result made with another configuration is not reused either
    stale = out / "rec0/hmm/d3/r0.json"
    doc = json.loads(stale.read_text())
    doc["config"]["max_iter"] = 99
    stale.write_text(json.dumps(doc))
    refit = set(gone) | {"rec0/hmm/d3/r0"}
    kept = {k: (out / f"{k}.json").stat().st_mtime_ns for k in serial if k not in refit}
    time.sleep(0.05)
    result = sweep(DATASETS, out_dir=out, client=client, progress=False, **GRID)
    status = {_key(r): r["status"] for _, r in result.table.iterrows()}
    assert {k for k, s in status.items() if s == "ok"} == refit
    assert {k for k, s in status.items() if s == "skipped"} == set(kept)
    for k, mtime in kept.items():
        assert (out / f"{k}.json").stat().st_mtime_ns == mtime
    _assert_equals_serial(result, serial)


def test_failing_task_is_reported_and_the_others_complete(client, tmp_path):
    data = {"good": DATASETS["rec0"], "silent": np.zeros((4, 60, 6))}
    result = sweep(data, out_dir=tmp_path, client=client, progress=False,
                   **{**GRID, "state_dims": (2,)})
    t = result.table.set_index("dataset")
    assert list(t.loc["good", "status"]) == ["ok", "ok"]
    assert list(t.loc["silent", "status"]) == ["failed", "failed"]
    assert all("ValueError" in e and "no spikes" in e for e in t.loc["silent", "error"])
    assert np.isnan(t.loc["silent", "heldout_ll"]).all()
    assert not (tmp_path / "silent").exists()       # nothing written for a failed task
    assert len(result.failed) == 2
    # a rerun tries the failed tasks again and reuses the good ones
    again = sweep(data, out_dir=tmp_path, client=client, progress=False,
                  **{**GRID, "state_dims": (2,)})
    assert list(again.table["status"]) == ["skipped", "skipped", "failed", "failed"]


def test_command_line_sweep_uses_a_running_scheduler(client, tmp_path, capsys):
    np.savez(tmp_path / "a.npz", counts=DATASETS["rec1"], bin_width=1.0)
    cfg = {"datasets": {"a": "a.npz", "missing": {"path": "nope.npz"}}, "models": ["hmm"],
           "state_dims": [2], "n_restarts": 1, "max_iter": 8}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    rc = sweep_main([str(tmp_path / "cfg.json"), "--out", str(tmp_path / "out"),
                     "--scheduler", client.scheduler.address, "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1                                   # one dataset cannot be read
    assert "2 tasks: 1 fitted, 0 reused, 1 failed" in captured.out
    assert "failed missing/hmm/d2/r0" in captured.err
    assert (tmp_path / "out/a/hmm/d2/r0.npz").is_file()
    assert sweep_main(["nope.json", "--out", str(tmp_path)]) == 2
    assert "spikessm: error:" in capsys.readouterr().err


def test_task_seeds_are_stable_and_distinct():
    # a fixed value: the derivation must never change between versions or processes
    assert task_seed(0, "a", "hmm", 2, 0) == task_seed(0, "a", "hmm", 2, 0)
    seeds = {task_seed(0, n, m, d, r) for n in ("a", "b") for m in ("hmm", "plds")
             for d in (2, 3) for r in range(3)}
    assert len(seeds) == 24
    assert task_seed(1, "a", "hmm", 2, 0) != task_seed(0, "a", "hmm", 2, 0)


@pytest.mark.parametrize("kw, match", [
    (dict(datasets={}), "non-empty dict"),
    (dict(datasets={"../x": np.ones((2, 5, 2))}), "dataset name"),
    (dict(datasets={"x": np.ones((2, 5, 2))}, models=("gmm",)), "models"),
    (dict(datasets={"x": np.ones((2, 5, 2))}, state_dims=(2, 2)), "state_dims"),
    (dict(datasets={"x": np.ones((2, 5, 2))}, n_restarts=0), "n_restarts"),
    (dict(datasets={"x": np.ones((2, 5, 2))}, holdout_fraction=1.0), "holdout_fraction"),
    (dict(datasets={"x": np.ones((2, 5, 2))}, n_workers=0), "n_workers"),
    (dict(datasets={"x": np.ones((2, 5, 2))}, client=object(), scheduler_address="tcp://x"),
     "not both"),
])
def test_bad_arguments_raise_before_anything_runs(kw, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        sweep(out_dir=tmp_path / "o", progress=False, **kw)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def _dense_gaussian_logpdf(p, y):
    """log N(vec y; mean, cov) of one trial (T, N) under an LG-SSM, built densely."""
    T, N = y.shape
    d = p.A.shape[0]
    P = np.zeros((T, d, d))
    m = np.zeros((T, d))
    m[0], P[0] = p.m0, p.P0
    for t in range(1, T):
        m[t] = p.A @ m[t - 1] + p.b
        P[t] = p.A @ P[t - 1] @ p.A.T + p.Q
    cov = np.zeros((T * N, T * N))
    for s in range(T):
        Ast = np.eye(d)
        for t in range(s, T):
            cxx = Ast @ P[s]                         # Cov(x_t, x_s)
            blk = p.C @ cxx @ p.C.T
            cov[t * N:(t + 1) * N, s * N:(s + 1) * N] = blk
            cov[s * N:(s + 1) * N, t * N:(t + 1) * N] = blk.T
            Ast = p.A @ Ast
        cov[s * N:(s + 1) * N, s * N:(s + 1) * N] += p.R
    mean = (m @ p.C.T + p.d).ravel()
    L = np.linalg.cholesky(cov)
    z = np.linalg.solve(L, y.ravel() - mean)
    return -0.5 * z @ z - np.log(np.diag(L)).sum() - 0.5 * T * N * np.log(2 * np.pi)


def test_lgssm_task_scores_held_out_trials_exactly(tmp_path):
    data = DATASETS["rec2"][:, :20]
    spec = TaskSpec("rec2", "lgssm", 2, 0, 5, 5, 0.25)
    row = fit_task(spec, data, tmp_path)
    assert row["status"] == "ok", row["error"]
    fit = load(row["fit_path"])
    meta_test = json.loads((tmp_path / "rec2/lgssm/d2/r0.json").read_text())["row"]
    assert meta_test["heldout_ll"] == row["heldout_ll"]
    _, test, _, test_idx = tasks_mod.split(list(data), 0.25, task_seed(5, "rec2"))
    assert len(test) == 1
    ref = sum(_dense_gaussian_logpdf(fit.params, np.sqrt(y)) for y in test)
    np.testing.assert_allclose(row["heldout_ll"], ref, rtol=1e-9)


@pytest.mark.slow
def test_plds_task_runs_and_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks_mod, "PLDS_SCORE_SAMPLES", 50)
    data = DATASETS["rec3"][:, :30]
    spec = TaskSpec("rec3", "plds", 1, 0, 0, 3, 0.25)
    a = fit_task(spec, data, tmp_path / "a")
    b = fit_task(spec, data, tmp_path / "b")
    assert a["status"] == "ok", a["error"]
    assert a["heldout_ll"] == b["heldout_ll"] and a["train_ll"] == b["train_ll"]
    assert a["n_iter"] == 3 and np.isfinite(a["heldout_ll"]) and a["heldout_ll"] < 0
    fit = load(a["fit_path"])
    assert fit.seed == spec.seed and fit.params.C.shape == (6, 1)


def test_split_holds_out_trials_or_the_tail_of_a_single_trial():
    trials = [np.full((5, 2), float(k)) for k in range(7)]
    train, test, i_train, i_test = tasks_mod.split(trials, 0.3, seed=4)
    assert sorted(i_train + i_test) == list(range(7)) and len(i_test) == 2
    assert all(t[0, 0] == i for t, i in zip(test, i_test))
    assert tasks_mod.split(trials, 0.3, seed=4)[3] == i_test          # seeded
    one = [np.arange(20.0)[:, None]]
    train, test, i_train, i_test = tasks_mod.split(one, 0.25, seed=0)
    np.testing.assert_array_equal(np.concatenate([train[0], test[0]]), one[0])
    assert len(test[0]) == 5 and i_train == i_test == [0]
    with pytest.raises(ValueError, match="too short"):
        tasks_mod.split([np.ones((3, 2))], 0.25, seed=0)
