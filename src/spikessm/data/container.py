"""One container for binned recordings: :class:`SpikeTrials`.

Every model accepts it wherever it accepts spike counts (it funnels through
:func:`spikessm.data.trials.as_trial_list`), and :func:`spikessm.io.save` stores it like any
result. Build one with :func:`spikessm.data.bin_spike_times`, a reader
(:func:`spikessm.data.read`), or directly from count arrays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .._checks import check_bin_width, check_flag, check_seed
from .trials import as_trial_list

__all__ = ["SpikeTrials"]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _ids(values, n: int, name: str) -> np.ndarray:
    """(n,) array of ints, strings or bools (a default 0..n-1 when None)."""
    if values is None:
        return _frozen(np.arange(n))
    a = np.array(values)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D sequence of length {n}, got shape {a.shape}")
    if a.dtype.kind == "O":          # e.g. strings read from NWB / pandas tables
        items = a.tolist()
        if all(isinstance(v, bytes) for v in items):
            items = [v.decode("utf-8") for v in items]
        if all(isinstance(v, str) for v in items):
            a = np.array(items, dtype=str)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
            a = np.array(items, dtype=np.int64)
    if a.dtype.kind == "S":
        a = a.astype(str)
    if a.dtype.kind not in "biuU":
        raise TypeError(f"{name} must hold integers or strings, got dtype {a.dtype}")
    return _frozen(a.copy())


def _finite_values(v, where: str) -> None:
    """ValueError for a NaN or infinite number anywhere in provenance (it could not be
    saved: provenance is stored as plain JSON)."""
    if isinstance(v, dict):
        for k, x in v.items():
            _finite_values(x, f"{where}[{k!r}]")
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _finite_values(x, f"{where}[{i}]")
    elif isinstance(v, np.ndarray) and v.dtype.kind in "fc":
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{where} holds NaN or inf; provenance values must be finite")
    elif isinstance(v, (float, np.floating)) and not np.isfinite(v):
        raise ValueError(f"{where} is {v}; provenance values must be finite")


@dataclass(frozen=True, eq=False)
class SpikeTrials:
    """Binned spike counts of N units in K trials (ragged allowed), with their metadata.

    Attributes:
      counts: tuple of K arrays (T_k, N), float64, counts per bin (NaN = missing bin).
        Read-only copies of what was given.
      bin_width: seconds per bin. Bin ``t`` of trial ``k`` covers the half-open interval
        ``[trial_starts[k] + t * bin_width, trial_starts[k] + (t + 1) * bin_width)``.
      unit_ids: (N,) unit identifiers (ints or strings; default 0..N-1), unique.
      trial_labels: (K,) trial labels, e.g. the condition (ints, strings or bools;
        default 0..K-1).
      trial_starts: (K,) start time of each trial in seconds (default: back to back from 0).
      covariates: dict name -> tuple of K arrays (T_k, q_name) aligned to the bins
        (position, kinematics, LFP; see :func:`spikessm.data.resample_covariate`).
      provenance: dict of plain values: source file, reader, sha256, binning arguments.

    Example:
      >>> import numpy as np
      >>> from spikessm.data import SpikeTrials
      >>> rec = SpikeTrials([np.ones((5, 2)), np.zeros((3, 2))], bin_width=0.01,
      ...                   trial_labels=["left", "right"])
      >>> rec.n_trials, rec.n_units, rec.lengths.tolist()
      (2, 2, [5, 3])
      >>> rec.select(labels="right").counts[0].shape
      (3, 2)
    """

    counts: tuple
    bin_width: float
    unit_ids: np.ndarray | None = None
    trial_labels: np.ndarray | None = None
    trial_starts: np.ndarray | None = None
    covariates: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)
        trials = as_trial_list(self.counts, "counts", min_length=1)
        for k, t in enumerate(trials):
            if (t < 0).any():
                raise ValueError(f"counts[{k}] has negative entries; counts must be >= 0")
        set_("counts", tuple(_frozen(t) for t in trials))
        set_("bin_width", check_bin_width(self.bin_width))
        K, N = len(trials), trials[0].shape[1]
        set_("unit_ids", _ids(self.unit_ids, N, "unit_ids"))
        if len(np.unique(self.unit_ids)) != N:
            raise ValueError("unit_ids must be unique")
        set_("trial_labels", _ids(self.trial_labels, K, "trial_labels"))
        if self.trial_starts is None:
            starts = np.concatenate([[0.0], np.cumsum(self.lengths)[:-1] * self.bin_width])
        else:
            starts = np.array(self.trial_starts, dtype=np.float64)
            if starts.shape != (K,) or not np.isfinite(starts).all():
                raise ValueError(f"trial_starts must be {K} finite times in seconds, got "
                                 f"shape {starts.shape}")
        set_("trial_starts", _frozen(starts))
        if not isinstance(self.covariates, dict):
            raise TypeError("covariates must be a dict name -> list of (T_k, q) arrays")
        covs = {}
        for name, value in self.covariates.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"covariate names must be non-empty strings, got {name!r}")
            if K == 1 and not isinstance(value, (list, tuple)):
                value = [value]
            arrs = as_trial_list(value, f"covariates[{name!r}]", min_length=0)
            if len(arrs) != K:
                raise ValueError(f"covariates[{name!r}] has {len(arrs)} trials; counts has {K}")
            for k, (a, t) in enumerate(zip(arrs, trials)):
                if a.shape[0] != t.shape[0]:
                    raise ValueError(f"covariates[{name!r}][{k}] has {a.shape[0]} bins; "
                                     f"counts[{k}] has {t.shape[0]}")
            covs[name] = tuple(_frozen(a) for a in arrs)
        set_("covariates", covs)
        if not isinstance(self.provenance, dict) or not all(
                isinstance(k, str) for k in self.provenance):
            raise TypeError("provenance must be a dict with string keys")
        _finite_values(self.provenance, "provenance")
        set_("provenance", dict(self.provenance))

    # ------------------------------------------------------------------ shape
    @property
    def n_trials(self) -> int:
        return len(self.counts)

    @property
    def n_units(self) -> int:
        return self.counts[0].shape[1]

    @property
    def lengths(self) -> np.ndarray:
        """(K,) number of bins per trial."""
        return np.array([c.shape[0] for c in self.counts], dtype=np.int64)

    def __len__(self) -> int:
        return self.n_trials

    def __repr__(self) -> str:
        L = self.lengths
        span = f"{L.min()}" if L.min() == L.max() else f"{L.min()}..{L.max()}"
        cov = f", covariates {list(self.covariates)}" if self.covariates else ""
        return (f"SpikeTrials({self.n_trials} trials x {self.n_units} units, "
                f"{span} bins of {self.bin_width * 1e3:g} ms{cov})")

    def _trial(self, trial) -> int:
        """Position of one trial (negative counts from the end), checked by name."""
        if isinstance(trial, (bool, np.bool_)) or not isinstance(trial, (int, np.integer)):
            raise TypeError(f"trial must be an integer position, got {trial!r:.40}")
        if not -self.n_trials <= trial < self.n_trials:
            raise ValueError(f"trial={trial} is out of range for {self.n_trials} trials")
        return int(trial) % self.n_trials

    def bin_edges(self, trial: int = 0) -> np.ndarray:
        """(T_k + 1,) bin edges of one trial in seconds."""
        k = self._trial(trial)
        return self.trial_starts[k] + self.bin_width * np.arange(self.counts[k].shape[0] + 1)

    def bin_centres(self, trial: int = 0) -> np.ndarray:
        """(T_k,) bin centres of one trial in seconds."""
        e = self.bin_edges(trial)
        return 0.5 * (e[:-1] + e[1:])

    def to_array(self) -> np.ndarray:
        """(K, T, N) counts; ValueError when trials differ in length (use ``counts``)."""
        if len(set(self.lengths.tolist())) != 1:
            raise ValueError(f"trials differ in length ({self.lengths.min()}.."
                             f"{self.lengths.max()} bins); use .counts (a list of (T_k, N))")
        return np.stack(self.counts)

    def inputs(self, names=None) -> list[np.ndarray]:
        """Covariates as model inputs: list of K arrays (T_k, q), the named covariates
        (default: all, in insertion order) side by side."""
        if names is None:
            names = list(self.covariates)
            if not names:
                raise ValueError("this recording has no covariates")
        elif isinstance(names, str):
            names = [names]
        elif isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
            names = list(names)
            if not names:
                raise ValueError("names is empty; name at least one covariate")
        else:
            raise TypeError(f"names must be a covariate name or a list of names, got "
                            f"{names!r:.60}")
        for n in names:
            if n not in self.covariates:
                raise ValueError(f"names: no covariate {n!r}; have {list(self.covariates)}")
        return [np.concatenate([self.covariates[n][k] for n in names], axis=1)
                for k in range(self.n_trials)]

    # ------------------------------------------------------------------ subsets
    def select(self, trials=None, units=None, *, labels=None, unit_ids=None) -> SpikeTrials:
        """A new container with a subset of trials and/or units.

        Args:
          trials: trial positions (ints, a slice) or a (K,) boolean mask.
          units: unit positions (ints, a slice) or an (N,) boolean mask.
          labels: keep trials whose label equals this value (or is in this list).
          unit_ids: keep these units, by id, in the given order.
        """
        kt = self._index(trials, self.n_trials, "trials")
        if labels is not None:
            want = np.atleast_1d(np.array(labels))
            hit = np.isin(self.trial_labels, want)
            missing = [v for v in want.tolist() if v not in self.trial_labels.tolist()]
            if missing:
                raise ValueError(f"labels {missing} not found; trial labels are "
                                 f"{np.unique(self.trial_labels).tolist()}")
            kt = [k for k in kt if hit[k]]
        ku = self._index(units, self.n_units, "units")
        if unit_ids is not None:
            pos = {u: i for i, u in enumerate(self.unit_ids.tolist())}
            wanted = np.atleast_1d(np.array(unit_ids)).tolist()
            bad = [u for u in wanted if u not in pos]
            if bad:
                raise ValueError(f"unit_ids {bad[:5]} not in this recording")
            chosen = set(ku)
            ku = [pos[u] for u in wanted if pos[u] in chosen]
        if not kt:
            raise ValueError("the selection keeps no trials")
        if not ku:
            raise ValueError("the selection keeps no units")
        return dataclasses.replace(
            self, counts=[self.counts[k][:, ku] for k in kt],
            unit_ids=self.unit_ids[ku], trial_labels=self.trial_labels[kt],
            trial_starts=self.trial_starts[kt],
            covariates={n: [v[k] for k in kt] for n, v in self.covariates.items()})

    @staticmethod
    def _index(sel, n: int, name: str) -> list[int]:
        if sel is None:
            return list(range(n))
        if isinstance(sel, slice):
            return list(range(n))[sel]
        a = np.atleast_1d(np.asarray(sel))
        if a.dtype == bool:
            if a.shape != (n,):
                raise ValueError(f"{name} mask must have shape ({n},), got {a.shape}")
            return np.flatnonzero(a).tolist()
        if a.dtype.kind not in "iu" or a.ndim != 1:
            raise TypeError(f"{name} must be integer positions, a slice or a boolean mask")
        if a.size and (a.min() < -n or a.max() >= n):
            raise ValueError(f"{name} positions must lie in [-{n}, {n}), got "
                             f"{a.min()}..{a.max()}")
        return (a % n).tolist()

    def split(self, test_fraction: float = 0.2, *, seed: int = 0,
              stratify: bool = True) -> tuple[SpikeTrials, SpikeTrials]:
        """(train, test) split of the trials at random (seeded), within each label when
        ``stratify`` (every label keeps at least one training trial)."""
        if isinstance(test_fraction, (bool, np.bool_)) or not isinstance(
                test_fraction, (int, float, np.integer, np.floating)):
            raise TypeError(f"test_fraction must be a number in (0, 1), got "
                            f"{test_fraction!r:.40}")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        stratify = check_flag(stratify, "stratify")
        rng = np.random.default_rng(check_seed(seed))
        if self.n_trials < 2:
            raise ValueError("split needs at least 2 trials")
        groups = ([np.flatnonzero(self.trial_labels == v)
                   for v in np.unique(self.trial_labels)] if stratify
                  else [np.arange(self.n_trials)])
        test = []
        for g in groups:
            n_test = min(int(round(test_fraction * len(g))), len(g) - 1)
            test.extend(rng.permutation(g)[:n_test].tolist())
        if not test:
            raise ValueError(f"test_fraction={test_fraction} leaves no test trial"
                             + ("; each label has too few trials to stratify (pass "
                                "stratify=False)" if stratify else "; raise it"))
        mask = np.zeros(self.n_trials, dtype=bool)
        mask[test] = True
        return self.select(~mask), self.select(mask)

    # ------------------------------------------------------------------ changes
    def with_covariates(self, **covariates) -> SpikeTrials:
        """A new container with covariates added or replaced (lists of (T_k, q) arrays)."""
        return dataclasses.replace(self, covariates={**self.covariates, **covariates})

    def rebin(self, factor: int) -> SpikeTrials:
        """Bins ``factor`` times wider: counts summed, covariates averaged. A trailing
        remainder shorter than ``factor`` bins is dropped from each trial."""
        from .binning import _sum_bins, rebin_counts
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}")
        if self.lengths.min() < factor:
            raise ValueError(f"factor={factor} exceeds the shortest trial "
                             f"({self.lengths.min()} bins)")
        # covariates are signals (positions may be negative): averaged, not checked as counts
        covs = {n: [_sum_bins(a / factor, factor) for a in v]
                for n, v in self.covariates.items()}
        prov = {**self.provenance, "rebin_factor": int(factor) * int(
            self.provenance.get("rebin_factor", 1))}
        return dataclasses.replace(self, counts=[rebin_counts(c, factor) for c in self.counts],
                                   bin_width=self.bin_width * factor, covariates=covs,
                                   provenance=prov)
