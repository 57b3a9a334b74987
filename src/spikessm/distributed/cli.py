"""``spikessm sweep CONFIG.json --out DIR [--scheduler ADDRESS] [--workers N] [--quiet]``

CONFIG.json names the recordings and the grid (relative paths are relative to the config
file's folder)::

    {
      "datasets": {"monkey_a": "recordings/a.npz",
                   "mouse_b": {"path": "b.nwb", "bin_width": 0.02}},
      "models": ["plds", "hmm"],
      "state_dims": [2, 3, 4],
      "n_restarts": 4,
      "holdout_fraction": 0.25,
      "max_iter": 100,
      "seed": 0
    }

Only ``datasets`` is required; the other keys default as in :func:`spikessm.sweep`. The
table is written to ``DIR/sweep.csv`` and a one-line summary printed. Exit status: 0 when
every task succeeded, 1 when some failed (listed on stderr), 2 for a usage error (one line
``spikessm: error: ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

_KEYS = ("models", "state_dims", "n_restarts", "holdout_fraction", "max_iter", "seed",
         "bin_width")


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Usage(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="spikessm sweep",
                description="fit recordings x models x state dimensions x restarts on Dask")
    p.add_argument("config", help="JSON file listing datasets and the grid")
    p.add_argument("--out", required=True, help="output folder (rerun to resume)")
    p.add_argument("--scheduler", default=None,
                   help="address of a running Dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes of the local cluster (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def read_config(path) -> dict:
    """The sweep's keyword arguments from a config file (see the module docstring)."""
    path = Path(os.fspath(path))
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("datasets"), dict):
        raise ValueError(f"{path}: expected a JSON object with a 'datasets' object "
                         "(name -> file or {\"path\": file, ...})")
    unknown = sorted(set(cfg) - {"datasets", *_KEYS})
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; allowed: datasets, "
                         f"{', '.join(_KEYS)}")
    base = path.parent

    def where(p):
        if not isinstance(p, str):
            raise ValueError(f"{path}: dataset paths must be strings, got {p!r}")
        return str(base / p) if not os.path.isabs(p) else p

    datasets = {}
    for name, spec in cfg["datasets"].items():
        if isinstance(spec, dict):
            if "path" not in spec:
                raise ValueError(f"{path}: dataset {name!r} needs a 'path'")
            datasets[name] = {**spec, "path": where(spec["path"])}
        else:
            datasets[name] = {"path": where(spec)}
    kw = {k: cfg[k] for k in _KEYS if k in cfg}
    for k in ("models", "state_dims"):
        if k in kw:
            kw[k] = tuple(kw[k]) if isinstance(kw[k], list) else kw[k]
    return {"datasets": datasets, **kw}


def sweep_main(argv=None) -> int:
    """Entry point of ``spikessm sweep`` (``argv`` without the word ``sweep``)."""
    from .sweep import sweep
    try:
        args = build_parser().parse_args(argv)
        if args.workers < 1:
            raise _Usage(f"--workers must be >= 1, got {args.workers}")
        kw = read_config(args.config)
        result = sweep(out_dir=args.out, scheduler_address=args.scheduler,
                       n_workers=args.workers, progress=not args.quiet, **kw)
    except (_Usage, ValueError, TypeError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"spikessm: error: {msg}", file=sys.stderr)
        return 2
    t = result.table
    counts = t["status"].value_counts().to_dict()
    print(f"{len(t)} tasks: {counts.get('ok', 0)} fitted, {counts.get('skipped', 0)} reused, "
          f"{counts.get('failed', 0)} failed; table: {result.out_dir / 'sweep.csv'}")
    for _, row in result.failed.iterrows():
        print(f"failed {row['dataset']}/{row['model']}/d{row['state_dim']}/r{row['restart']}: "
              f"{row['error']}", file=sys.stderr)
    return 1 if len(result.failed) else 0


if __name__ == "__main__":                                     # pragma: no cover
    sys.exit(sweep_main())
