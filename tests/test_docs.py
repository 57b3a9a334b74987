"""The API reference is generated from the docstrings: every public name has one, and the
committed ``docs/api.md`` is what the generator writes now (regenerate with
``python -m spikessm.cli.apidoc docs/api.md``)."""

from __future__ import annotations

import inspect
from pathlib import Path

import spikessm
from spikessm.cli.apidoc import render

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_has_a_docstring():
    missing = [n for n in spikessm.__all__ if n != "__version__" and
               not (inspect.getdoc(getattr(spikessm, n)) or "").strip()]
    assert not missing, f"public names without a docstring: {missing}"


def test_api_reference_is_up_to_date():
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert page == render(), "docs/api.md is stale: run python -m spikessm.cli.apidoc docs/api.md"
    for name in spikessm.__all__:
        if name != "__version__":
            assert f"### `{name}" in page
