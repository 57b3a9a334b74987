"""Readers: NWB (pynwb), pynapple, Neo, .mat / .npz / .csv and the read() dispatcher.

Round trips on the place-cell recording (../shared/data, skipped when absent): write it with
each library, read it back through spikessm, and compare with binning the spike times
directly (np.histogram on the same edges). Small synthetic cases always run.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from spikessm.data import (
    SpikeTrials,
    bin_spike_times,
    from_neo,
    from_pynapple,
    read,
    read_csv,
    read_mat,
    read_npz,
    read_nwb,
    resample_covariate,
)
from spikessm.io import save

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PLACE = DATA / "place_cells" / "PlaceCellDataAnimal1.mat"
YU = DATA / "yu2009_pmd" / "ex2_rawspiketrains.mat"
WINDOWS = [(0.0, 300.0), (310.0, 650.0), (700.0, 1000.51), (1100.0, 1459.9)]
LABELS = ["a", "b", "a", "b"]
DT = 0.05


def histogram_counts(spikes, windows, dt):
    """Reference binning: np.histogram on edges start + i*dt, half-open (spikes at or
    beyond the last edge removed first, since np.histogram closes its last bin)."""
    out = []
    for a, b in windows:
        n = int(np.floor((b - a) / dt + 1e-9))
        edges = a + dt * np.arange(n + 1)
        out.append(np.column_stack([np.histogram(s[s < edges[-1]], edges)[0]
                                    for s in spikes]).astype(float))
    return out


def assert_counts(rec, ref):
    assert rec.n_trials == len(ref)
    for got, want in zip(rec.counts, ref):
        np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def place():
    if not PLACE.exists():
        pytest.skip(f"place-cell recording absent ({PLACE}); see ../shared/data/README.md")
    m = scipy.io.loadmat(PLACE, squeeze_me=True, struct_as_record=False)
    spikes = [np.atleast_1d(np.asarray(n.spikeTimes, dtype=float)) for n in m["neuron"]]
    xy = np.column_stack([m["x"], m["y"]]).astype(float)
    return {"spikes": spikes, "time": np.asarray(m["time"], dtype=float), "xy": xy,
            "ref": histogram_counts(spikes, WINDOWS, DT)}


# ----------------------------------------------------------------------------- NWB
def write_nwb(path, spikes, windows=None, labels=None, series=None, unit_ids=None):
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import Position, SpatialSeries
    nwb = NWBFile(session_description="spikessm test", identifier="spikessm-test",
                  session_start_time=datetime.datetime(2020, 1, 1,
                                                       tzinfo=datetime.timezone.utc))
    for i, s in enumerate(spikes):
        nwb.add_unit(spike_times=s, id=int(unit_ids[i]) if unit_ids is not None else i + 1)
    if windows is not None:
        if labels is not None:
            nwb.add_trial_column("condition", "task condition")
        for k, (a, b) in enumerate(windows):
            extra = {} if labels is None else {"condition": labels[k]}
            nwb.add_trial(start_time=a, stop_time=b, **extra)
    if series:
        beh = nwb.create_processing_module("behavior", "tracked behaviour")
        pos = Position(name="Position")
        for name, (t, v) in series.items():
            if name == "speed":                               # regular sampling, conversion
                beh.add(TimeSeries(name=name, data=v / 100.0, unit="m/s", conversion=100.0,
                                   starting_time=float(t[0]),
                                   rate=100.0))
            else:
                pos.add_spatial_series(SpatialSeries(name=name, data=v, timestamps=t,
                                                     reference_frame="arena centre"))
        if pos.spatial_series:
            beh.add(pos)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_nwb_place_cells_round_trip(place, tmp_path):
    path = write_nwb(tmp_path / "place.nwb", place["spikes"], WINDOWS, LABELS,
                     {"position": (place["time"], place["xy"])})
    rec = read_nwb(path, DT)
    assert_counts(rec, place["ref"])
    assert rec.trial_labels.tolist() == LABELS
    assert rec.unit_ids.tolist() == list(range(1, 50))
    np.testing.assert_array_equal(rec.trial_starts, [w[0] for w in WINDOWS])
    direct = resample_covariate(place["time"], place["xy"], rec)
    for got, want in zip(rec.covariates["position"], direct):
        np.testing.assert_array_equal(got, want)
    assert rec.provenance["reader"] == "read_nwb"
    assert len(rec.provenance["sha256"]) == 64
    assert rec.provenance["label_column"] == "condition"
    assert read(path, bin_width=DT).counts[2].tobytes() == rec.counts[2].tobytes()


def test_nwb_synthetic_options(tmp_path):
    rng = np.random.default_rng(0)
    spikes = [np.sort(rng.uniform(0, 4, n)) for n in (30, 1, 12)]
    t = np.arange(400) / 100.0                 # as NWB rebuilds it from starting_time, rate
    speed = np.sin(t)
    path = write_nwb(tmp_path / "s.nwb", spikes, [(0.0, 1.0), (2.0, 3.9)], None,
                     {"speed": (t, speed), "head": (t, np.column_stack([t, 2 * t]))},
                     unit_ids=[10, 20, 30])
    rec = read_nwb(path, 0.1, units=[30, 10], covariates=["speed"])
    assert rec.unit_ids.tolist() == [30, 10] and rec.trial_labels.tolist() == [0, 1]
    assert_counts(rec, histogram_counts([spikes[2], spikes[0]], [(0, 1), (2, 3.9)], 0.1))
    np.testing.assert_allclose(rec.covariates["speed"][0][:, 0],
                               resample_covariate(t, speed, rec)[0][:, 0], rtol=1e-12)
    whole = read_nwb(path, 0.1, trials=None, covariates=None)
    assert whole.n_trials == 1 and whole.counts[0].sum() == 43
    assert sorted(read_nwb(path, 0.1).covariates) == ["head", "speed"]
    with pytest.raises(ValueError, match="s.nwb: no time series 'lfp'"):
        read_nwb(path, 0.1, covariates=["lfp"])
    with pytest.raises(ValueError, match=r"units \[99\] not in"):
        read_nwb(path, 0.1, units=[99])
    with pytest.raises(ValueError, match="no column 'side'"):
        read_nwb(path, 0.1, label_column="side")
    bad = tmp_path / "bad.nwb"
    bad.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(ValueError, match="bad.nwb: not a readable NWB file"):
        read_nwb(bad, 0.1)
    truncated = tmp_path / "trunc.nwb"
    truncated.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ValueError, match="trunc.nwb"):
        read_nwb(truncated, 0.1)


def test_missing_optional_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)
    monkeypatch.setitem(sys.modules, "neo", None)
    with pytest.raises(ImportError, match=r'pip install "spikessm\[io\]"'):
        read_nwb(tmp_path / "x.nwb", 0.1)
    with pytest.raises(ImportError, match="from_neo needs the optional package 'neo'"):
        from_neo([], 0.1)


# ----------------------------------------------------------------------------- pynapple
def test_pynapple_place_cells_round_trip(place):
    import pynapple as nap  # declared in the io extra: never skipped
    group = nap.TsGroup({i + 1: nap.Ts(t=s) for i, s in enumerate(place["spikes"])},
                        time_support=nap.IntervalSet(0.0, 1460.0))
    epochs = nap.IntervalSet(start=[w[0] for w in WINDOWS], end=[w[1] for w in WINDOWS],
                             metadata={"condition": LABELS})
    pos = nap.TsdFrame(t=place["time"], d=place["xy"], columns=["x", "y"])
    rec = from_pynapple(group, DT, epochs=epochs, label_column="condition",
                        covariates={"position": pos})
    assert_counts(rec, place["ref"])
    assert rec.trial_labels.tolist() == LABELS and rec.unit_ids.tolist() == list(range(1, 50))
    np.testing.assert_array_equal(rec.covariates["position"][3],
                                  resample_covariate(place["time"], place["xy"], rec)[3])


def test_pynapple_synthetic():
    import pynapple as nap  # declared in the io extra: never skipped
    spikes = {3: np.array([0.05, 0.15, 0.95]), 8: np.array([0.5])}
    group = nap.TsGroup({k: nap.Ts(t=v) for k, v in spikes.items()},
                        time_support=nap.IntervalSet(0.0, 1.0))
    rec = from_pynapple(group, 0.1)                  # trials default to the time support
    assert rec.unit_ids.tolist() == [3, 8] and rec.lengths.tolist() == [10]
    assert_counts(rec, histogram_counts(list(spikes.values()), [(0, 1)], 0.1))
    as_dict = from_pynapple(spikes, 0.1, covariates={"v": (np.array([0.0, 1.0]),
                                                           np.array([0.0, 1.0]))})
    np.testing.assert_array_equal(as_dict.counts[0][:10], rec.counts[0])
    with pytest.raises(TypeError, match="TsGroup"):
        from_pynapple([1, 2], 0.1)


# ----------------------------------------------------------------------------- Neo
def test_neo_place_cells_round_trip(place):
    import neo  # declared in the io extra: never skipped
    import quantities as pq  # declared in the io extra: never skipped
    trains = [neo.SpikeTrain(s * pq.s, t_start=0.0 * pq.s, t_stop=1460.0 * pq.s,
                             unit_id=i + 1) for i, s in enumerate(place["spikes"])]
    rec = from_neo(trains, DT, trials=WINDOWS, labels=LABELS)
    assert_counts(rec, place["ref"])
    assert rec.unit_ids.tolist() == list(range(1, 50))
    in_ms = [neo.SpikeTrain(s * 1000 * pq.ms, t_stop=1460000 * pq.ms, name=f"cell{i}")
             for i, s in enumerate(place["spikes"][:5])]
    rec_ms = from_neo(in_ms, DT, trials=WINDOWS)
    back = [st.times.rescale("s").magnitude for st in in_ms]  # ms -> s as Neo converts
    assert_counts(rec_ms, histogram_counts(back, WINDOWS, DT))
    assert rec_ms.unit_ids.tolist() == [f"cell{i}" for i in range(5)]


def test_neo_segment_and_block():
    import neo  # declared in the io extra: never skipped
    import quantities as pq  # declared in the io extra: never skipped
    block = neo.Block()
    rng = np.random.default_rng(4)
    all_spikes = []
    for k, (a, cond) in enumerate([(0.0, "left"), (5.0, "right"), (9.0, "left")]):
        seg = neo.Segment(name=f"trial{k}", condition=cond)
        spikes = [np.sort(rng.uniform(a, a + 1.5, n)) for n in (6, 3)]
        for i, s in enumerate(reversed(spikes)):          # order differs from unit ids
            seg.spiketrains.append(neo.SpikeTrain(s * pq.s, t_start=a * pq.s,
                                                  t_stop=(a + 1.5) * pq.s,
                                                  unit_id=f"u{1 - i}"))
        seg.analogsignals.append(neo.AnalogSignal(
            np.arange(150.0)[:, None] + k, units="cm", sampling_rate=100 * pq.Hz,
            t_start=a * pq.s, name="pos"))
        block.segments.append(seg)
        all_spikes.append((a, spikes))
    rec = from_neo(block, 0.25)
    assert rec.trial_labels.tolist() == ["left", "right", "left"]
    assert rec.unit_ids.tolist() == ["u1", "u0"]
    for k, (a, spikes) in enumerate(all_spikes):
        np.testing.assert_array_equal(rec.counts[k], histogram_counts(
            [spikes[1], spikes[0]], [(a, a + 1.5)], 0.25)[0])
        np.testing.assert_allclose(rec.covariates["pos"][k][:, 0],
                                   np.arange(12.0, 150, 25) + k)
    seg_rec = from_neo(block.segments[1], 0.25)
    np.testing.assert_array_equal(seg_rec.counts[0], rec.counts[1])
    with pytest.raises(TypeError, match="Block, Segment"):
        from_neo([1.0], 0.1)


# ----------------------------------------------------------------------------- files
def test_mat_layouts_real(place):
    rec = read(PLACE)                                # bins = the 30 Hz tracker samples
    t = place["time"]
    edges = np.append(t, t[-1] + (t[-1] - t[0]) / (t.size - 1))
    ref = np.column_stack([np.histogram(s, edges)[0] for s in place["spikes"]])
    np.testing.assert_array_equal(rec.counts[0], ref)
    assert rec.counts[0].shape == (43799, 49)
    np.testing.assert_array_equal(rec.covariates["position"][0], place["xy"])
    assert rec.provenance["layout"] == "place_cells" and rec.provenance["reader"] == "read_mat"


def test_yu2009_layout():
    if not YU.exists():
        pytest.skip(f"yu2009 recording absent ({YU})")
    rec = read(YU, bin_width=0.025)
    D = scipy.io.loadmat(YU, squeeze_me=True, struct_as_record=False)["D"]
    assert rec.n_trials == 112 and rec.n_units == 61
    for k in (0, 57, 111):
        x = D[k].data.astype(float)
        n = x.shape[1] // 25
        np.testing.assert_array_equal(rec.counts[k],
                                      x[:, : n * 25].reshape(61, n, 25).sum(axis=2).T)
    assert sorted(set(rec.trial_labels.tolist())) == ["reach1", "reach2"]
    with pytest.raises(ValueError, match="multiple of 1 ms"):
        read(YU, bin_width=0.0105)


def test_mat_npz_csv_synthetic(tmp_path):
    rng = np.random.default_rng(1)
    counts = rng.poisson(1.0, (20, 3)).astype(float)
    scipy.io.savemat(tmp_path / "c.mat", {"counts": counts, "bin_width": 0.01,
                                          "unit_ids": np.array([4, 5, 6])})
    rec = read(tmp_path / "c.mat")
    np.testing.assert_array_equal(rec.counts[0], counts)
    assert rec.bin_width == 0.01 and rec.unit_ids.tolist() == [4, 5, 6]

    spikes = [np.sort(rng.uniform(0, 2, n)) for n in (5, 9)]
    cells = np.empty(2, dtype=object)
    cells[:] = spikes
    scipy.io.savemat(tmp_path / "s.mat", {"spike_times": cells})
    rec = read_mat(tmp_path / "s.mat", bin_width=0.1, trials=[(0, 1), (1, 2)])
    assert_counts(rec, histogram_counts(spikes, [(0, 1), (1, 2)], 0.1))
    with pytest.raises(ValueError, match="need bin_width"):
        read_mat(tmp_path / "s.mat")

    np.savez(tmp_path / "c.npz", counts=np.stack([counts, counts]), bin_width=0.01,
             trial_labels=np.array(["x", "y"]))
    rec = read(tmp_path / "c.npz")
    assert rec.n_trials == 2 and rec.trial_labels.tolist() == ["x", "y"]
    units = np.concatenate([np.full(s.size, i) for i, s in enumerate(spikes)])
    np.savez(tmp_path / "s.npz", spike_times=np.concatenate(spikes), spike_units=units,
             trials=np.array([[0.0, 2.0]]))
    assert_counts(read(tmp_path / "s.npz", bin_width=0.2),
                  histogram_counts(spikes, [(0, 2)], 0.2))

    lines = ["unit,time"] + [f"n{i},{float(t)!r}" for i, s in enumerate(spikes) for t in s]
    (tmp_path / "s.csv").write_text("\n".join(lines))
    rec = read(tmp_path / "s.csv", bin_width=0.1, trials=[(0, 2)])
    assert rec.unit_ids.tolist() == ["n0", "n1"]
    assert_counts(rec, histogram_counts(spikes, [(0, 2)], 0.1))
    table = "trial,a,b\n" + "\n".join(f"{k},{c[0]:g},{c[1]:g}" for k, c in
                                       zip([1] * 5 + [2] * 3, counts[:8]))
    (tmp_path / "c.csv").write_text(table)
    rec = read_csv(tmp_path / "c.csv", bin_width=0.02)
    assert rec.lengths.tolist() == [5, 3] and rec.unit_ids.tolist() == ["a", "b"]
    np.testing.assert_array_equal(rec.counts[1], counts[5:8, :2])

    assert read(tmp_path / "c.npz", layout="counts").n_trials == 2
    for f, layout, match in [("c.npz", "spike_times", "match no layout"),
                             ("c.npz", "place_cells", "does not apply"),
                             ("c.csv", "spike_times", "no time column")]:
        with pytest.raises(ValueError, match=match):
            read(tmp_path / f, layout=layout, bin_width=0.1)
    (tmp_path / "x.nwb").write_bytes(b"")
    with pytest.raises(ValueError, match="not NWB"):
        read(tmp_path / "x.nwb", bin_width=0.1, layout="counts")

    saved = SpikeTrials(counts, 0.01)
    save(tmp_path / "saved.npz", saved)
    assert read(tmp_path / "saved.npz").counts[0].tobytes() == counts.tobytes()


def test_mat_v73_counts(tmp_path):
    import h5py  # declared in the io extra: never skipped
    path = tmp_path / "v73.mat"
    counts = np.arange(12.0).reshape(4, 3)
    with h5py.File(path, "w", userblock_size=512) as f:
        f["counts"] = counts.T                     # MATLAB stores column-major
        f["bin_width"] = np.array([[0.05]])
    header = b"MATLAB 7.3 MAT-file, created by spikessm tests".ljust(116) + b"\0" * 8
    with open(path, "r+b") as f:
        f.write(header + b"\x00\x02IM")
    rec = read_mat(path)
    np.testing.assert_array_equal(rec.counts[0], counts)
    assert rec.bin_width == 0.05


@pytest.mark.parametrize("name, content, match", [
    ("bad.mat", b"MATLAB 5.0 MAT-file" + b"\0" * 50, "bad.mat: not a readable MATLAB"),
    ("empty.mat", None, r"empty.mat: cannot tell the layout"),
    ("pickled.npz", "pickle", "pickled.npz: holds pickled"),
    ("trunc.npz", "trunc", "trunc.npz: damaged"),
    ("other.npz", "other", "other.npz: members"),
    ("fit.npz", "fit", "fit.npz: holds a saved PoissonHMMParams"),
    ("bad.csv", b"unit,time\na,0.1\nb,oops\n", "bad.csv: column 'time'"),
    ("x.json", b"{}", "unknown file type"),
])
def test_malformed_files_raise_value_error_naming_the_file(tmp_path, name, content, match):
    from spikessm import PoissonHMMParams
    path = tmp_path / name
    if content is None:
        scipy.io.savemat(path, {"something": np.ones(3)})
    elif content == "pickle":
        np.savez(path, counts=np.array([{"a": 1}], dtype=object))
    elif content == "trunc":
        np.savez(path, counts=np.ones((50, 4)), bin_width=0.1)
        path.write_bytes(path.read_bytes()[:900])
    elif content == "other":
        np.savez(path, q=np.ones(3))
    elif content == "fit":
        save(path, PoissonHMMParams(np.ones(2) / 2, np.eye(2), np.ones((2, 3))))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read(path, bin_width=0.1) if name.endswith((".csv", ".json")) else read(path)


def test_truncated_mat_file(tmp_path):
    full = tmp_path / "full.mat"
    scipy.io.savemat(full, {"counts": np.arange(4000.0).reshape(1000, 4), "bin_width": 0.1})
    raw = full.read_bytes()
    for cut in (100, len(raw) // 2, len(raw) - 8):
        bad = tmp_path / f"cut{cut}.mat"
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.mat"):
            read_mat(bad)


def test_read_equals_direct_binning_for_an_npz_spike_table(tmp_path):
    rng = np.random.default_rng(2)
    spikes = [np.sort(rng.uniform(0, 3, n)) for n in (40, 2, 17)]
    units = np.concatenate([np.full(s.size, i) for i, s in enumerate(spikes)])
    np.savez(tmp_path / "t.npz", spike_times=np.concatenate(spikes), spike_units=units)
    direct = bin_spike_times(spikes, 0.05, trials=[(0.5, 2.5)])
    via = read_npz(tmp_path / "t.npz", bin_width=0.05, trials=[(0.5, 2.5)])
    assert via.counts[0].tobytes() == direct.counts[0].tobytes()
    assert via.provenance["sha256"] and via.provenance["reader"] == "read_npz"


def test_event_tables_with_time_units(tmp_path):
    times_ms = np.array([5.0, 12.5, 130.0, 131.0, 999.0])
    (tmp_path / "ev.tsv").write_text("\tTime (ms)\tAmplitude\n" + "".join(
        f"{i}\t{t}\t{10 + i}\n" for i, t in enumerate(times_ms)))
    rec = read(tmp_path / "ev.tsv", bin_width=0.1)
    assert rec.n_units == 1 and rec.provenance["time_column"] == "Time (ms)"
    assert_counts(rec, histogram_counts([times_ms / 1000], [(0.0, 1.0)], 0.1))
    mepsc = DATA / "mepsc" / "epsc2.txt"
    if mepsc.exists():
        import pandas as pd
        table = pd.read_csv(mepsc, sep="\t")
        rec = read(mepsc, bin_width=1.0)
        assert rec.counts[0].sum() == len(table)           # every event counted once
        assert rec.lengths[0] == int(table["Time (ms)"].max() // 1000) + 1
