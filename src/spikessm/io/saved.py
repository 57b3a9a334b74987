"""Save and load results and models as one ``.npz`` file: arrays plus a JSON description.

Nothing is ever pickled. A saved file is an ordinary NumPy ``.npz`` archive with

- one member per NumPy array (``a0``, ``a1``, ...), read back with ``allow_pickle=False``;
- a member ``__meta__``: UTF-8 JSON (stored as a uint8 array) holding the format version,
  the spikessm / NumPy / Python versions, the creation time (UTC), the provenance of the data
  and a tree that describes the object: its classes (``"module:qualname"``, only ever
  resolved inside the ``spikessm`` package), field names, scalars and strings, and
  references to the array members.

What can be saved: frozen dataclasses and NamedTuples defined in spikessm (every result and
parameter set), spikessm model objects (rebuilt from their constructor arguments, read from
the attributes of the same names), NumPy arrays of numbers, booleans, strings or datetimes,
NumPy scalars, Python ``None`` / bool / int / float (NaN and +-inf included) / complex /
str / bytes, and lists, tuples and dicts of these, nested to any depth. Everything comes back
bit-identical: same types, dtypes, shapes and values (NaN included). Arrays shared between
fields are stored once and shared again on load.

Loading checks the file (zip integrity and CRCs, the JSON, every referenced member, dtypes
without Python objects, class names, and each dataclass field against its annotation: a
string or a list where an array or a number belongs) and raises ``ValueError`` naming the
file and what is wrong; saving refuses, with ``TypeError``, a dataclass whose fields load
would refuse. A Python float NaN keeps its sign and payload. A file written by a newer
format version raises ``ValueError`` saying which versions are involved; older format
versions are migrated in :data:`_MIGRATIONS` (none exist yet: version 1 is the first).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import inspect
import json
import math
import os
import platform
import struct
import types
import typing
from pathlib import Path

import numpy as np

from ..data._source import npz_members
from .atomic import atomic_write

__all__ = ["FORMAT_VERSION", "load", "load_metadata", "save"]

FORMAT = "spikessm-saved-object"
FORMAT_VERSION = 1
_META = "__meta__"
_ARRAY_KINDS = "biufcUSmM"          # no object ("O") or structured ("V") arrays
_MAX_DEPTH = 200
_MAX_INT_BITS = 13_000   # about 3,900 decimal digits: below Python's int/str limit (4,300)
_CANONICAL_NAN = struct.pack("<d", float("nan"))
# Module prefixes whose (non-dataclass) classes are never instantiated by load().
_NO_OBJECTS = ("spikessm.io", "spikessm.cli", "spikessm.distributed", "spikessm.plotting")
# format_version -> function(meta dict) -> meta dict of format_version + 1.
_MIGRATIONS: dict = {}


def _version() -> str:
    from .. import __version__
    return __version__


def _class_name(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _in_package(cls) -> bool:
    mod = getattr(cls, "__module__", "") or ""
    return (mod == "spikessm" or mod.startswith("spikessm.")) and "<locals>" not in \
        cls.__qualname__


def _is_namedtuple(obj) -> bool:
    return isinstance(obj, tuple) and hasattr(type(obj), "_fields") and \
        hasattr(type(obj), "_make")


# ------------------------------------------------------------------------------ encoding
class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self._by_id: dict[int, tuple[str, np.ndarray]] = {}

    def _store(self, arr: np.ndarray, where: str) -> str:
        if arr.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"cannot save {where}: arrays of dtype {arr.dtype} would need "
                            "pickle; use numbers, booleans or strings")
        hit = self._by_id.get(id(arr))
        if hit is not None and hit[1] is arr:
            return hit[0]
        key = f"a{len(self.arrays)}"
        self.arrays[key] = arr
        self._by_id[id(arr)] = (key, arr)
        return key

    def enc(self, v, where: str, depth: int = 0):
        if depth > _MAX_DEPTH:
            raise ValueError(f"cannot save {where}: nested more than {_MAX_DEPTH} levels")
        if type(v) is int and v.bit_length() > _MAX_INT_BITS:
            raise ValueError(f"cannot save {where}: an integer of {v.bit_length()} bits is "
                             "too long for the JSON description (store it as a string)")
        if v is None or type(v) in (bool, int, str):
            return v
        if type(v) is float:
            if math.isfinite(v):
                return v
            bits = struct.pack("<d", v)
            if math.isnan(v) and bits != _CANONICAL_NAN:   # keep the NaN's sign and payload
                return {"__float__": "nan:" + bits[::-1].hex()}
            return {"__float__": repr(v)}
        if type(v) is complex:
            return {"__complex__": [self.enc(v.real, where), self.enc(v.imag, where)]}
        if type(v) is bytes:
            return {"__bytes__": self._store(np.frombuffer(v, dtype=np.uint8), where)}
        if isinstance(v, np.generic):
            return {"__scalar__": self._store(np.asarray(v), where)}
        if type(v) is np.ndarray:
            return {"__array__": self._store(v, where)}
        if type(v).__module__.split(".")[0] in ("jax", "jaxlib") and hasattr(v, "shape"):
            return {"__array__": self._store(np.asarray(v), where)}   # comes back as NumPy
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            cls = type(v)
            self._check_class(cls, where)
            bad = _misfit_field(cls, {f.name: getattr(v, f.name) for f in
                                      dataclasses.fields(v)})
            if bad is not None:   # load() would refuse it: refuse it now
                raise TypeError(f"cannot save {where}.{bad}")
            fields = {f.name: self.enc(getattr(v, f.name), f"{where}.{f.name}", depth + 1)
                      for f in dataclasses.fields(v)}
            return {"__dataclass__": _class_name(cls), "fields": fields}
        if _is_namedtuple(v):
            cls = type(v)
            self._check_class(cls, where)
            fields = {name: self.enc(x, f"{where}.{name}", depth + 1)
                      for name, x in zip(cls._fields, v)}
            return {"__namedtuple__": _class_name(cls), "fields": fields}
        if type(v) is list:
            return [self.enc(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(v)]
        if type(v) is tuple:
            return {"__tuple__": [self.enc(x, f"{where}[{i}]", depth + 1)
                                  for i, x in enumerate(v)]}
        if type(v) is dict:
            items = []
            for k, x in v.items():
                if not isinstance(k, (str, int, float, bool, type(None), tuple)):
                    raise TypeError(f"cannot save {where}: dict key {k!r} of type "
                                    f"{type(k).__name__} (use str, int, float or tuple keys)")
                items.append([self.enc(k, f"{where} key", depth + 1),
                              self.enc(x, f"{where}[{k!r}]", depth + 1)])
            return {"__dict__": items}
        if isinstance(v, type) or inspect.isroutine(v) or inspect.ismodule(v):
            raise TypeError(f"cannot save {where}: {v!r} is code, not data")
        cls = type(v)
        if _in_package(cls) and not cls.__module__.startswith(_NO_OBJECTS):
            return {"__object__": _class_name(cls),
                    "init": self._init_args(v, f"{where}", depth)}
        raise TypeError(f"cannot save {where}: objects of type {cls.__module__}."
                        f"{cls.__qualname__} are not supported (save arrays, numbers, "
                        "strings, lists/tuples/dicts of them, or spikessm results and models)")

    def _check_class(self, cls, where):
        if not _in_package(cls):
            raise TypeError(f"cannot save {where}: {cls.__module__}.{cls.__qualname__} is not "
                            "a spikessm class; only spikessm classes can be loaded back "
                            "(convert it to a dict of arrays)")

    def _init_args(self, v, where, depth):
        cls = type(v)
        out = {}
        for p in inspect.signature(cls).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"cannot save {where}: {cls.__qualname__}.__init__ takes "
                                f"*{p.name}; only named constructor arguments can be saved")
            if not hasattr(v, p.name):
                raise TypeError(f"cannot save {where}: {cls.__qualname__} has no attribute "
                                f"{p.name!r} matching its constructor argument")
            out[p.name] = self.enc(getattr(v, p.name), f"{where}.{p.name}", depth + 1)
        return out


def _plain(v, where="provenance"):
    """Provenance as plain JSON (NumPy scalars/arrays become numbers/lists)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"{where} is {f}; provenance values must be finite")
        return f
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, np.ndarray):
        return _plain(v.tolist(), where)
    if isinstance(v, (list, tuple)):
        return [_plain(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} keys must be strings, got {k!r}")
            out[k] = _plain(x, f"{where}[{k!r}]")
        return out
    raise TypeError(f"{where} must hold JSON values (str, numbers, bool, None, lists, dicts), "
                    f"got {type(v).__name__}")


def save(path, obj, *, provenance: dict | None = None, compress: bool = False) -> Path:
    """Save a result, parameter set, model or container of arrays to ``path`` (.npz).

    Args:
      path: output file; conventionally ends in ``.npz`` (the name is used as given).
        Written atomically: an interrupted save leaves no partial file.
      obj: what to save (see the module docstring for the supported types).
      provenance: optional dict of plain JSON values describing where the data came from
        (file, reader, sha256, binning arguments, ...). When omitted and ``obj`` has a
        ``provenance`` dict (e.g. :class:`spikessm.data.SpikeTrials`), that one is recorded.
      compress: store the arrays zip-deflated (smaller, slower).

    Returns the path written. Raises TypeError naming the first field that cannot be saved
    without pickle.
    """
    enc = _Encoder()
    root = enc.enc(obj, type(obj).__name__)
    if provenance is None and isinstance(getattr(obj, "provenance", None), dict):
        provenance = obj.provenance
    if provenance is not None and not isinstance(provenance, dict):
        raise TypeError(f"provenance must be a dict, got {type(provenance).__name__}")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spikessm_version": _version(),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "class": _class_name(type(obj)),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "provenance": None if provenance is None else _plain(provenance),
        "root": root,
    }
    blob = json.dumps(meta, allow_nan=False, separators=(",", ":")).encode("utf-8")
    members = dict(enc.arrays)
    members[_META] = np.frombuffer(blob, dtype=np.uint8)
    writer = np.savez_compressed if compress else np.savez
    return atomic_write(path, lambda f: writer(f, **members))


