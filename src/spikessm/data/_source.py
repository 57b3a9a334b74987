"""Shared pieces of the readers: optional imports, file checks and provenance."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

IO_EXTRA = 'pip install "spikessm[io]"'


def require(module: str, what: str):
    """Import an optional dependency or raise ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs the optional package {module.split('.')[0]!r} "
                          f"({exc}); install it with {IO_EXTRA}") from None


def existing_file(path) -> Path:
    """``path`` as a Path; FileNotFoundError when it is not a file."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name, got {type(path).__name__}")
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    return p


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_provenance(path: Path, reader: str, **details) -> dict:
    """Provenance of a recording read from a file: name, size, sha256, reader, options."""
    out = {"source": str(path.resolve()), "file_name": path.name,
           "size_bytes": path.stat().st_size, "sha256": sha256(path), "reader": reader}
    out.update({k: v for k, v in details.items() if v is not None})
    return out


def bad_file(path, what: str) -> ValueError:
    return ValueError(f"{path}: {what}")
