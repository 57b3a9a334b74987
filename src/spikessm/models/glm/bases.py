"""Covariate bases for point-process GLMs: functions of position (or any covariate).

Interface (a contract also used by the decoding filters)
--------------------------------------------------------
Every basis is a frozen dataclass with

* ``n_features`` (int property): number of output features ``B``;
* ``dim`` (int property): the dimension of one input point;
* ``feature_names`` (tuple of ``B`` str);
* ``__call__(x)``: maps positions ``x`` of shape ``(..., dim)`` to features
  ``(..., B)``.

``__call__`` uses only ``jax.numpy`` operations, so it is jit-able and differentiable by
JAX autodiff (``jax.grad``, ``jax.jacfwd``) inside a caller's traced function. Its dtype
follows its input: a JAX float64 input (JAX 64-bit mode on) gives float64 features; a
float32 input gives float32. A **NumPy** input (or list) is evaluated by the same code
with NumPy as the array module and returns a float64 NumPy array (fast design matrices,
float64 regardless of the caller's JAX settings). Integer inputs are promoted to float.

No basis includes a constant feature: the GLM (:func:`spikessm.models.glm.fit.fit_glm`)
fits its own intercept.

Bases
-----
* :class:`GaussianBumps` -- ``exp(-|x - c_b|^2 / (2 w^2))`` for centres ``c_b``
  (``GaussianBumps.grid`` lays them on a regular grid).
* :class:`Zernike` -- real Zernike polynomials on the disk of ``radius`` around
  ``center`` (2-D; for circular arenas), orthonormal on the unit disk, piston term left out.
* :class:`BSpline1D` -- B-splines of a given degree on a knot vector (1-D), agreeing with
  ``scipy.interpolate.BSpline`` inside the base interval.
* :class:`TensorProduct` -- products of 1-D bases along each coordinate (2-D splines).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..._checks import as_float_array

__all__ = ["GaussianBumps", "Zernike", "BSpline1D", "TensorProduct"]


def _float_array(value, name: str, ndim: int) -> np.ndarray:
    arr = as_float_array(value, name)  # a copy: never keep a reference to user data
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    arr.setflags(write=False)
    return arr


def _positive_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _evaluate(basis, x, fn):
    """Shared __call__ plumbing: check the trailing dimension, pick the array module.

    ``fn(x, xp)`` is written once against the NumPy/``jax.numpy`` common API; a NumPy
    input runs it with ``xp = numpy`` in float64 (fast for design matrices), a JAX array
    (or tracer) with ``xp = jax.numpy`` (jit-able, differentiable)."""
    xp = jnp if isinstance(x, jax.Array) else np
    if xp is np:
        x = as_float_array(x, "x")
        if not np.all(np.isfinite(x)):
            raise ValueError("x must be finite (no NaN or inf)")
    elif not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim == 0 or x.shape[-1] != basis.dim:
        raise ValueError(f"x must have shape (..., {basis.dim}), got {x.shape}")
    if xp is not np:
        return fn(x, xp)
    with np.errstate(over="ignore", invalid="ignore"):
        out = fn(x, xp)
    if not np.all(np.isfinite(out)):
        raise ValueError("x is too large: the basis features overflow float64")
    return out


@dataclass(frozen=True, eq=False)
class GaussianBumps:
    """Isotropic Gaussian bumps ``phi_b(x) = exp(-|x - c_b|^2 / (2 width^2))`` (peak 1).

    Args:
      centers: ``(B, dim)`` bump centres (same units as ``x``).
      width: bump standard deviation ``w > 0`` (same units as ``x``).
    """

    centers: np.ndarray
    width: float

    def __post_init__(self):
        c = _float_array(self.centers, "centers", 2)
        if c.shape[0] < 1 or c.shape[1] < 1:
            raise ValueError(f"centers must have shape (B, dim) with B, dim >= 1, got {c.shape}")
        w = _positive_number(self.width, "width")
        if not np.isfinite(w) or w <= 0:
            raise ValueError(f"width must be a positive number, got {self.width}")
        object.__setattr__(self, "centers", c)
        object.__setattr__(self, "width", w)

    @classmethod
    def grid(cls, n_per_dim, low, high, width=None, *, dim: int | None = None) -> GaussianBumps:
        """Centres on a regular grid: ``n_per_dim`` (int or one per dimension) points from
        ``low`` to ``high`` (scalars or one per dimension). The dimension is ``dim`` if
        given, else the length of whichever argument is a sequence, else 1 (so
        ``grid(7, -1, 1, dim=2)`` is a 7 x 7 grid). ``width`` defaults to the grid spacing
        (the largest spacing over dimensions)."""
        sizes = [np.size(v) for v in (n_per_dim, low, high)]
        dim = max(sizes) if dim is None else int(dim)
        if any(s not in (1, dim) for s in sizes):
            raise ValueError("n_per_dim, low and high must be scalars or have one entry per "
                             f"dimension; got sizes {sizes}")
        n = np.broadcast_to(np.asarray(n_per_dim), (dim,))
        lo = np.broadcast_to(np.asarray(low, dtype=float), (dim,))
        hi = np.broadcast_to(np.asarray(high, dtype=float), (dim,))
        if np.any(n < 1) or np.any(n != np.round(n)):
            raise ValueError(f"n_per_dim must be positive integers, got {n_per_dim}")
        if np.any(hi <= lo):
            raise ValueError(f"high must exceed low in every dimension, got low={low}, high={high}")
        axes = [np.linspace(lo[d], hi[d], int(n[d])) for d in range(dim)]
        mesh = np.meshgrid(*axes, indexing="ij")
        centers = np.stack([m.ravel() for m in mesh], axis=-1)
        if width is None:
            spacing = [(hi[d] - lo[d]) / (n[d] - 1) for d in range(dim) if n[d] > 1]
            width = max(spacing) if spacing else float(np.max(hi - lo))
        return cls(centers, width)

    @property
    def dim(self) -> int:
        return int(self.centers.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.centers.shape[0])

    @property
    def feature_names(self) -> tuple:
        return tuple("bump[" + ",".join(f"{v:.3g}" for v in c) + "]" for c in self.centers)

    def __call__(self, x):
        def fn(xj, xp):
            c = xp.asarray(self.centers, dtype=xj.dtype)
            d2 = xp.sum((xj[..., None, :] - c) ** 2, axis=-1)
            return xp.exp(-0.5 * d2 / self.width / self.width)

        return _evaluate(self, x, fn)


def _zernike_terms(max_order: int) -> list:
    return [(n, m) for n in range(1, max_order + 1) for m in range(-n, n + 1, 2)]


@dataclass(frozen=True, eq=False)
class Zernike:
    """Real Zernike polynomials ``Z_n^m`` for radial orders ``1 <= n <= max_order``.

    With ``(u, v) = (x - center) / radius``, ``rho = |(u, v)|`` and ``theta`` its angle,
    ``Z_n^m = N_nm R_n^|m|(rho) cos(m theta)`` for ``m >= 0`` and ``N_nm R_n^|m|(rho)
    sin(|m| theta)`` for ``m < 0``, with ``N_nm = sqrt(2(n+1))`` (``m != 0``) or
    ``sqrt(n+1)`` (``m == 0``), so that the set is orthonormal for the uniform measure on
    the unit disk. They are evaluated as polynomials in ``(u, v)`` (``rho^|m| e^{i|m|theta}
    = (u + iv)^|m|``), so they are smooth everywhere, the centre included; outside the disk
    they are the same polynomials (no clipping). The piston ``n = 0`` is left out (the GLM
    has an intercept): ``n_features = (max_order + 1)(max_order + 2)/2 - 1``.

    Args:
      max_order: highest radial order ``n`` (>= 1).
      radius: disk radius (units of ``x``).
      center: ``(2,)`` disk centre.
    """

    max_order: int
    radius: float = 1.0
    center: tuple = (0.0, 0.0)

    def __post_init__(self):
        if isinstance(self.max_order, bool) or not isinstance(self.max_order, (int, np.integer)):
            raise TypeError(f"max_order must be an integer, got {type(self.max_order).__name__}")
        if self.max_order < 1:
            raise ValueError(f"max_order must be >= 1, got {self.max_order}")
        r = _positive_number(self.radius, "radius")
        if not np.isfinite(r) or r <= 0:
            raise ValueError(f"radius must be a positive number, got {self.radius}")
        c = as_float_array(self.center, "center")
        if c.shape != (2,) or not np.all(np.isfinite(c)):
            raise ValueError(f"center must be two finite numbers, got {self.center}")
        object.__setattr__(self, "max_order", int(self.max_order))
        object.__setattr__(self, "radius", r)
        object.__setattr__(self, "center", (float(c[0]), float(c[1])))

    @property
    def dim(self) -> int:
        return 2

    @property
    def terms(self) -> tuple:
        """``(n, m)`` of each feature, in output order."""
        return tuple(_zernike_terms(self.max_order))

    @property
    def n_features(self) -> int:
        return len(self.terms)

    @property
    def feature_names(self) -> tuple:
        return tuple(f"zernike[{n},{m}]" for n, m in self.terms)

    def __call__(self, x):
        terms = self.terms

        def fn(xj, xp):
            u = (xj[..., 0] - self.center[0]) / self.radius
            v = (xj[..., 1] - self.center[1]) / self.radius
            r2 = u * u + v * v
            # (u + iv)^k for k = 0..max_order, real and imaginary parts
            re, im = [xp.ones_like(u)], [xp.zeros_like(u)]
            for _ in range(self.max_order):
                re.append(re[-1] * u - im[-1] * v)
                im.append(re[-2] * v + im[-1] * u)
            out = []
            for n, m in terms:
                a = abs(m)
                # R_n^a(rho) = rho^a * sum_k c_k rho^(n - a - 2k)
                poly = xp.zeros_like(u)
                for k in range((n - a) // 2 + 1):
                    coeff = ((-1) ** k * math.factorial(n - k)
                             / (math.factorial(k) * math.factorial((n + a) // 2 - k)
                                * math.factorial((n - a) // 2 - k)))
                    poly = poly + coeff * r2 ** ((n - a) // 2 - k)
                norm = math.sqrt(n + 1) if m == 0 else math.sqrt(2 * (n + 1))
                ang = re[a] if m >= 0 else im[a]
                out.append(norm * poly * ang)
            return xp.stack(out, axis=-1)

        return _evaluate(self, x, fn)


@dataclass(frozen=True, eq=False)
class BSpline1D:
    """B-spline basis of ``degree`` on the knot vector ``knots`` (1-D, ``x`` is ``(..., 1)``).

    ``n_features = len(knots) - degree - 1``. Inside the base interval
    ``[knots[degree], knots[-degree-1]]`` the features equal
    ``scipy.interpolate.BSpline.basis_element``-style basis functions, i.e.
    ``BSpline(knots, eye(n_features)[b], degree)(x)``. Outside it, ``x`` is clamped to the
    interval (constant extension; the derivative there is zero). Evaluated by the Cox-de
    Boor recursion in ``jax.numpy``.

    Args:
      knots: non-decreasing ``(K,)`` knot vector with ``K >= 2 * degree + 2`` and a base
        interval of positive length.
      degree: polynomial degree (3 = cubic).
    """

    knots: np.ndarray
    degree: int = 3

    def __post_init__(self):
        if isinstance(self.degree, bool) or not isinstance(self.degree, (int, np.integer)):
            raise TypeError(f"degree must be an integer, got {type(self.degree).__name__}")
        if self.degree < 0:
            raise ValueError(f"degree must be >= 0, got {self.degree}")
        t = _float_array(self.knots, "knots", 1)
        k = int(self.degree)
        if np.any(np.diff(t) < 0):
            raise ValueError("knots must be non-decreasing")
        if t.size < 2 * k + 2:
            raise ValueError(f"knots needs at least 2 * degree + 2 = {2 * k + 2} entries, "
                             f"got {t.size}")
        if t[-k - 1] <= t[k]:
            raise ValueError("the base interval [knots[degree], knots[-degree-1]] is empty")
        object.__setattr__(self, "knots", t)
        object.__setattr__(self, "degree", k)

    @classmethod
    def uniform(cls, n_basis: int, low: float, high: float, degree: int = 3) -> BSpline1D:
        """``n_basis`` B-splines on ``[low, high]`` with equally spaced interior knots and
        ``degree + 1`` repeated boundary knots (clamped)."""
        if n_basis < degree + 1:
            raise ValueError(f"n_basis must be >= degree + 1 = {degree + 1}, got {n_basis}")
        if not high > low:
            raise ValueError(f"high must exceed low, got low={low}, high={high}")
        inner = np.linspace(low, high, n_basis - degree + 1)
        knots = np.concatenate([np.full(degree, low), inner, np.full(degree, high)])
        return cls(knots, degree)

    @property
    def dim(self) -> int:
        return 1

    @property
    def n_features(self) -> int:
        return int(self.knots.size - self.degree - 1)

    @property
    def feature_names(self) -> tuple:
        return tuple(f"bspline[{b}]" for b in range(self.n_features))

    def __call__(self, x):
        t_np, k = self.knots, self.degree
        lo, hi = t_np[k], t_np[-k - 1]
        # index of the last non-empty knot interval inside the base interval: closed on the right
        last = int(np.nonzero(t_np[:-1] < t_np[1:])[0].max())
        last = min(last, t_np.size - k - 2)

        def fn(xj, xp):
            t = xp.asarray(t_np, dtype=xj.dtype)
            z = xp.clip(xj[..., 0], lo, hi)[..., None]
            left, right = t[:-1], t[1:]
            inside = (z >= left) & (z < right)
            is_last = np.arange(t_np.size - 1) == last
            inside = inside | (xp.asarray(is_last) & (z == right))
            b = inside.astype(xj.dtype)
            for d in range(1, k + 1):
                den1 = t[d:-1] - t[:-d - 1]
                den2 = t[d + 1:] - t[1:-d]
                safe1 = xp.where(den1 > 0, den1, 1.0)
                safe2 = xp.where(den2 > 0, den2, 1.0)
                w1 = xp.where(den1 > 0, (z - t[:-d - 1]) / safe1, 0.0)
                w2 = xp.where(den2 > 0, (t[d + 1:] - z) / safe2, 0.0)
                b = w1 * b[..., :-1] + w2 * b[..., 1:]
            return b

        return _evaluate(self, x, fn)


@dataclass(frozen=True, eq=False)
class TensorProduct:
    """Tensor product of 1-D bases, one per coordinate: feature ``(b_1, ..., b_D)`` is
    ``prod_d phi^{(d)}_{b_d}(x_d)`` (C order over ``b``). ``dim = len(bases)``.

    Args:
      bases: tuple of bases with ``dim == 1`` each (e.g. two :class:`BSpline1D`).
    """

    bases: tuple

    def __post_init__(self):
        bases = tuple(self.bases)
        if len(bases) < 1:
            raise ValueError("bases must hold at least one basis")
        for i, b in enumerate(bases):
            if getattr(b, "dim", None) != 1:
                raise ValueError(f"bases[{i}] must be a 1-D basis (dim == 1)")
        object.__setattr__(self, "bases", bases)

    @property
    def dim(self) -> int:
        return len(self.bases)

    @property
    def n_features(self) -> int:
        return int(np.prod([b.n_features for b in self.bases]))

    @property
    def feature_names(self) -> tuple:
        names = [""]
        for b in self.bases:
            names = [f"{a}*{n}" if a else n for a in names for n in b.feature_names]
        return tuple(names)

    def __call__(self, x):
        def fn(xj, xp):
            out = xp.ones(xj.shape[:-1] + (1,), dtype=xj.dtype)
            for d, b in enumerate(self.bases):
                f = b(xj[..., d:d + 1])
                out = (out[..., :, None] * f[..., None, :]).reshape(xj.shape[:-1] + (-1,))
            return out

        return _evaluate(self, x, fn)