# ------------------------------------------------------------------------------ decoding
class _Decoder:
    def __init__(self, path: str, arrays: dict, file_version: str):
        self.path = path
        self.arrays = arrays
        self.used: set[str] = set()
        self.file_version = file_version
        self.cache: dict[str, np.ndarray] = {}

    def bad(self, what: str) -> ValueError:
        return ValueError(f"{self.path}: {what}")

    def _array(self, key, where):
        if not isinstance(key, str) or key not in self.arrays:
            raise self.bad(f"{where} refers to a missing array member {key!r} (file damaged?)")
        self.used.add(key)
        return self.arrays[key]

    def _resolve(self, name, kind, where):
        if not isinstance(name, str) or name.count(":") != 1:
            raise self.bad(f"{where}: malformed class name {name!r}")
        mod, qual = name.split(":")
        parts = qual.split(".")
        if not (mod == "spikessm" or mod.startswith("spikessm.")) or not all(
                p.isidentifier() and not p.startswith("__") for p in parts + mod.split(".")):
            raise self.bad(f"{where}: class {name!r} is outside the spikessm package; "
                           "load() only builds spikessm classes")
        if kind == "__object__" and mod.startswith(_NO_OBJECTS):
            raise self.bad(f"{where}: class {name!r} cannot be loaded")
        try:
            obj = importlib.import_module(mod)
            for p in parts:
                obj = getattr(obj, p)
        except (ImportError, AttributeError):
            raise self.bad(f"{where}: class {name!r} does not exist in spikessm "
                           f"{_version()} (the file was written by spikessm "
                           f"{self.file_version})") from None
        if not isinstance(obj, type):
            raise self.bad(f"{where}: {name!r} is not a class")
        ok = {"__dataclass__": dataclasses.is_dataclass(obj),
              "__namedtuple__": issubclass(obj, tuple) and hasattr(obj, "_fields"),
              "__object__": not dataclasses.is_dataclass(obj) and not issubclass(obj, tuple)}
        if not ok[kind]:
            raise self.bad(f"{where}: {name!r} is not a {kind.strip('_')} in spikessm "
                           f"{_version()} (the file was written by spikessm "
                           f"{self.file_version})")
        return obj

    def _fields(self, node, key, where):
        f = node.get(key)
        if not isinstance(f, dict):
            raise self.bad(f"{where}: malformed entry (no {key!r} mapping)")
        return f

    def _mismatch(self, cls, unknown, missing, where):
        msg = []
        if unknown:
            msg.append(f"fields {sorted(unknown)} unknown to this version")
        if missing:
            msg.append(f"required fields {sorted(missing)} missing from the file")
        return self.bad(f"{where}: {cls.__qualname__} in spikessm {_version()} does not match "
                        f"the file written by spikessm {self.file_version}: "
                        + "; ".join(msg))

    def _check_types(self, cls, flds, vals, where):
        """Each field value must fit the field's annotation (a description edited to put
        a string where an array or a number belongs is refused here, not discovered when
        the result is used). Annotations this check cannot judge are accepted."""
        bad = _misfit_field(cls, vals)
        if bad is not None:
            raise self.bad(f"{where}.{bad} (file damaged or edited?)")

    def dec(self, node, where: str, depth: int = 0):
        if depth > _MAX_DEPTH:
            raise self.bad(f"{where}: nested more than {_MAX_DEPTH} levels")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.dec(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(node)]
        if not isinstance(node, dict) or len(node) == 0:
            raise self.bad(f"{where}: malformed entry {node!r:.80}")
        tag = next(iter(node))
        val = node[tag]
        if tag == "__array__" and len(node) == 1:
            return self._array(val, where)
        if tag == "__scalar__" and len(node) == 1:
            a = self._array(val, where)
            if a.ndim != 0:
                raise self.bad(f"{where}: scalar member {val!r} has shape {a.shape}")
            return a[()]
        if tag == "__bytes__" and len(node) == 1:
            a = self._array(val, where)
            if a.dtype != np.uint8 or a.ndim != 1:
                raise self.bad(f"{where}: bytes member {val!r} is not 1-D uint8")
            return a.tobytes()
        if tag == "__float__" and len(node) == 1 and val in ("nan", "inf", "-inf"):
            return float(val)
        if (tag == "__float__" and len(node) == 1 and isinstance(val, str)
                and len(val) == 20 and val.startswith("nan:")):
            try:
                x = struct.unpack("<d", bytes.fromhex(val[4:])[::-1])[0]
            except ValueError:
                raise self.bad(f"{where}: malformed NaN {val!r}") from None
            if not math.isnan(x):
                raise self.bad(f"{where}: malformed NaN {val!r}")
            return x
        if tag == "__complex__" and len(node) == 1 and isinstance(val, list) and len(val) == 2:
            re, im = (self.dec(x, where, depth + 1) for x in val)
            if not all(type(x) is float for x in (re, im)):
                raise self.bad(f"{where}: malformed complex number")
            return complex(re, im)
        if tag == "__tuple__" and len(node) == 1 and isinstance(val, list):
            return tuple(self.dec(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(val))
        if tag == "__dict__" and len(node) == 1 and isinstance(val, list):
            out = {}
            for item in val:
                if not (isinstance(item, list) and len(item) == 2):
                    raise self.bad(f"{where}: malformed dict item")
                k = self.dec(item[0], f"{where} key", depth + 1)
                try:
                    out[k] = self.dec(item[1], f"{where}[{k!r}]", depth + 1)
                except TypeError:
                    raise self.bad(f"{where}: unhashable dict key") from None
            return out
        if tag == "__dataclass__" and set(node) == {tag, "fields"}:
            cls = self._resolve(val, tag, where)
            raw = self._fields(node, "fields", where)
            flds = {f.name: f for f in dataclasses.fields(cls)}
            unknown = set(raw) - set(flds)
            missing = {n for n, f in flds.items() if f.init and n not in raw
                       and f.default is dataclasses.MISSING
                       and f.default_factory is dataclasses.MISSING}
            if unknown or missing:
                raise self._mismatch(cls, unknown, missing, where)
            vals = {n: self.dec(x, f"{where}.{n}", depth + 1) for n, x in raw.items()}
            self._check_types(cls, flds, vals, where)
            try:
                obj = cls(**{n: x for n, x in vals.items() if flds[n].init})
            except (TypeError, ValueError) as exc:
                raise self.bad(f"{where}: cannot rebuild {cls.__qualname__} ({exc})") from None
            for n, x in vals.items():
                if not flds[n].init:
                    object.__setattr__(obj, n, x)
            return obj
        if tag == "__namedtuple__" and set(node) == {tag, "fields"}:
            cls = self._resolve(val, tag, where)
            raw = self._fields(node, "fields", where)
            defaults = getattr(cls, "_field_defaults", {})
            unknown = set(raw) - set(cls._fields)
            missing = {n for n in cls._fields if n not in raw and n not in defaults}
            if unknown or missing:
                raise self._mismatch(cls, unknown, missing, where)
            vals = {n: self.dec(x, f"{where}.{n}", depth + 1) for n, x in raw.items()}
            return cls(**vals)
        if tag == "__object__" and set(node) == {tag, "init"}:
            cls = self._resolve(val, tag, where)
            raw = self._fields(node, "init", where)
            params = inspect.signature(cls).parameters
            unknown = set(raw) - set(params)
            missing = {n for n, p in params.items() if n not in raw and p.default is p.empty}
            if unknown or missing:
                raise self._mismatch(cls, unknown, missing, where)
            args, kwargs = [], {}
            for n, p in params.items():
                if n in raw:
                    x = self.dec(raw[n], f"{where}.{n}", depth + 1)
                    (args.append(x) if p.kind == p.POSITIONAL_ONLY else kwargs.__setitem__(n, x))
            try:
                return cls(*args, **kwargs)
            except (TypeError, ValueError) as exc:
                raise self.bad(f"{where}: cannot rebuild {cls.__qualname__} ({exc})") from None
        raise self.bad(f"{where}: malformed entry (unknown tag {tag!r})")


_NUMBER = (int, float, np.integer, np.floating)


def _misfit_field(cls, values: dict) -> str | None:
    """``"name: a T where Class has U"`` for the first field value that does not fit its
    annotation (see :func:`_fits`), else None. save() and load() apply the same rule, so
    what one writes the other reads."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:              # unresolvable annotation: nothing to check against
        return None
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for n, x in values.items():
        ann = hints.get(n)
        if ann is None or (x is None and defaults.get(n) is None):
            continue
        if _fits(x, ann) is False:
            return (f"{n}: a {type(x).__name__} where {cls.__qualname__} has "
                    f"{_ann_name(ann)}")
    return None


def _fits(x, ann):
    """Whether ``x`` fits annotation ``ann``: True, False, or None when the annotation is
    not one this check judges (then it is accepted). An array field takes arrays and NumPy
    scalars; a float or int field any real number or numeric array (fits store NumPy
    scalars and 0-d arrays there); strings, mappings, lists, None and booleans are refused
    in numeric fields."""
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        verdicts = [_fits(x, a) for a in typing.get_args(ann)]
        return None if None in verdicts else any(verdicts)
    if ann is type(None):
        return x is None
    if origin is not None:            # tuple[...], list[...], dict[...]
        ann = origin
    if not isinstance(ann, type):
        return None
    is_bool = isinstance(x, (bool, np.bool_))
    if ann is np.ndarray:
        return isinstance(x, (np.ndarray, np.generic))
    if ann in (float, int):
        if isinstance(x, np.ndarray):
            return x.dtype.kind in "iuf"
        return isinstance(x, _NUMBER) and not is_bool
    if ann is bool:
        return is_bool or (isinstance(x, np.ndarray) and x.dtype.kind == "b")
    if ann is str:
        return isinstance(x, str)
    if ann in (tuple, list):
        return isinstance(x, (tuple, list))
    if ann is dict:
        return isinstance(x, dict)
    if (getattr(ann, "__module__", "") or "").startswith("spikessm"):
        return isinstance(x, ann)
    return None


def _ann_name(ann) -> str:
    return getattr(ann, "__qualname__", None) or str(ann)


def _read(path) -> tuple[str, dict, dict]:
    """(path string, meta dict, arrays) of a saved file, or ValueError saying what is wrong."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"{p}: no such file")
    arrays = npz_members(p)
    blob = arrays.pop(_META, None)
    if blob is None:
        raise ValueError(f"{p}: no {_META!r} member; not a file written by spikessm.io.save")
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ValueError(f"{p}: the {_META!r} member is not UTF-8 JSON bytes")
    try:
        meta = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{p}: the {_META!r} member is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{p}: not a spikessm saved file (format marker missing)")
    v = meta.get("format_version")
    if type(v) is not int:
        raise ValueError(f"{p}: format_version {v!r} is not an integer")
    written = meta.get("spikessm_version", "unknown")
    if v > FORMAT_VERSION:
        raise ValueError(f"{p}: written by spikessm {written} in format version {v}; this "
                         f"spikessm ({_version()}) reads format versions up to "
                         f"{FORMAT_VERSION}: upgrade spikessm to load it")
    if v < 1:
        raise ValueError(f"{p}: format version {v} never existed (damaged file?)")
    while v < FORMAT_VERSION:
        step = _MIGRATIONS.get(v)
        if step is None:
            raise ValueError(f"{p}: format version {v} (spikessm {written}) cannot be "
                             f"migrated to version {FORMAT_VERSION}")
        meta = step(meta)
        v += 1
    return p, meta, arrays


def load(path, *, expect: type | tuple | None = None):
    """Load an object written by :func:`save`. Never unpickles.

    Args:
      path: the ``.npz`` file.
      expect: optional class (or tuple of classes); a file holding anything else raises
        ValueError.

    Raises FileNotFoundError for a missing file and ValueError naming the file for a
    damaged, truncated or foreign file, pickled content, a newer format version, or a class
    or field that this spikessm version does not have.
    """
    p, meta, arrays = _read(path)
    d = _Decoder(p, arrays, str(meta.get("spikessm_version", "unknown")))
    if "root" not in meta:
        raise ValueError(f"{p}: no object description in {_META!r}")
    obj = d.dec(meta["root"], "root")
    extra = set(arrays) - d.used
    if extra:
        raise ValueError(f"{p}: unexpected members {sorted(extra)[:5]} not described by "
                         f"{_META!r} (file damaged or edited?)")
    if expect is not None and not isinstance(obj, expect):
        raise ValueError(f"{p}: holds a {type(obj).__qualname__}, expected {expect}")
    return obj


def load_metadata(path) -> dict:
    """The description of a saved file without building the object.

    Returns a dict with ``format_version``, ``spikessm_version``, ``numpy_version``,
    ``python_version``, ``class`` ("module:qualname"), ``created`` (ISO 8601, UTC) and
    ``provenance`` (dict or None).
    """
    _, meta, _ = _read(path)
    return {k: v for k, v in meta.items() if k not in ("root", "format")}
