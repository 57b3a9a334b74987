"""Saved fits: bit-identical round trips, never unpickling, clean errors, atomic writes."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from bitwise import assert_same
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import spikessm
from spikessm.io import (
    FORMAT_VERSION,
    atomic_write,
    load,
    load_metadata,
    safe_output_path,
    save,
)


# ----------------------------------------------------------------------------- helpers
def roundtrip(tmp_path, obj, name="obj.npz", **kw):
    path = tmp_path / name
    save(path, obj, **kw)
    return load(path)


_CLASSES = {n: getattr(spikessm, n) for n in spikessm.__all__
            if isinstance(getattr(spikessm, n), type)}
_RESULTS = sorted(n for n, c in _CLASSES.items() if dataclasses.is_dataclass(c))


def _fill(cls, rng, depth=0):
    """An instance of a spikessm result dataclass with every field filled per its annotation:
    arrays with NaN, -0.0, odd shapes; nested results; lists of ragged arrays. Dataclasses
    that validate their fields get a hand-made valid instance (``_VALID``)."""
    if cls.__name__ in _VALID:
        return _VALID[cls.__name__]()
    return cls(**{f.name: _value(str(f.type), rng, depth) for f in dataclasses.fields(cls)})


def _value(ann: str, rng, depth):
    for name, c in _CLASSES.items():
        if ann.startswith(name) and dataclasses.is_dataclass(c):
            return _fill(c, rng, depth + 1)
    if "ndarray" in ann:
        a = rng.standard_normal((3, 2))
        a[0, 1], a[2, 0] = np.nan, -0.0
        return a
    if ann.startswith("tuple[") and depth < 2:
        inner = ann[6:].split(",")[0]
        return (_value(inner, rng, depth + 1), _value(inner, rng, depth + 1))
    return {"float": float("nan"), "int": 7, "bool": True, "str": "sqrt_lds",
            "list": [rng.standard_normal((4, 2)), rng.standard_normal((2, 2))],
            "tuple": (rng.standard_normal(3), np.float64(-0.0), "x"),
            "object": (_fill(_CLASSES["PLDSFitResult"], rng, depth + 1) if depth < 2
                       else None)}.get(ann.split(" ")[0].split("[")[0], np.int64(3))


# parameter dataclasses that check their own fields (NaN or odd shapes are refused)
def _lgssm_params():
    return spikessm.LGSSMParams(
        A=np.array([[0.9, -0.0], [1e-300, 0.5]]), b=np.array([-0.0, 0.1]),
        B=np.zeros((2, 1)), Q=np.array([[0.3, 0.1], [0.1, 0.2 + 1e-17]]),
        C=np.array([[1.0, 2.0], [-3.0, 1e-300], [0.5, 0.25]]), d=np.array([1.0, -0.0, 2.0]),
        D=np.ones((3, 1)), R=np.diag([0.5, 1.0, 2.0]), m0=np.zeros(2), P0=np.eye(2))


def _plds_params():
    return spikessm.PLDSParams(
        np.array([[0.9, -0.0], [1e-300, 0.5]]), np.zeros(2), np.array([[0.3, 0.1], [0.1, 0.2]]),
        np.array([[1.0, 2.0], [-3.0, 1e-300]]), np.array([-0.0, 2.0]), np.ones((2, 1)),
        np.zeros((2, 0)), np.ones((1, 2)), np.array([0.5]), np.array([[2.0]]), np.zeros(2),
        np.eye(2), 0.01)


_VALID = {"PoissonHMMParams": lambda: spikessm.PoissonHMMParams(
    np.array([0.25, 0.75]), np.array([[1.0, 0.0], [0.5, 0.5]]),
    np.array([[-0.0, 2.5, 1e-300], [3.0, 0.0, 7.0]])),
    "LGSSMParams": _lgssm_params, "PLDSParams": _plds_params,
    "SharedLGSSMParams": lambda: spikessm.SharedLGSSMParams(
        (_lgssm_params(), _lgssm_params()), True, False),
    "SharedPLDSParams": lambda: spikessm.SharedPLDSParams(
        (_plds_params(), _plds_params()), True, True)}


# ----------------------------------------------------------------------------- round trips
def _examples():
    """Hand-made instances of exported dataclasses whose constructors validate their input
    (the annotation-driven filler cannot make them)."""
    from spikessm.data import SpikeTrials
    from spikessm.models.glm.bases import BSpline1D, GaussianBumps, TensorProduct, Zernike
    spline = BSpline1D(np.linspace(0.0, 1.0, 9), degree=3)
    return {
        "BSpline1D": spline,
        "GaussianBumps": GaussianBumps(np.array([[0.0, 0.5], [-0.25, 1.0]]), 0.3),
        "TensorProduct": TensorProduct((spline, BSpline1D(np.linspace(-1.0, 1.0, 7), 2))),
        "Zernike": Zernike(4, radius=2.5, center=(0.1, -0.2)),
        "SpikeTrials": SpikeTrials([np.ones((5, 2)), np.array([[np.nan, 0.0]])], 0.02,
                                   unit_ids=["a", "b"], trial_labels=[3, 4],
                                   covariates={"x": [np.zeros((5, 1)), -np.ones((1, 1))]},
                                   provenance={"source": "test"}),
    }


@pytest.mark.parametrize("name", _RESULTS)
def test_every_exported_result_round_trips_bit_identically(tmp_path, name):
    examples = _examples()
    if name in examples:
        obj = examples[name]
    else:
        try:
            obj = _fill(_CLASSES[name], np.random.default_rng(0))
        except (TypeError, ValueError) as exc:
            pytest.fail(f"{name} validates its fields ({exc}); add an instance to _examples()")
    back = roundtrip(tmp_path, obj)
    assert_same(obj, back)


def test_models_round_trip_with_their_constructor_arguments(tmp_path):
    from spikessm import LinearGaussianSSM, PoissonHMM, PoissonLDS
    mask = np.array([[True, True], [False, True]])
    models = [
        PoissonHMM(2, dt=0.01, transition_mask=mask, transition_prior=2.0,
                   rate_prior=(1.5, np.array([0.1, 0.2]))),
        PoissonHMM(3, 0.005),
        LinearGaussianSSM(2, 5, 1, dynamics_covariance="diagonal"),
        LinearGaussianSSM(3),
        PoissonLDS(2, 0.02, n_covariates=1, history=3, gaussian_covariance="full"),
    ]
    for name, args in [("SharedPoissonLDS", (2, 0.05)), ("SharedLinearGaussianSSM", (3,))]:
        if name in _CLASSES:                                 # models exported since
            models.append(_CLASSES[name](*args))
    back = roundtrip(tmp_path, models)
    assert_same(models, back)
    assert back[0].rate_prior[1].dtype == np.float64


def test_a_model_that_hides_its_constructor_arguments_is_refused_clearly(tmp_path):
    class Hidden(spikessm.PoissonHMM):                        # stores dt under another name
        __module__ = "spikessm.models.poisson_hmm.model"
        __qualname__ = "Hidden"

        def __init__(self, n_states, step):
            super().__init__(n_states, step)
    with pytest.raises(TypeError, match="no attribute 'step' matching its constructor"):
        save(tmp_path / "h.npz", Hidden(2, 0.1))
    assert not list(tmp_path.iterdir())


def test_real_hmm_fit_round_trips(tmp_path):
    from spikessm import PoissonHMM
    model = PoissonHMM(2, dt=0.01)
    truth = model.random_params(seed=0, n_channels=3, mean_rate=20.0)
    _, y = model.sample(truth, n_trials=2, n_bins=60, seed=1)
    fit = model.fit(y, max_iter=5, progress=False)
    back = roundtrip(tmp_path, {"model": model, "fit": fit})
    assert_same({"model": model, "fit": fit}, back)
    assert back["model"].score(y, back["fit"].params) == model.score(y, fit.params)


def test_plain_values_round_trip(tmp_path):
    f = np.arange(12.0).reshape(3, 4)
    obj = {
        "floats": [0.1, -0.0, float("nan"), float("inf"), -float("inf"), 1e308, 5e-324],
        "ints": [0, -3, 2**70], "bools": (True, False), "none": None, "text": "ü ✓",
        "complex": 1.5 - 2j, "bytes": b"\x00\xffab",
        "np_scalars": [np.float32(1.5), np.int8(-3), np.bool_(True), np.uint64(2**63),
                       np.complex128(1j), np.str_("ab"), np.float64("nan")],
        "arrays": [np.array([], dtype=np.int16).reshape(0, 3), np.array(3.0),
                   np.asfortranarray(f), f[:, ::2], np.array(["a", "bcd"]),
                   np.array([b"x", b"yz"]), np.array(["2020-01-01"], dtype="datetime64[ns]"),
                   np.array([1 + 2j], dtype=np.complex64), np.ones((2, 0, 4), dtype=bool)],
        1: "int key", (2, "a"): "tuple key", None: "none key", 2.5: "float key",
        "nested": {"deep": [[{"x": (np.int32(1),)}]]},
    }
    back = roundtrip(tmp_path, obj)
    assert_same(obj, back)
    assert back["arrays"][2].flags.f_contiguous


def test_shared_arrays_stay_shared_and_are_stored_once(tmp_path):
    a = np.random.default_rng(1).standard_normal((50, 50))
    back = roundtrip(tmp_path, {"x": a, "y": a, "z": [a]})
    assert back["x"] is back["y"] and back["y"] is back["z"][0]
    assert np.array_equal(back["x"], a)
    with zipfile.ZipFile(tmp_path / "obj.npz") as z:
        assert sorted(z.namelist()) == ["__meta__.npy", "a0.npy"]


@settings(max_examples=40, deadline=None)
@given(arr=hnp.arrays(dtype=st.sampled_from([np.float64, np.float32, np.int64, np.uint8,
                                               np.bool_, np.complex128]),
                      shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
       label=st.text(max_size=8), x=st.floats(allow_nan=True, allow_infinity=True))
def test_property_arrays_and_scalars_round_trip(tmp_path_factory, arr, label, x):
    tmp = tmp_path_factory.mktemp("prop")
    obj = (arr, {label: x}, [x, label])
    assert_same(obj, roundtrip(tmp, obj))


def test_metadata_records_versions_and_provenance(tmp_path):
    path = tmp_path / "m.npz"
    prov = {"file": "rec.nwb", "sha256": "ab" * 32, "bin_width": np.float64(0.01),
            "units": np.arange(3)}
    save(path, spikessm.PoissonHMMParams(np.ones(2) / 2, np.eye(2), np.ones((2, 3))),
         provenance=prov)
    meta = load_metadata(path)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["spikessm_version"] == spikessm.__version__
    assert meta["class"] == "spikessm.models.poisson_hmm.params:PoissonHMMParams"
    assert meta["provenance"] == {"file": "rec.nwb", "sha256": "ab" * 32, "bin_width": 0.01,
                                  "units": [0, 1, 2]}
    assert meta["created"].endswith("+00:00")


def test_compressed_files_load_identically(tmp_path):
    a = np.zeros((200, 50))
    back = roundtrip(tmp_path, a, compress=True)
    assert_same(a, back)
    assert os.path.getsize(tmp_path / "obj.npz") < a.nbytes / 10


# ----------------------------------------------------------------------------- refusals
@dataclasses.dataclass(frozen=True)
class _Foreign:
    x: int


@pytest.mark.parametrize("obj, what", [
    (np.array([1, "a", None], dtype=object), "dtype object"),
    (_Foreign(1), "not a spikessm class"),
    ({"f": len}, "code, not data"),
    ({"s": {1, 2}}, "not supported"),
    ({"k": {b"ab": 1}}, "dict key"),
])
def test_save_refuses_what_would_need_pickle(tmp_path, obj, what):
    with pytest.raises(TypeError, match=what):
        save(tmp_path / "x.npz", obj)
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------- bad files
def _good_file(tmp_path):
    path = tmp_path / "good.npz"
    save(path, _fill(_CLASSES["HMMFitResult"], np.random.default_rng(2)))
    return path


def _rewrite(path, meta_edit=None, extra=None):
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    meta = json.loads(members["__meta__"].tobytes())
    if meta_edit:
        meta_edit(meta)
    members["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    members.update(extra or {})
    bad = path.with_name("bad.npz")
    np.savez(bad, **members)
    return bad


def test_truncated_files_raise_value_error_naming_the_file(tmp_path):
    path = _good_file(tmp_path)
    raw = path.read_bytes()
    for cut in (0, 10, len(raw) // 3, len(raw) // 2, len(raw) - 30, len(raw) - 1):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.npz"):
            load(bad)


def test_corrupted_bytes_are_detected(tmp_path):
    path = _good_file(tmp_path)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:               # flip one byte inside the first array
        info = z.getinfo("a0.npy")
    pos = info.header_offset + 30 + len(info.filename) + 128 + 3
    raw[pos] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="flipped.npz.*(CRC|damaged)"):
        load(bad)


def test_pickled_object_arrays_are_refused_without_unpickling(tmp_path, monkeypatch):
    bad = tmp_path / "pickled.npz"
    np.savez(bad, __meta__=np.frombuffer(b"{}", dtype=np.uint8),
             a0=np.array([{"evil": 1}], dtype=object))

    def boom(*a, **k):
        raise AssertionError("unpickling attempted")
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)
    with pytest.raises(ValueError, match="pickled.npz.*never unpickles"):
        load(bad)
    raw = tmp_path / "raw.pkl"                     # a bare pickle is not a zip either
    raw.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="raw.pkl.*not an .npz"):
        load(raw)
    assert_same(load(_good_file(tmp_path)).params.rates.dtype, np.dtype(np.float64))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=FORMAT_VERSION + 1, spikessm_version="9.0"),
     r"spikessm 9\.0 in format version 2.*upgrade"),
    (lambda m: m.update(format_version=0), "format version 0 never existed"),
    (lambda m: m.update(format_version="1"), "not an integer"),
    (lambda m: m.update(format="other"), "format marker"),
    (lambda m: m.pop("root"), "no object description"),
    (lambda m: m["root"].update({"__dataclass__": "os:system"}), "outside the spikessm"),
    (lambda m: m["root"].update({"__dataclass__": "spikessm.io.saved:_Gone"}),
     "does not exist in spikessm"),
    (lambda m: m["root"].update({"__dataclass__": "spikessm.io:save"}), "not a class"),
    (lambda m: m["root"].update({"__dataclass__": "spikessm:PoissonHMM"}),
     "is not a dataclass"),
    (lambda m: m["root"]["fields"].update(new_field=1), r"\['new_field'\] unknown"),
    (lambda m: m["root"]["fields"].pop("n_iter"), r"\['n_iter'\] missing"),
    (lambda m: m["root"]["fields"].update(n_iter={"__array__": "a99"}), "missing array"),
    (lambda m: m["root"]["fields"].update(n_iter={"__weird__": 1}), "unknown tag"),
    (lambda m: m["root"].update({"__object__": "spikessm.cli.main:X"}) or
     m["root"].pop("__dataclass__"), "malformed|cannot be loaded"),
])
def test_malformed_metadata_raises_value_error(tmp_path, edit, message):
    bad = _rewrite(_good_file(tmp_path), meta_edit=edit)
    with pytest.raises(ValueError, match=message) as info:
        load(bad)
    assert "bad.npz" in str(info.value)


def test_members_not_described_and_missing_meta_are_refused(tmp_path):
    path = _good_file(tmp_path)
    with pytest.raises(ValueError, match="unexpected members"):
        load(_rewrite(path, extra={"zz": np.zeros(2)}))
    with pytest.raises(ValueError, match="no '__meta__' member"):
        load(_no_meta(tmp_path))
    notjson = tmp_path / "notjson.npz"
    np.savez(notjson, __meta__=np.frombuffer(b"{oops", dtype=np.uint8))
    with pytest.raises(ValueError, match="notjson.npz.*not valid JSON"):
        load(notjson)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")


def _no_meta(tmp_path):
    p = tmp_path / "plain.npz"
    np.savez(p, x=np.zeros(3))
    return p


def test_expect_checks_the_loaded_type(tmp_path):
    path = _good_file(tmp_path)
    assert isinstance(load(path, expect=spikessm.HMMFitResult), spikessm.HMMFitResult)
    with pytest.raises(ValueError, match="expected"):
        load(path, expect=spikessm.PLDSFitResult)


# ----------------------------------------------------------------------------- atomic writes
def test_interrupted_save_leaves_no_file_and_no_temp(tmp_path, monkeypatch):
    real = np.savez

    def half_then_fail(f, **members):
        real(f, **members)
        f.truncate(f.tell() // 2)
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        save(tmp_path / "fit.npz", np.arange(1000.0))
    assert os.listdir(tmp_path) == []


def test_failed_overwrite_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "fit.npz"
    save(path, np.arange(3.0))
    before = path.read_bytes()

    def fail(*a):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save(path, np.arange(5.0))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["fit.npz"]


def test_atomic_write_bytes_text_and_callback(tmp_path):
    assert atomic_write(tmp_path / "a.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert (atomic_write(tmp_path / "a.txt", "héllo").read_text(encoding="utf-8")
            == "héllo")
    atomic_write(tmp_path / "c.txt", lambda f: f.write(b"cb"))
    assert (tmp_path / "c.txt").read_bytes() == b"cb"
    mode = (tmp_path / "c.txt").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write(tmp_path / "nope" / "x.txt", b"")
    with pytest.raises(TypeError, match="data must be"):
        atomic_write(tmp_path / "x.txt", 3)
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "y.txt", lambda f: (f.write(b"part"), _raise()))
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "a.txt", "c.txt"]


def _raise():
    raise RuntimeError("interrupted")


def test_safe_output_path_stays_inside_the_output_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert safe_output_path(out, "fit.npz") == (out / "fit.npz").resolve()
    assert safe_output_path(str(out), "figs/a.png") == (out / "figs" / "a.png").resolve()
    for bad in ("../x.npz", "a/../../x", "/etc/passwd", "", ".", "a/.."):
        with pytest.raises(ValueError):
            safe_output_path(out, bad)
    (out / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside the output folder"):
        safe_output_path(out, "link/escape.txt")
