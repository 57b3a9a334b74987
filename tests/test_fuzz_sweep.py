"""Property-based fuzzing of ``spikessm.sweep`` argument validation (issue 9).

A sweep that has work to do starts a Dask cluster and fits models: far too costly per case.
So every case runs against an output folder in which a previous run's results are already
stored (written here by hand: one row JSON + a fit file per task, with the task's config),
so that an accepted call resumes everything and only writes ``sweep.csv``. One argument is
mutated per case, either to a value that must be rejected before any cluster starts, or to
an equivalent valid value (``np.int64(2)`` for ``2``, ``"plds"`` for ``("plds",)``...) that
keeps the same tasks. ``_connect`` is replaced by a guard that fails the test if a case
would start a cluster. Bad values must raise a ValueError / TypeError naming the argument,
create no folder, and leave their inputs unchanged.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import exercise, fuzz_settings
from fuzz_mutations import OPAQUE, assert_unchanged, snapshot
from hypothesis import given
from hypothesis import strategies as st

import spikessm as s
from spikessm.distributed.tasks import COLUMNS

# the module (the package exports the function under the same name)
sweep_mod = importlib.import_module("spikessm.distributed.sweep")

pytestmark = pytest.mark.fuzz

DATA = np.ones((2, 6, 2))
BASE = dict(models=("plds",), state_dims=(2,), n_restarts=1, seed=0, max_iter=3,
            holdout_fraction=0.25, bin_width=1.0)
_ROOT = Path(tempfile.mkdtemp(prefix="spikessm-fuzz-sweep-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
DONE = _ROOT / "done"
A_FILE = _ROOT / "a_file"
A_FILE.write_text("not a folder")


def _store(out: Path, names=("rec",)):
    """Results of every task of the base sweep, as a finished earlier run left them."""
    specs = sweep_mod.make_specs({n: DATA for n in names}, **BASE)
    for spec in specs:
        fit, row_path = spec.paths(out)
        fit.parent.mkdir(parents=True, exist_ok=True)
        fit.write_bytes(b"fit")
        row = {k: None for k in COLUMNS}
        row.update(dataset=spec.dataset, model=spec.model, state_dim=spec.state_dim,
                   restart=spec.restart, seed=spec.seed, heldout_ll=-1.0, train_ll=-1.0,
                   n_iter=3, converged=True, seconds=0.1, status="ok", error="")
        row_path.write_text(json.dumps({"config": spec.config(), "row": row}))


_store(DONE)
pick = st.integers(0, 60)

# (valid equivalents of the base value, values that must be rejected)
OPTS = {
    "datasets": ([{"rec": DATA}, {"rec": [DATA[0], DATA[1]]}, {"rec": "any/file.npz"}],
                 [{}, None, [DATA], "rec", {"../rec": DATA}, {"": DATA}, {5: DATA},
                  {"a b": DATA}, {".": DATA}, OPAQUE]),
    "models": (["plds", ["plds"], ("plds",), np.array(["plds"])],
               ["gmm", [], ("plds", "plds"), None, 5, [None], OPAQUE, ["PLDS"]]),
    "state_dims": ([2, [2], np.int64(2), (np.int64(2),), np.array([2])],
                   [0, -1, 1.5, "2", None, True, [2, 2], [], [True], [1.5], OPAQUE,
                    ["2"]]),
    "n_restarts": ([1, np.int64(1)], [0, -1, 1.5, True, "1", None, OPAQUE]),
    "seed": ([0, np.int64(0)], [-1, 1.5, True, "0", None, OPAQUE]),
    "max_iter": ([3, np.int64(3)], [0, -1, 2.5, True, "3", None]),
    "holdout_fraction": ([0.25, np.float64(0.25)],
                         [0.0, 1.0, -0.5, 1.5, np.nan, np.inf, "0.25", None, True, OPAQUE]),
    "bin_width": ([1.0, 1, np.float64(1.0), np.float32(1.0)],
                  [0.0, -1.0, np.nan, np.inf, "1", None, True, OPAQUE, [1.0]]),
    "out_dir": ([DONE, str(DONE), str(DONE) + os.sep],
                [None, 5, "", "   ", A_FILE, A_FILE / "sub", b"bytes", OPAQUE]),
    "n_workers": ([2, 1, np.int64(3)], [0, -1, 1.5, True, "2", None]),
    "retries": ([2, 0, np.int64(1)], [-1, 1.5, True, "2", None]),
    "progress": ([False, True, np.False_], ["no", None, 0, 1, OPAQUE]),
    "scheduler_address": ([None, "tcp://127.0.0.1:1"], [5, OPAQUE, ["tcp://x"]]),
    "client": ([None], []),
}
NAMES = tuple(OPTS) + ("dataset name",)


def _no_cluster(*args, **kwargs):
    raise AssertionError("this case would start a Dask cluster")


@fuzz_settings()
@given(arg=st.sampled_from(list(OPTS)), bad=st.sampled_from([True, True, True, False]),
       k=pick)
def test_sweep_arguments(arg, bad, k):
    kw = dict(datasets={"rec": DATA}, out_dir=DONE, n_workers=2, retries=2, progress=False,
              scheduler_address=None, client=None, **BASE)
    good, wrong = OPTS[arg]
    pool = wrong if bad and wrong else good
    kw[arg] = pool[k % len(pool)]
    if arg == "scheduler_address" and kw[arg] is not None and k % 3 == 0:
        kw["client"] = OPAQUE   # both given: refused
    before = snapshot({a: v for a, v in kw.items() if a != "out_dir"})
    entries = set(os.listdir(_ROOT))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_mod, "_connect", _no_cluster)
        out = exercise("sweep", s.sweep, names=NAMES, **kw)
    assert_unchanged(before, {a: v for a, v in kw.items() if a != "out_dir"}, "arguments")
    expect_reject = pool is wrong or kw["client"] is OPAQUE
    if expect_reject:
        assert out is None, f"{arg}={kw[arg]!r} accepted"
        assert set(os.listdir(_ROOT)) == entries, "a rejected call created a folder"
    else:
        assert out is not None, f"{arg}={kw[arg]!r} rejected"
    if out is not None:
        t = out.table
        assert len(t) == 1 and t["status"].tolist() == ["skipped"]
        assert (DONE / "sweep.csv").is_file()
        assert out.best()["heldout_ll"].tolist() == [-1.0]


# ------------------------------------------------------------------------------------------
# regression tests for bugs the fuzzing found
# ------------------------------------------------------------------------------------------
def test_regression_sweep_argument_types(tmp_path):
    kw = dict(datasets={"rec": DATA}, progress=False, **BASE)
    with pytest.raises(TypeError, match="out_dir"):   # was: anonymous os.fspath TypeError
        s.sweep(**{**kw, "out_dir": None})
    with pytest.raises(ValueError, match="out_dir"):   # was: FileExistsError
        s.sweep(**{**kw, "out_dir": A_FILE})
    with pytest.raises(ValueError, match="out_dir"):   # was: "" = the working folder
        s.sweep(**{**kw, "out_dir": ""})
    for arg in ("models", "state_dims"):   # was: "'NoneType' object is not iterable"
        with pytest.raises(TypeError, match=arg):
            s.sweep(**{**kw, arg: None, "out_dir": tmp_path / "o"})
    with pytest.raises(TypeError, match="bin_width"):   # True was taken as 1 s
        s.sweep(**{**kw, "bin_width": True, "out_dir": tmp_path / "o"})
    with pytest.raises(TypeError, match="progress"):   # "no" was taken as True
        s.sweep(**{**kw, "progress": "no", "out_dir": tmp_path / "o"})
    with pytest.raises(TypeError, match="scheduler_address"):
        s.sweep(**{**kw, "scheduler_address": 5, "out_dir": tmp_path / "o"})
    assert not (tmp_path / "o").exists()
