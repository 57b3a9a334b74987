"""Sweeps over recordings x models x state dimensions x restarts as Dask tasks.

:func:`sweep` submits one task per (dataset, model, state dimension, restart) to a Dask
cluster (a local one on this machine by default, or any scheduler address), gathers one row
per task into a pandas DataFrame and leaves every fit on disk::

    out_dir/<dataset>/<model>/d<k>/r<j>.npz    the fit (spikessm.io.load reads it back)
    out_dir/<dataset>/<model>/d<k>/r<j>.json   its row (scores, iterations, seconds, config)
    out_dir/sweep.csv                          the table of the last run

Guarantees:

- Deterministic: a task's result depends only on its recording and :class:`TaskSpec`
  (seeds from :func:`~spikessm.distributed.tasks.task_seed`), so the cluster gives the
  same numbers as calling :func:`~spikessm.distributed.tasks.fit_task` in one process.
- Isolated failures: an exception inside a task (bad data, a non-finite score, ...) becomes
  a row with ``status="failed"`` and the message in ``error``; a task whose worker keeps
  dying (Dask's ``KilledWorker``) too. The other tasks go on.
- Worker loss: tasks running on a worker that dies are run again elsewhere (Dask
  reschedules them; ``retries`` more attempts after an exception escaping the task). Each
  result is written atomically and is the same every time, so a re-run overwrites a file
  with identical content: nothing is lost or duplicated.
- Resumable: a task whose JSON row and fit already exist under ``out_dir``, made with the
  same configuration, is not refitted; its stored row is reported with
  ``status="skipped"``. Failed tasks leave no files, so a rerun tries them again.
"""

from __future__ import annotations

import math
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import check_bin_width, check_flag
from ..io import atomic_write
from .tasks import COLUMNS, MODELS, TaskSpec, check_name, fit_task, load_recording, stored_row

__all__ = ["SweepResult", "sweep"]

# One BLAS / XLA thread per worker process: the workers are the parallelism.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class SweepResult:
    """table: pandas DataFrame, one row per task (columns
    :data:`~spikessm.distributed.tasks.COLUMNS`: dataset, model, state_dim, restart, seed,
    heldout_ll, train_ll (nats), n_iter, converged, seconds (wall time of the task),
    status ("ok", "failed" or "skipped" = reused from a previous run), error, fit_path);
    out_dir: the folder holding the fits."""

    table: object
    out_dir: Path

    @property
    def failed(self):
        """Rows of the tasks that failed."""
        return self.table[self.table["status"] == "failed"]

    def best(self):
        """Per (dataset, model, state_dim), the restart with the highest held-out score
        (failed tasks left out)."""
        t = self.table[self.table["status"] != "failed"]
        idx = t.groupby(["dataset", "model", "state_dim"])["heldout_ll"].idxmax()
        return t.loc[idx.to_numpy()].reset_index(drop=True)


