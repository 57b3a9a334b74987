"""Shared pieces of the readers: optional imports, file checks and provenance."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

import numpy as np

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


def npz_members(path) -> dict:
    """Every member of an ``.npz`` archive, read with ``allow_pickle=False`` (each member is
    read in full, so the zip CRCs are checked). ValueError naming the file when it is not a
    zip archive, is damaged or truncated, or holds pickled objects (never unpickled)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise bad_file(path, f"cannot read the file ({exc})") from None
    if magic != b"PK\x03\x04":
        raise bad_file(path, "not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise bad_file(path, "holds pickled Python objects; spikessm never unpickles "
                                 "(store plain arrays)") from None
        raise bad_file(path, f"damaged or truncated .npz ({exc})") from None
    except Exception as exc:              # BadZipFile, zlib.error, EOFError, OSError, ...
        raise bad_file(path, f"damaged or truncated .npz ({type(exc).__name__}: {exc})") \
            from None
