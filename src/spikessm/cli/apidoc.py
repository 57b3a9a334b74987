"""Write the API reference (``docs/api.md``) from the docstrings of every public name.

    python -m spikessm.cli.apidoc docs/api.md

Each entry shows the signature and the docstring as written in the code (array shapes and
units are stated there). ``tests/test_docs.py`` checks that every public name has a
docstring and that the committed page is up to date.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import spikessm

SECTIONS = (
    ("Linear-Gaussian state-space models", "spikessm.models.lgssm"),
    ("Poisson LDS and hybrid observations", "spikessm.models.plds"),
    ("Models shared across recordings", "spikessm.models.shared"),
    ("Poisson hidden Markov models", "spikessm.models.poisson_hmm"),
    ("Point-process GLMs and Granger causality", "spikessm.models.glm"),
    ("Decoding: PPAF, CMGF, PPHF", "spikessm.models.decoding"),
    ("State-space GLM and learning curves", "spikessm.models.ssglm"),
    ("Evaluation", "spikessm.evaluation"),
    ("Data", "spikessm.data"),
    ("Saved files", "spikessm.io"),
    ("Sweeps", "spikessm.distributed"),
)


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def public_names() -> list[tuple[str, object]]:
    return [(n, getattr(spikessm, n)) for n in sorted(spikessm.__all__) if n != "__version__"]


def render() -> str:
    names = public_names()
    placed: set[str] = set()
    lines = ["# API reference", "",
             "Generated from the docstrings by `python -m spikessm.cli.apidoc docs/api.md`; "
             "every name below is importable from the top-level package `spikessm`.", ""]
    groups = []
    for title, prefix in SECTIONS:
        members = [(n, o) for n, o in names if n not in placed and
                   getattr(o, "__module__", "").startswith(prefix)]
        placed.update(n for n, _ in members)
        groups.append((title, members))
    groups.append(("Other", [(n, o) for n, o in names if n not in placed]))
    for title, members in groups:
        if not members:
            continue
        lines += [f"## {title}", ""]
        for name, obj in members:
            kind = "class" if inspect.isclass(obj) else "function"
            lines.append(f"### `{name}{_signature(obj)}`")
            lines.append("")
            lines.append(f"*{kind}, `{obj.__module__}`*")
            lines.append("")
            doc = inspect.getdoc(obj) or ""
            lines += ["```text", doc, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0]) if argv else Path("docs/api.md")
    from ..io import atomic_write
    atomic_write(target, render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
