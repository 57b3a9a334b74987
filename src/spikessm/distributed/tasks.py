"""One sweep task: fit one model at one state dimension from one seeded start, score it on
held-out trials, save the fit and a one-row JSON summary.

A task is a pure function of its :class:`TaskSpec` and its recording: the train / held-out
split depends only on the base seed and the dataset name (every model, state dimension and
restart of a dataset is scored on the same held-out trials), and the fit's seed only on the
base seed and the task's key (:func:`task_seed`, a SHA-256 of the key fed to NumPy's
``SeedSequence``, stable across processes and machines, unlike Python's ``hash``). Running
a task twice therefore writes the same numbers, and both files are written atomically
(:func:`spikessm.io.atomic_write`), so a task re-run after a worker died is idempotent.

Models (``state_dim`` is the latent dimension, or the number of states for ``"hmm"``):

- ``"plds"``: :class:`~spikessm.models.plds.PoissonLDS` by Laplace EM from a random start
  (``init="random"``, the task's seed); held-out score: the one-step-ahead predictive
  log-likelihood of the held-out trials' counts
  (:func:`~spikessm.evaluation.point_process_predictive_ll`, importance sampling seeded by
  the task's seed); train score: the Laplace log-likelihood of the training trials.
- ``"lgssm"``: :class:`~spikessm.models.lgssm.LinearGaussianSSM` by exact EM on the square
  root of the counts (variance-stabilised), random start; held-out score: the exact marginal
  log-density of the held-out trials' square-root counts (a density of sqrt counts, not a
  probability of counts: compare it only with other ``"lgssm"`` rows).
- ``"hmm"``: :class:`~spikessm.models.poisson_hmm.PoissonHMM` (``n_states = state_dim``) by
  exact EM from a random start; held-out score: the exact log-likelihood of the held-out
  counts.

Scores are in nats, summed over the held-out trials.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.container import SpikeTrials
from ..data.trials import as_trial_list
from ..evaluation.restarts import _split_trials
from ..io import atomic_write, save

MODELS = ("plds", "lgssm", "hmm")
COLUMNS = ("dataset", "model", "state_dim", "restart", "seed", "heldout_ll", "train_ll",
           "n_iter", "converged", "seconds", "status", "error", "fit_path")
PLDS_SCORE_SAMPLES = 1000        # importance samples per step of the held-out PLDS score
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class TaskSpec:
    """One fit of a sweep: ``dataset`` name, ``model`` (one of :data:`MODELS`),
    ``state_dim`` (latent dimension or number of HMM states), ``restart`` index, the sweep's
    ``base_seed``, ``max_iter`` (EM iterations), ``holdout_fraction`` (share of trials held
    out) and ``bin_width`` (seconds per bin, used when the recording does not carry one)."""

    dataset: str
    model: str
    state_dim: int
    restart: int
    base_seed: int
    max_iter: int
    holdout_fraction: float
    bin_width: float = 1.0

    @property
    def key(self) -> str:
        """``dataset/model/d<k>/r<j>``: the task's name and its place under ``out_dir``."""
        return f"{self.dataset}/{self.model}/d{self.state_dim}/r{self.restart}"

    @property
    def seed(self) -> int:
        return task_seed(self.base_seed, self.dataset, self.model, self.state_dim,
                         self.restart)

    def paths(self, out_dir) -> tuple[Path, Path]:
        """(fit ``.npz``, row ``.json``) of this task under ``out_dir``."""
        stem = Path(os.fspath(out_dir)) / self.dataset / self.model / f"d{self.state_dim}"
        return stem / f"r{self.restart}.npz", stem / f"r{self.restart}.json"

    def config(self) -> dict:
        """Everything that determines the task's result (stored with it; a stored result
        whose config differs is refitted, never reused)."""
        return asdict(self)


