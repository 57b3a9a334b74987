"""Binning spike times, aligning covariates, and the SpikeTrials container."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikessm.data import (
    SpikeTrials,
    as_trial_list,
    bin_spike_times,
    pack_trials,
    rebin_counts,
    resample_covariate,
)
from spikessm.io import load, save


def dense_counts(spikes, start, n, dt):
    """Reference: spike s is in bin i iff start + i*dt <= s < start + (i+1)*dt, evaluated
    by brute force over every (spike, bin) pair."""
    lo = start + dt * np.arange(n)
    hi = start + dt * np.arange(1, n + 1)
    return np.column_stack([((np.asarray(s)[:, None] >= lo) & (np.asarray(s)[:, None] < hi))
                            .sum(axis=0) for s in spikes]).astype(float)


# ----------------------------------------------------------------------------- binning
def test_ragged_windows_match_brute_force():
    rng = np.random.default_rng(0)
    spikes = [np.sort(rng.uniform(-1, 11, size=n)) for n in (0, 5, 80, 300)]
    windows = [(0.0, 2.0), (1.5, 5.25), (7.1, 7.6), (-1.0, 0.5), (9.0, 11.0)]
    for dt in (0.001 * 7, 0.05, 0.25):
        rec = bin_spike_times(spikes, dt, trials=windows, labels=list("abcde"))
        assert rec.n_trials == 5 and rec.n_units == 4
        for k, (a, b) in enumerate(windows):
            n = int(np.floor((b - a) / dt + 1e-9))
            np.testing.assert_array_equal(rec.counts[k], dense_counts(spikes, a, n, dt))
        np.testing.assert_array_equal(rec.trial_starts, [w[0] for w in windows])
        assert rec.trial_labels.tolist() == list("abcde")


def test_edges_are_half_open_and_a_spike_at_stop_is_dropped():
    rec = bin_spike_times([[0.0, 0.1, 0.2, 0.3], [0.29999]], 0.1, trials=[(0.0, 0.3)])
    np.testing.assert_array_equal(rec.counts[0], [[1, 0], [1, 0], [1, 1]])
    # a partial trailing bin is dropped with its spikes
    rec = bin_spike_times([[0.05, 0.26]], 0.1, trials=[(0.0, 0.29)])
    np.testing.assert_array_equal(rec.counts[0][:, 0], [1, 0])


def test_default_window_and_dict_input():
    rec = bin_spike_times({"u7": [0.31, 1.0], "u2": [0.05]}, 0.25)
    assert rec.unit_ids.tolist() == ["u7", "u2"]
    assert rec.trial_starts.tolist() == [0.0]
    np.testing.assert_array_equal(rec.counts[0].sum(axis=0), [2, 1])     # last spike kept
    assert rec.lengths.tolist() == [5]
    neg = bin_spike_times([[-0.3, 0.2]], 0.1)
    assert neg.trial_starts[0] == -0.3 and neg.counts[0].sum() == 2
    assert bin_spike_times([[0.2]], 0.1, start=0.0, stop=1.0).lengths.tolist() == [10]


def test_input_is_not_modified():
    s = np.array([0.3, 0.1, 0.2])
    before = s.copy()
    bin_spike_times([s], 0.1, trials=[(0, 1)])
    np.testing.assert_array_equal(s, before)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(spike_times=[[0.1, np.nan]]), ValueError, "NaN or inf"),
    (dict(spike_times=np.array([0.1, 0.2])), TypeError, "list of 1-D arrays"),
    (dict(spike_times=[]), ValueError, "empty"),
    (dict(spike_times=[[[0.1]]]), ValueError, "must be 1-D"),
    (dict(trials=[(1.0, 0.5)]), ValueError, "stop <= start"),
    (dict(trials=[(0.0, 0.05)]), ValueError, "shorter than one bin"),
    (dict(trials=[(0, 1)], start=0.0), ValueError, "not both"),
    (dict(trials=[(0, 1, 2)]), ValueError, r"\(start, stop\) pairs"),
    (dict(bin_width=0.0), ValueError, "bin_width"),
    (dict(labels=["a", "b"]), ValueError, "trial_labels"),
    (dict(unit_ids=[1, 1]), ValueError, "unit_ids"),
])
def test_bad_binning_arguments(kwargs, err, match):
    args = dict(spike_times=[[0.1], [0.2]], bin_width=0.1)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        bin_spike_times(args.pop("spike_times"), args.pop("bin_width"), **args)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 70), st.floats(0.01, 0.99)), max_size=60),
       st.integers(1, 6), st.sampled_from([0.01, 0.1, 0.3]))
def test_property_counts_conserved_and_rebin_consistent(grid, factor, dt):
    """Spikes kept away from bin edges (bin m + fraction): every spike inside the window is
    counted once, and summing fine bins equals binning with a factor-times wider bin."""
    T = 10 * factor
    times = [(m + f) * dt for m, f in grid]
    spikes = [times, times[::2]]
    rec = bin_spike_times(spikes, dt, trials=[(0.0, T * dt)])
    inside = [sum(0 <= m < T for m, _ in g) for g in (grid, grid[::2])]
    np.testing.assert_array_equal(rec.counts[0].sum(axis=0), inside)
    coarse = bin_spike_times(spikes, dt * factor, trials=[(0.0, T * dt)])
    np.testing.assert_array_equal(rec.rebin(factor).counts[0], coarse.counts[0])


# ----------------------------------------------------------------------------- covariates
def _rec(windows=((0.0, 1.0), (2.0, 2.5)), dt=0.1):
    return bin_spike_times([[0.5]], dt, trials=list(windows))


def test_mean_resampling_matches_a_loop_and_falls_back_to_interpolation():
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 3, 400))
    v = np.column_stack([np.sin(t), rng.standard_normal(400)])
    v[5, 1] = np.nan
    rec = _rec()
    out = resample_covariate(t, v, rec, method="mean")
    for k in range(rec.n_trials):
        e = rec.bin_edges(k)
        for i in range(len(e) - 1):
            inside = (t >= e[i]) & (t < e[i + 1])
            for j in range(2):
                vals = v[inside, j]
                vals = vals[~np.isnan(vals)]
                ref = vals.mean() if inside.any() else np.interp(
                    0.5 * (e[i] + e[i + 1]), t, v[:, j])
                np.testing.assert_allclose(out[k][i, j], ref, rtol=1e-12, atol=1e-15)
    sparse_t = np.array([0.0, 0.45, 1.0, 2.0, 3.0])   # most bins empty -> interpolation
    out = resample_covariate(sparse_t, 2 * sparse_t, rec)
    np.testing.assert_allclose(out[0][:5, 0], [0.0, 0.3, 0.5, 0.7, 0.9], rtol=1e-12)


def test_linear_nearest_and_outside():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.array([0.0, 10.0, 20.0, 30.0])
    rec = _rec(windows=((0.0, 1.0),), dt=0.25)
    np.testing.assert_allclose(resample_covariate(t, v, rec, method="linear")[0][:, 0],
                               [1.25, 3.75, 6.25, 8.75])
    np.testing.assert_array_equal(resample_covariate(t, v, rec, method="nearest")[0][:, 0],
                                  [0, 0, 10, 10])
    late = _rec(windows=((2.5, 3.5),), dt=0.25)
    with pytest.raises(ValueError, match="2 bins outside"):
        resample_covariate(t, v, late)
    got = resample_covariate(t, v, late, outside="nan", method="linear")[0][:, 0]
    np.testing.assert_allclose(got[:2], [26.25, 28.75])
    assert np.isnan(got[2:]).all()
    np.testing.assert_array_equal(resample_covariate(t, v, late, outside="edge",
                                                     method="nearest")[0][:, 0],
                                  [30, 30, 30, 30])


def test_covariates_through_bin_spike_times_and_bad_input():
    t = np.linspace(0, 3, 301)
    rec = bin_spike_times([[0.5]], 0.1, trials=[(0, 1), (2, 2.5)],
                          covariates={"pos": (t, np.column_stack([t, -t]))})
    assert [a.shape for a in rec.covariates["pos"]] == [(10, 2), (5, 2)]
    np.testing.assert_allclose(rec.inputs()[1][:, 0], rec.bin_centres(1), atol=0.006)
    for bad, match in [((t[::-1], t), "non-decreasing"), ((t, t[:-1]), "values must be"),
                       ((t, np.where(t > 1, np.inf, t)), r"\+-inf")]:
        with pytest.raises(ValueError, match=match):
            resample_covariate(*bad, rec)
    with pytest.raises(ValueError, match="method"):
        resample_covariate(t, t, rec, method="cubic")


# ----------------------------------------------------------------------------- container
def _container():
    rng = np.random.default_rng(5)
    counts = [rng.poisson(2.0, (T, 3)).astype(float) for T in (6, 4, 6)]
    return SpikeTrials(counts, 0.02, unit_ids=["a", "b", "c"], trial_labels=["x", "y", "x"],
                       covariates={"speed": [np.ones((T, 1)) * k for k, T in
                                             enumerate((6, 4, 6))]},
                       provenance={"source": "test"})


def test_container_defaults_validation_and_read_only():
    rec = SpikeTrials(np.zeros((2, 5, 3)), 0.01)
    assert rec.unit_ids.tolist() == [0, 1, 2] and rec.trial_labels.tolist() == [0, 1]
    np.testing.assert_allclose(rec.trial_starts, [0.0, 0.05])
    assert rec.to_array().shape == (2, 5, 3)
    with pytest.raises(ValueError, match="read-only"):
        rec.counts[0][0, 0] = 1.0
    user = np.ones((4, 2))
    SpikeTrials(user, 0.1).counts[0]
    user[0, 0] = 5.0                                   # the container holds its own copy
    assert SpikeTrials(np.ones((4, 2)), 0.1).counts[0][0, 0] == 1.0
    for kwargs, match in [(dict(counts=-np.ones((3, 2))), "negative"),
                          (dict(counts=np.array([[np.inf]])), "inf"),
                          (dict(trial_labels=[1, 2]), "length 1"),
                          (dict(trial_starts=[np.nan]), "finite"),
                          (dict(covariates={"v": np.ones((2, 1))}), "has 2 bins"),
                          (dict(bin_width=-1.0), "bin_width")]:
        args = dict(counts=np.ones((3, 2)), bin_width=0.1)
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            SpikeTrials(**args)
    with pytest.raises(TypeError, match="unit_ids"):
        SpikeTrials(np.ones((3, 2)), 0.1, unit_ids=[0.5, 1.5])
    with pytest.raises(ValueError, match="differ in length"):
        _container().to_array()


def test_select_split_rebin_inputs():
    rec = _container()
    sub = rec.select(labels="x", unit_ids=["c", "a"])
    assert sub.n_trials == 2 and sub.unit_ids.tolist() == ["c", "a"]
    np.testing.assert_array_equal(sub.counts[1], rec.counts[2][:, [2, 0]])
    assert sub.covariates["speed"][1][0, 0] == 2.0
    np.testing.assert_array_equal(rec.select([True, False, True]).trial_starts,
                                  rec.trial_starts[[0, 2]])
    assert rec.select(slice(1, None), units=[1]).counts[0].shape == (4, 1)
    with pytest.raises(ValueError, match="not found"):
        rec.select(labels="z")
    with pytest.raises(ValueError, match="positions"):
        rec.select([5])
    train, test = rec.split(0.5, seed=1)
    assert train.n_trials + test.n_trials == 3
    assert sorted(train.trial_starts.tolist() + test.trial_starts.tolist()) == \
        sorted(rec.trial_starts.tolist())
    assert set(train.trial_labels.tolist()) == {"x", "y"}        # stratified
    coarse = rec.rebin(2)
    np.testing.assert_array_equal(coarse.counts[1], rebin_counts(rec.counts[1], 2))
    assert coarse.bin_width == 0.04 and coarse.covariates["speed"][2][0, 0] == 2.0
    assert [a.shape for a in rec.inputs("speed")] == [(6, 1), (4, 1), (6, 1)]
    assert "3 trials x 3 units" in repr(rec) and "speed" in repr(rec)


def test_models_accept_the_container():
    rec = _container()
    trials = as_trial_list(rec, "spikes")
    assert all(np.array_equal(a, b) for a, b in zip(trials, rec.counts))
    trials[0][0, 0] = -99.0                                   # copies, not views
    assert rec.counts[0][0, 0] != -99.0
    a, b = pack_trials(rec), pack_trials(list(rec.counts))
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    with pytest.raises(ValueError, match="expected 4"):
        as_trial_list(rec, feature_dim=4)


def test_container_saves_and_loads_bit_identically(tmp_path):
    rec = _container()
    save(tmp_path / "rec.npz", rec)
    back = load(tmp_path / "rec.npz")
    assert isinstance(back, SpikeTrials)
    for x, y in zip(rec.counts + rec.covariates["speed"], back.counts + back.covariates["speed"]):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    for f in ("unit_ids", "trial_labels", "trial_starts"):
        assert np.array_equal(getattr(rec, f), getattr(back, f))
        assert getattr(rec, f).dtype == getattr(back, f).dtype
    assert back.provenance == rec.provenance and back.bin_width == rec.bin_width
