"""Trial containers: validate observations and pack ragged trials for the kernels.

Accepted layouts for observations: a (T, N) array (one trial), a (K, T, N) array (K trials
of equal length), a list of (T_k, N) arrays (ragged trials), or a
:class:`spikessm.data.SpikeTrials` (its ``counts``). NaN marks a missing entry;
+-inf is rejected. Inputs are never modified: everything is copied to float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import as_float_array


@dataclass(frozen=True)
class TrialBatch:
    """Trials packed to a common length.

    y: (K, T_max, N) float64 with zeros where missing or padded; mask: (K, T_max, N) bool,
    True where observed; valid: (K, T_max) bool, True inside each trial; lengths: (K,) int;
    inputs: (K, T_max, q) float64 (q may be 0); any_missing: some observed step lacks
    entries; ragged: trials differ in length.
    """

    y: np.ndarray
    mask: np.ndarray
    valid: np.ndarray
    lengths: np.ndarray
    inputs: np.ndarray
    any_missing: bool
    ragged: bool

    @property
    def n_trials(self) -> int:
        return self.y.shape[0]

    @property
    def emission_dim(self) -> int:
        return self.y.shape[2]

    @property
    def input_dim(self) -> int:
        return self.inputs.shape[2]


def as_trial_list(x, name: str = "observations", *, min_length: int = 1,
                  allow_nan: bool = True, feature_dim: int | None = None) -> list[np.ndarray]:
    """Normalise one trial, a (K, T, N) array or a list of trials to a list of (T_k, N) copies.

    A :class:`spikessm.data.SpikeTrials` contributes its ``counts``. Raises ValueError /
    TypeError naming ``name`` for a wrong rank, too-short trials, infinities, NaN where not
    allowed, or inconsistent channel counts.
    """
    from .container import SpikeTrials
    if isinstance(x, SpikeTrials):
        x = list(x.counts)
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise ValueError(f"{name} is an empty list; expected at least one trial")
        trials = [as_float_array(t, f"{name}[{k}]") for k, t in enumerate(x)]
        for k, t in enumerate(trials):
            if t.ndim == 1:
                trials[k] = t[:, None]
            elif t.ndim != 2:
                raise ValueError(f"{name}[{k}] must be 2-D (T, N), got shape {t.shape}")
    else:
        a = as_float_array(x, name)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim == 2:
            trials = [a]
        elif a.ndim == 3:
            if a.shape[0] == 0:
                raise ValueError(f"{name} has no trials (shape {a.shape})")
            trials = [a[k] for k in range(a.shape[0])]
        else:
            raise ValueError(
                f"{name} must be (T, N), (K, T, N) or a list of (T_k, N) arrays, "
                f"got shape {a.shape}")
    N = trials[0].shape[1]
    if feature_dim is not None and N != feature_dim:
        raise ValueError(f"{name} has {N} columns; expected {feature_dim}")
    for k, t in enumerate(trials):
        label = name if len(trials) == 1 else f"{name}[{k}]"
        if t.shape[1] != N:
            raise ValueError(f"{label} has {t.shape[1]} columns; trial 0 has {N}")
        if N == 0:
            raise ValueError(f"{label} has no channels")
        if t.shape[0] < min_length:
            raise ValueError(f"{label} has {t.shape[0]} time steps; need at least {min_length}")
        if np.isinf(t).any():
            raise ValueError(f"{label} contains +-inf; use NaN to mark missing entries")
        if not allow_nan and np.isnan(t).any():
            raise ValueError(f"{label} contains NaN; missing values are not allowed here")
    return trials


def pack_trials(observations, inputs=None, *, name: str = "observations",
                min_length: int = 2, emission_dim: int | None = None,
                input_dim: int | None = None) -> TrialBatch:
    """Validate and pack observations (and optional inputs) into a :class:`TrialBatch`."""
    trials = as_trial_list(observations, name, min_length=min_length, feature_dim=emission_dim)
    K = len(trials)
    N = trials[0].shape[1]
    lengths = np.array([t.shape[0] for t in trials], dtype=np.int64)
    T = int(lengths.max())
    if inputs is None:
        q = 0 if input_dim is None else input_dim
        if q > 0:
            raise ValueError(f"inputs is required: the model has input_dim={q}")
        u_list = [np.zeros((n, 0)) for n in lengths]
    else:
        u_list = as_trial_list(inputs, "inputs", min_length=1, allow_nan=False,
                               feature_dim=input_dim)
        if len(u_list) != K:
            raise ValueError(f"inputs has {len(u_list)} trials; observations has {K}")
        for k, (u, n) in enumerate(zip(u_list, lengths)):
            if u.shape[0] != n:
                raise ValueError(f"inputs[{k}] has {u.shape[0]} time steps; "
                                 f"observations[{k}] has {n}")
        q = u_list[0].shape[1]
    y = np.zeros((K, T, N))
    mask = np.zeros((K, T, N), dtype=bool)
    valid = np.zeros((K, T), dtype=bool)
    u = np.zeros((K, T, q))
    for k, (t, uk) in enumerate(zip(trials, u_list)):
        n = t.shape[0]
        obs = ~np.isnan(t)
        y[k, :n] = np.where(obs, t, 0.0)
        mask[k, :n] = obs
        valid[k, :n] = True
        u[k, :n] = uk
    never = ~mask.any(axis=(0, 1))
    if never.any():
        raise ValueError(f"{name}: channel(s) {np.flatnonzero(never).tolist()} are missing "
                         "(NaN) at every time step; drop them")
    any_missing = bool((valid[..., None] & ~mask).any())
    return TrialBatch(y, mask, valid, lengths, u, any_missing, bool(len(set(lengths)) > 1))
