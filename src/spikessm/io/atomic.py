"""Atomic file writes and output paths confined to the folder the user named.

An interrupted run (crash, Ctrl-C, full disk) must never leave a half-written result behind:
:func:`atomic_write` writes to a temporary file in the target's own folder, flushes and fsyncs
it, then renames it over the target with :func:`os.replace` (atomic on POSIX and Windows). On
any error the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "safe_output_path"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    Args:
      path: target file (str or Path). Its folder must exist.
      data: the bytes to write, a str (written as UTF-8), or a callback ``f(fileobj)`` that
        writes into a binary file object (e.g. ``lambda f: np.savez(f, x=x)``).

    The file appears at ``path`` only once it is complete and on disk; a failure at any
    point leaves no file at ``path`` (or the previous one untouched) and no temporary file.
    """
    target = Path(os.fspath(path))
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {target}: folder {folder} does not exist")
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a folder")
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not (isinstance(data, (bytes, bytearray, memoryview)) or callable(data)):
        raise TypeError("data must be bytes, str or a callable writing to a file object, "
                        f"got {type(data).__name__}")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())       # mkstemp makes 0600; give a normal file's mode
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:                                        # persist the rename itself (POSIX only)
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return target
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return target


def safe_output_path(out_dir, name) -> Path:
    """``out_dir / name``, refusing any ``name`` that would land outside ``out_dir``.

    ``name`` may contain sub-folders (``"figures/latents.png"``) but must be relative and
    must not climb out of ``out_dir`` (``".."``, an absolute path, or a symbolic link that
    points elsewhere): those raise ValueError. Nothing is created.
    """
    if not isinstance(name, (str, os.PathLike)) or not os.fspath(name):
        raise ValueError(f"name must be a non-empty relative file name, got {name!r}")
    rel = Path(os.fspath(name))
    if rel.is_absolute() or rel.drive or rel.anchor:
        raise ValueError(f"output name {os.fspath(name)!r} is absolute; give a name relative "
                         f"to the output folder {os.fspath(out_dir)!r}")
    if ".." in rel.parts:
        raise ValueError(f"output name {os.fspath(name)!r} climbs out of the output folder "
                         f"{os.fspath(out_dir)!r} ('..' is not allowed)")
    root = Path(os.path.realpath(os.fspath(out_dir)))
    full = Path(os.path.realpath(root / rel))
    if full != root and root not in full.parents:
        raise ValueError(f"output name {os.fspath(name)!r} resolves to {full}, outside the "
                         f"output folder {root}")
    if full == root:
        raise ValueError(f"output name {os.fspath(name)!r} is the output folder itself")
    return full