def _pos_int(v, name, low=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


def _distinct(values, name, check):
    if isinstance(values, (str, int, np.integer)):
        values = (values,)
    if not isinstance(values, (list, tuple, np.ndarray)):   # None: "not iterable"
        raise TypeError(f"{name} must be a value or a list of values, got "
                        f"{type(values).__name__}")
    values = [check(v) for v in values]
    if not values or len(set(values)) != len(values):
        raise ValueError(f"{name} must list distinct values, at least one, got {values!r}")
    return values


def _check_model(m):
    if m not in MODELS:
        raise ValueError(f"models must be among {MODELS}, got {m!r}")
    return m


def make_specs(datasets, models, state_dims, n_restarts, *, seed, max_iter,
               holdout_fraction, bin_width) -> list[TaskSpec]:
    """The sweep's tasks in table order (dataset, model, state_dim, restart)."""
    if not isinstance(datasets, dict) or not datasets:
        raise ValueError("datasets must be a non-empty dict: name -> recording or file path")
    names = [check_name(n) for n in datasets]
    models = _distinct(models, "models", _check_model)
    dims = _distinct(state_dims, "state_dims", lambda d: _pos_int(d, "state_dims"))
    n_restarts = _pos_int(n_restarts, "n_restarts")
    seed = _pos_int(seed, "seed", 0)
    max_iter = _pos_int(max_iter, "max_iter")
    if not (isinstance(holdout_fraction, (float, int)) and 0.0 < holdout_fraction < 1.0):
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")
    bin_width = check_bin_width(bin_width)   # True was taken as 1 s
    return [TaskSpec(n, m, d, r, seed, max_iter, float(holdout_fraction), float(bin_width))
            for n in names for m in models for d in dims for r in range(n_restarts)]


@contextmanager
def _connect(client, scheduler_address, n_workers):
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster
    if scheduler_address is not None:
        c = Client(scheduler_address)
        try:
            yield c
        finally:
            c.close()
        return
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None, env=WORKER_ENV) as cluster, \
            Client(cluster) as c:
        yield c


def _out_dir(out_dir) -> Path:
    """The output folder, created; errors name ``out_dir`` (os.fspath and mkdir raised
    anonymous TypeError / FileExistsError, and "" silently meant the working folder)."""
    if not isinstance(out_dir, (str, os.PathLike)) or isinstance(out_dir, bytes):
        raise TypeError(f"out_dir must be a folder path, got {type(out_dir).__name__}")
    path = os.fspath(out_dir)
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"out_dir must be a non-empty folder path, got {out_dir!r}")
    out = Path(os.path.abspath(path))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"out_dir {os.fspath(out)!r} is a file or lies under one; give a "
                         "folder") from None
    except OSError as exc:
        raise ValueError(f"out_dir {os.fspath(out)!r} cannot be created ({exc})") from None
    return out


def _identity(x):
    return x


def _read(data, bin_width):
    """A recording given by file loaded once on a worker (a SpikeTrials)."""
    from ..data.container import SpikeTrials
    trials, bw, prov = load_recording(data, bin_width)
    return SpikeTrials(trials, bin_width=bw, provenance=prov)


def _as_path_spec(data):
    """Absolute path (or path dict) so that workers with another working folder find it."""
    if isinstance(data, (str, os.PathLike)):
        return {"path": os.path.abspath(os.fspath(data))}
    if isinstance(data, dict) and "path" in data:
        return {**data, "path": os.path.abspath(os.fspath(data["path"]))}
    return None


def _failed(spec, exc) -> dict:
    row = {k: None for k in COLUMNS}
    row.update(dataset=spec.dataset, model=spec.model, state_dim=spec.state_dim,
               restart=spec.restart, seed=spec.seed, heldout_ll=math.nan,
               train_ll=math.nan, n_iter=0, converged=False, seconds=math.nan,
               status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0],
               fit_path="")
    return row


def _remove_stale_temporaries(specs, out_dir):
    """Temporary files of a write interrupted by a worker's death (atomic_write's
    ``.<name>.*.tmp``); called when no task of this sweep is running any more."""
    for spec in specs:
        for path in spec.paths(out_dir):
            if path.parent.is_dir():
                for tmp in path.parent.glob(f".{path.name}.*.tmp"):
                    try:
                        tmp.unlink()
                    except FileNotFoundError:
                        pass


