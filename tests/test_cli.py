"""The ``spikessm`` command: error paths (one line, exit status 2, no traceback), fit /
score / decode / info on a small recording, and the HTML report's numbers against the saved
results."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from spikessm.cli.main import main
from spikessm.cli.report import Report, format_value
from spikessm.io import load
from spikessm.models.plds import PoissonLDS, make_plds_params


def _err_line(capsys):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("spikessm: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A small simulated Poisson LDS recording saved as a counts .npz (8 trials)."""
    rng = np.random.default_rng(3)
    A = 0.95 * np.array([[np.cos(.2), -np.sin(.2)], [np.sin(.2), np.cos(.2)]])
    p = make_plds_params(A=A, C=rng.normal(0, .6, (10, 2)), d=np.full(10, np.log(10.0)),
                         Q=0.05 * np.eye(2), bin_width=0.02)
    _, y, _ = PoissonLDS(2, 0.02).sample(p, 50, n_trials=8, seed=4)
    path = tmp_path_factory.mktemp("rec") / "rec.npz"
    np.savez(path, counts=y, bin_width=0.02, trial_labels=np.array(["a", "b"] * 4))
    return path


def test_errors_missing_file(capsys, tmp_path):
    assert main(["fit", str(tmp_path / "nope.mat"), "--model", "plds", "--out",
                 str(tmp_path / "o")]) == 2
    assert "no such file" in _err_line(capsys)
    assert main(["info", str(tmp_path / "nope.nwb")]) == 2
    _err_line(capsys)
    assert main(["score", str(tmp_path / "nofit.npz"), str(tmp_path / "nope.npz")]) == 2
    _err_line(capsys)
    assert not (tmp_path / "o").exists()


def test_errors_unknown_model_and_bad_options(capsys, recording, tmp_path):
    assert main(["fit", str(recording), "--model", "kalmanish", "--out", str(tmp_path)]) == 2
    assert "kalmanish" in _err_line(capsys)
    assert main(["fit", str(recording), "--model", "plds", "--out", str(tmp_path),
                 "--state-dim", "0"]) == 2
    assert "--state-dim" in _err_line(capsys)
    assert main(["demo", "--restarts", "x"]) == 2
    _err_line(capsys)
    assert main(["frobnicate"]) == 2
    _err_line(capsys)


def test_errors_bad_format(capsys, tmp_path):
    bad = tmp_path / "data.xyz"
    bad.write_text("hello")
    assert main(["info", str(bad)]) == 2
    assert "unknown file type" in _err_line(capsys)
    trunc = tmp_path / "data.npz"
    trunc.write_bytes(b"PK\x03\x04garbage")
    assert main(["info", str(trunc)]) == 2
    _err_line(capsys)
    mat = tmp_path / "data.mat"
    mat.write_bytes(b"not a mat file at all")
    assert main(["fit", str(mat), "--model", "hmm", "--out", str(tmp_path / "o")]) == 2
    _err_line(capsys)
    # a saved fit that is not a FitRecord is refused by score, with one line
    assert main(["score", str(trunc), str(trunc)]) == 2
    _err_line(capsys)


def _tables_in_html(text):
    out = {}
    for key, body in re.findall(r'<table data-key="([^"]+)">(.*?)</table>', text, re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
        out[html.unescape(key)] = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", r)]
                                   for r in rows[1:]]
    return out


def test_fit_score_decode_info_plds(capsys, recording, tmp_path):
    out = tmp_path / "fit"
    assert main(["fit", str(recording), "--model", "plds", "--state-dim", "2", "--restarts",
                 "2", "--max-iter", "15", "--out", str(out), "--quiet"]) == 0
    rec = load(out / "fit.npz")
    assert rec.model == "plds" and rec.unit_ids.size == 10
    assert rec.result.best_result.params.state_dim == 2
    # the report: every figure embedded, numbers equal to the saved results
    text = (out / "report.html").read_text()
    meta = json.loads((out / "report.json").read_text())
    assert text.count("<img ") == meta["n_figures"] >= 3
    assert "http://" not in text and "https://" not in text          # self-contained
    tables = _tables_in_html(text)
    held = meta["tables"]["heldout"]
    saved = dict(zip([r[0] for r in held["rows"]], [r[1] for r in held["rows"]]))
    assert saved == pytest.approx(rec.heldout, rel=0, abs=0)
    for row in tables["heldout"]:
        assert row[1] == format_value(rec.heldout[row[0]])
    restarts = meta["tables"]["restarts"]["rows"]
    np.testing.assert_array_equal([r[1] for r in restarts],
                                  rec.result.all_predictive_lls)
    capsys.readouterr()

    assert main(["score", str(out / "fit.npz"), str(recording)]) == 0
    line = capsys.readouterr().out
    assert "predictive log-likelihood" in line and "per bin" in line
    assert main(["info", str(out / "fit.npz")]) == 0
    assert "FitRecord" in capsys.readouterr().out
    assert main(["decode", str(out / "fit.npz"), str(recording), "--out",
                 str(tmp_path / "dec")]) == 0
    dec = load(tmp_path / "dec" / "decoded.npz")
    assert len(dec.means) == 8 and dec.means[0].shape == (50, 2)
    assert np.all(np.isfinite(dec.means[0])) and np.all(dec.variances[0] > 0)


def test_report_escapes_and_rejects_ragged_rows(tmp_path):
    rep = Report("<title>")
    sec = rep.section("s", "a < b & c")
    sec.table([{"x": 1.0, "y": float("nan")}], caption="t")
    with pytest.raises(ValueError, match="columns"):
        sec.table([{"x": 1}, {"z": 2}])
    path = rep.write(tmp_path / "r.html")
    text = path.read_text()
    assert "&lt;title&gt;" in text and "a &lt; b &amp; c" in text
    assert json.loads((tmp_path / "r.json").read_text())["tables"]["t"]["rows"] == [[1.0, None]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json"]  # no temp left