def check_name(name, what: str = "dataset name") -> str:
    """A dataset name usable as a folder name (letters, digits, ``_ . -``)."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ValueError(f"{what} must be a non-empty string of letters, digits, '_', '.' "
                         f"or '-' (it names a folder), got {name!r}")
    return name


def task_seed(base_seed: int, *key) -> int:
    """A seed in [0, 2**32) from ``base_seed`` and a key (strings / ints), the same in every
    process and on every machine (SHA-256 of the key, then ``numpy.random.SeedSequence``)."""
    digest = hashlib.sha256("/".join(str(k) for k in key).encode("utf-8")).digest()
    words = np.frombuffer(digest[:16], dtype="<u4").tolist()
    return int(np.random.SeedSequence([int(base_seed), *words]).generate_state(1)[0])


def load_recording(data, bin_width: float) -> tuple[list, float, dict]:
    """(trials, bin width, provenance) of a recording: an array (T, N) / (K, T, N), a list
    of (T_k, N) arrays, a :class:`SpikeTrials`, a file path readable by
    :func:`spikessm.data.read`, or a dict ``{"path": ..., **reader keyword arguments}``."""
    if isinstance(data, (str, os.PathLike)):
        data = {"path": data}
    if isinstance(data, dict):
        from ..data import read
        kw = dict(data)
        path = kw.pop("path", None)
        if path is None:
            raise ValueError(f"a dataset given as a dict needs a 'path' entry, got {data!r}")
        data = read(path, **kw)
    if isinstance(data, SpikeTrials):
        return list(data.counts), float(data.bin_width), dict(data.provenance)
    return as_trial_list(data, "dataset", min_length=2), float(bin_width), {}


def split(trials: list, fraction: float, seed: int):
    """(train trials, held-out trials, train indices, held-out indices).

    A seeded random ``fraction`` of the trials (at least one, at least one left to train)
    is held out. A recording with a single trial is cut in time instead: the trailing
    ``fraction`` of its bins is held out (index ``[0]`` on both sides) and scored as a
    sequence of its own."""
    K = len(trials)
    if K == 1:
        T = len(trials[0])
        cut = int(math.floor((1.0 - fraction) * T))
        if cut < 2 or cut > T - 2:
            raise ValueError(f"a single-trial recording of {T} bins is too short to hold out "
                             f"{fraction:g} of it")
        return [trials[0][:cut]], [trials[0][cut:]], [0], [0]
    train, test = _split_trials(K, fraction, seed)      # the split best-of restarts use
    return ([trials[i] for i in train], [trials[i] for i in test], train.tolist(),
            test.tolist())


def _fit_plds(spec, train, test, bin_width, seed):
    from ..evaluation.predictive import point_process_predictive_ll
    from ..models.plds import PoissonLDS
    fit = PoissonLDS(spec.state_dim, bin_width).fit(train, init="random", seed=seed,
                                                    max_iter=spec.max_iter, progress=False)
    held = point_process_predictive_ll(fit.params, test, n_samples=PLDS_SCORE_SAMPLES,
                                       seed=seed).total
    return fit, fit.log_likelihood, held, fit.n_iter, fit.converged


def _fit_lgssm(spec, train, test, bin_width, seed):
    from ..models.lgssm import LinearGaussianSSM
    model = LinearGaussianSSM(spec.state_dim)
    fit = model.fit_em([np.sqrt(t) for t in train], init="random", seed=seed,
                       max_iter=spec.max_iter, progress=False)
    held = model.log_prob(fit.params, [np.sqrt(t) for t in test])
    return fit, fit.log_likelihood, held, fit.n_iter, fit.converged


def _fit_hmm(spec, train, test, bin_width, seed):
    from ..models.poisson_hmm import PoissonHMM
    model = PoissonHMM(spec.state_dim, bin_width)
    fit = model.fit(train, seed=seed, max_iter=spec.max_iter, progress=False)
    held = model.log_likelihood(test, fit.params)
    return fit, fit.log_likelihood, held, fit.n_iter, fit.converged


_FITTERS = {"plds": _fit_plds, "lgssm": _fit_lgssm, "hmm": _fit_hmm}


def _row(spec: TaskSpec, **kw) -> dict:
    row = {"dataset": spec.dataset, "model": spec.model, "state_dim": spec.state_dim,
           "restart": spec.restart, "seed": spec.seed, "heldout_ll": math.nan,
           "train_ll": math.nan, "n_iter": 0, "converged": False, "seconds": math.nan,
           "status": "failed", "error": "", "fit_path": ""}
    row.update(kw)
    return row


def _finite(x, what):
    x = float(x)
    if not math.isfinite(x):
        raise FloatingPointError(f"the {what} is {x}")
    return x


def fit_task(spec: TaskSpec, data, out_dir) -> dict:
    """Fit, score and save one task; return its row (a dict with the keys of
    :data:`COLUMNS`). Never raises for a problem with the data or the fit: the row then has
    ``status="failed"`` and the exception in ``error``, and nothing is written."""
    t0 = time.perf_counter()
    try:
        if spec.model not in _FITTERS:
            raise ValueError(f"model must be one of {MODELS}, got {spec.model!r}")
        trials, bin_width, provenance = load_recording(data, spec.bin_width)
        if not any(np.nansum(t) > 0 for t in trials):
            raise ValueError(f"dataset {spec.dataset!r} has no spikes (every count is 0): "
                             "nothing to fit")
        split_seed = task_seed(spec.base_seed, spec.dataset)
        train, test, train_idx, test_idx = split(trials, spec.holdout_fraction, split_seed)
        fit, train_ll, held, n_iter, conv = _FITTERS[spec.model](spec, train, test,
                                                                 bin_width, spec.seed)
        row = _row(spec, heldout_ll=_finite(held, "held-out log-likelihood"),
                   train_ll=_finite(train_ll, "training log-likelihood"), n_iter=int(n_iter),
                   converged=bool(conv), seconds=time.perf_counter() - t0, status="ok")
        fit_path, json_path = spec.paths(out_dir)
        fit_path.parent.mkdir(parents=True, exist_ok=True)
        save(fit_path, fit, provenance={
            "sweep_task": spec.key, "config": spec.config(), "seed": spec.seed,
            "train_trials": train_idx, "heldout_trials": test_idx,
            "bin_width": bin_width, "heldout_ll": row["heldout_ll"],
            "recording": provenance})
        row["fit_path"] = os.fspath(fit_path)
        # the JSON marks the task done: written last, so a half-finished task is refitted
        atomic_write(json_path, json.dumps({"row": row, "config": spec.config()}, indent=1))
        return row
    except Exception as exc:                          # noqa: BLE001 - reported in the row
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return _row(spec, seconds=time.perf_counter() - t0, error=msg)


def stored_row(spec: TaskSpec, out_dir) -> dict | None:
    """The row a previous run stored for ``spec`` (status ``"skipped"``), or None when the
    task has no complete result (JSON or fit missing, unreadable, or made with another
    configuration)."""
    fit_path, json_path = spec.paths(out_dir)
    if not (json_path.is_file() and fit_path.is_file()):
        return None
    try:
        stored = json.loads(json_path.read_text(encoding="utf-8"))
        row = stored["row"]
        if stored.get("config") != spec.config() or row.get("status") != "ok":
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    row = {k: row.get(k) for k in COLUMNS}
    row.update(status="skipped", fit_path=os.fspath(fit_path))
    return row