def sweep(datasets: dict, models=("plds",), state_dims=(2, 3), n_restarts: int = 2, *,
          out_dir, client=None, scheduler_address: str | None = None, n_workers: int = 2,
          holdout_fraction: float = 0.25, seed: int = 0, max_iter: int = 50,
          bin_width: float = 1.0, retries: int = 2, progress: bool = True) -> SweepResult:
    """Fit every dataset x model x state dimension x restart as a Dask task.

    Args:
      datasets: dict name -> recording. A recording is counts (T, N) or (K, T, N), a list
        of (T_k, N) arrays, a :class:`spikessm.data.SpikeTrials`, a file path readable by
        :func:`spikessm.data.read`, or ``{"path": ..., **reader keyword arguments}`` (e.g.
        ``bin_width`` for NWB). Names become folder names (letters, digits, ``_ . -``).
        Files are read on the workers (on a real cluster they must see the same path).
      models: any of ``"plds"``, ``"lgssm"``, ``"hmm"`` (see
        :mod:`spikessm.distributed.tasks` for the fits and held-out scores).
      state_dims: latent dimensions (numbers of states for ``"hmm"``).
      n_restarts: seeded random starts per (dataset, model, state_dim).
      out_dir: output folder (created); rerunning on the same folder resumes.
      client: a ``distributed.Client`` to use (left open); or scheduler_address: the
        address of a running scheduler (``"tcp://host:8786"``); neither: a LocalCluster
        of ``n_workers`` single-threaded worker processes on 127.0.0.1, closed at the end.
      holdout_fraction: share of each recording's trials held out for scoring (seeded by
        ``seed`` and the dataset name; the same for every model of a dataset).
      seed: base seed (each task's seed is derived from it and the task's key).
      max_iter: EM iterations per fit.
      bin_width: seconds per bin for recordings given as arrays (a SpikeTrials or a file
        carries its own).
      retries: further attempts of a task after an exception escaping it (worker deaths
        are rescheduled by Dask regardless).
      progress: tqdm progress bar over finished tasks.

    Returns:
      :class:`SweepResult`; the table is also written to ``out_dir/sweep.csv``.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    specs = make_specs(datasets, models, state_dims, n_restarts, seed=seed,
                       max_iter=max_iter, holdout_fraction=holdout_fraction,
                       bin_width=bin_width)
    retries = _pos_int(retries, "retries", 0)
    n_workers = _pos_int(n_workers, "n_workers")
    progress = check_flag(progress, "progress")
    if client is not None and scheduler_address is not None:
        raise ValueError("give client or scheduler_address, not both")
    if scheduler_address is not None and not isinstance(scheduler_address, str):
        raise TypeError(f"scheduler_address must be a string such as 'tcp://host:8786', got "
                        f"{type(scheduler_address).__name__}")
    out = _out_dir(out_dir)
    rows = {}
    todo = []
    for spec in specs:
        row = stored_row(spec, out)
        if row is None:
            todo.append(spec)
        else:
            rows[spec.key] = row
    if todo:
        from distributed import as_completed
        run = uuid.uuid4().hex[:8]
        with _connect(client, scheduler_address, n_workers) as c:
            # each recording travels once, as a task of its own that Dask can recompute if
            # the worker holding it dies (scattered data could not be)
            data = {}
            for name in {s.dataset for s in todo}:
                path = _as_path_spec(datasets[name])
                data[name] = (c.submit(_identity, datasets[name], key=f"data-{name}-{run}")
                              if path is None else
                              c.submit(_read, path, bin_width, key=f"data-{name}-{run}"))
            futures = {c.submit(fit_task, s, data[s.dataset], os.fspath(out),
                                key=f"fit-{s.key.replace('/', '-')}-{run}",
                                retries=retries): s for s in todo}
            bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="sweep",
                       disable=not progress)
            for fut in as_completed(futures):
                spec = futures[fut]
                try:
                    row = fut.result()
                except Exception as exc:          # noqa: BLE001 - e.g. KilledWorker
                    row = _failed(spec, exc)
                rows[spec.key] = row
                fut.release()
                bar.update(1)
                bar.set_postfix(failed=sum(r["status"] == "failed" for r in rows.values()))
            bar.close()
            del data
        _remove_stale_temporaries(todo, out)
    table = pd.DataFrame([rows[s.key] for s in specs], columns=list(COLUMNS))
    atomic_write(out / "sweep.csv", table.to_csv(index=False))
    return SweepResult(table, out)
