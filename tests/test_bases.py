"""Covariate bases: agreement with independent references (scipy B-splines, direct Zernike
formulas in polar coordinates, numerical orthonormality), JAX autodiff, dtype handling."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.interpolate import BSpline

from spikessm.models.glm.bases import BSpline1D, GaussianBumps, TensorProduct, Zernike


def test_gaussian_bumps_values_and_grid(rng):
    assert GaussianBumps.grid(3, -1.0, 1.0, dim=2).centers.shape == (9, 2)
    basis = GaussianBumps.grid((3, 4), (-1.0, -2.0), (1.0, 2.0))
    assert basis.n_features == 12 and basis.dim == 2
    assert basis.width == pytest.approx(4 / 3)  # largest spacing
    x = rng.normal(size=(5, 7, 2))
    f = basis(x)
    assert f.shape == (5, 7, 12) and f.dtype == np.float64
    c = basis.centers
    ref = np.exp(-((x[..., None, 0] - c[:, 0]) ** 2 + (x[..., None, 1] - c[:, 1]) ** 2)
                 / (2 * basis.width ** 2))
    np.testing.assert_allclose(f, ref, rtol=1e-13)
    assert len(basis.feature_names) == 12


def _zernike_polar(n, m, rho, theta):
    a = abs(m)
    R = sum((-1) ** k * math.factorial(n - k)
            / (math.factorial(k) * math.factorial((n + a) // 2 - k) * math.factorial((n - a) // 2 - k))
            * rho ** (n - 2 * k) for k in range((n - a) // 2 + 1))
    norm = math.sqrt(n + 1) if m == 0 else math.sqrt(2 * (n + 1))
    return norm * R * (np.cos(m * theta) if m >= 0 else np.sin(a * theta))


def test_zernike_matches_polar_formula_and_is_orthonormal(rng):
    basis = Zernike(4, radius=2.0, center=(0.5, -0.5))
    assert basis.n_features == 14
    pts = rng.uniform(-1.5, 2.5, size=(200, 2))
    f = basis(pts)
    u, v = (pts[:, 0] - 0.5) / 2.0, (pts[:, 1] + 0.5) / 2.0
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    ref = np.stack([_zernike_polar(n, m, rho, theta) for n, m in basis.terms], axis=-1)
    np.testing.assert_allclose(f, ref, rtol=1e-10, atol=1e-12)
    # orthonormal on the unit disk: Monte-Carlo-free polar quadrature
    r_nodes, r_w = np.polynomial.legendre.leggauss(20)
    r_nodes, r_w = 0.5 * (r_nodes + 1), 0.5 * r_w
    th = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    R, TH = np.meshgrid(r_nodes, th, indexing="ij")
    W = (r_w[:, None] * R) * (2 * np.pi / 64) / np.pi  # area measure / pi
    unit = Zernike(4)
    F = unit(np.stack([R * np.cos(TH), R * np.sin(TH)], -1).reshape(-1, 2))
    gram = F.T @ (W.ravel()[:, None] * F)
    np.testing.assert_allclose(gram, np.eye(14), atol=1e-10)


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_bspline_matches_scipy(degree, rng):
    knots = np.sort(np.r_[np.zeros(degree), rng.uniform(0, 1, 6), [0.0, 1.0], np.ones(degree)])
    knots[degree + 3] = knots[degree + 2]  # a repeated interior knot
    basis = BSpline1D(knots, degree)
    nb = basis.n_features
    x = np.r_[rng.uniform(0, 1, 300), 0.0, knots[degree + 1:degree + 6]]
    f = basis(x[:, None])
    ref = np.stack([BSpline(knots, np.eye(nb)[b], degree)(x) for b in range(nb)], -1)
    np.testing.assert_allclose(f, ref, atol=1e-9)
    # right end: the limit from the left; outside the base interval: clamped
    right = np.array([BSpline(knots, np.eye(nb)[b], degree)(1.0 - 1e-12) for b in range(nb)])
    np.testing.assert_allclose(basis(np.array([[1.0], [5.0]])), [right, right], atol=1e-9)
    np.testing.assert_allclose(basis(np.array([[-3.0]]))[0], f[300], atol=1e-12)


def test_bspline_uniform_partition_of_unity():
    basis = BSpline1D.uniform(8, -1.0, 1.0)
    x = np.linspace(-1, 1, 101)[:, None]
    np.testing.assert_allclose(basis(x).sum(-1), 1.0, atol=1e-12)
    assert basis.n_features == 8


def test_tensor_product_and_jax_autodiff():
    bx, by = BSpline1D.uniform(5, -1, 1), BSpline1D.uniform(4, -1, 1)
    tp = TensorProduct((bx, by))
    assert tp.n_features == 20 and tp.dim == 2
    x = np.array([[0.3, -0.2], [0.9, 0.1]])
    np.testing.assert_allclose(tp(x), (bx(x[:, :1])[:, :, None] * by(x[:, 1:])[:, None, :]).reshape(2, 20),
                               rtol=1e-13)
    w = np.linspace(-1, 1, 20)
    for basis, wts, x0 in [(tp, w, x[0]), (Zernike(3), w[:9], np.array([0.2, -0.4])),
                           (GaussianBumps.grid(3, -1, 1), w[:3], np.array([0.1]))]:
        with jax.enable_x64(True):
            g = jax.jit(jax.grad(lambda z, b=basis, ww=wts: jnp.dot(b(z), ww)))(jnp.asarray(x0))
            assert g.dtype == jnp.float64
            pts = np.stack([x0, 0.5 * x0, -x0])  # the JAX path agrees with the NumPy path
            jx = jax.jit(basis)(jnp.asarray(pts))
            assert jx.dtype == jnp.float64
            np.testing.assert_allclose(np.asarray(jx), basis(pts), rtol=1e-12, atol=1e-14)
        eps = 1e-6  # central differences on the NumPy path (same formulas, float64)
        num = [(basis(x0 + eps * e) @ wts - basis(x0 - eps * e) @ wts) / (2 * eps)
               for e in np.eye(x0.size)]
        np.testing.assert_allclose(np.asarray(g), np.array(num), rtol=1e-6, atol=1e-8)
    # float32 in (JAX default mode) gives float32 out
    out = Zernike(2)(jnp.zeros((3, 2), dtype=jnp.float32))
    assert out.dtype == jnp.float32 and out.shape == (3, 5)


def test_bases_reject_bad_input():
    with pytest.raises(ValueError, match="width"):
        GaussianBumps(np.zeros((2, 2)), 0.0)
    with pytest.raises(ValueError, match="centers"):
        GaussianBumps(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="x must have shape"):
        GaussianBumps(np.zeros((2, 2)), 1.0)(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="max_order"):
        Zernike(0)
    with pytest.raises(TypeError, match="max_order"):
        Zernike(2.5)
    with pytest.raises(ValueError, match="non-decreasing"):
        BSpline1D([0, 1, 0.5, 2], 1)
    with pytest.raises(ValueError, match="x must have shape"):
        BSpline1D.uniform(5, 0, 1)(np.zeros((3, 2)))
