"""Tests for spikessm.evaluation.gauge (identifiability / gauge tools)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from spikessm.evaluation import (
    affine_align,
    canonical_transform,
    canonicalize,
    eigenvalue_match,
    max_subspace_angle,
    procrustes_align,
    subspace_angles,
    transform_latents,
    transform_params,
)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _random_spd(rng, d, lo=0.3, hi=2.0):
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (U * rng.uniform(lo, hi, size=d)) @ U.T


def _random_invertible(rng, d, lo=0.5, hi=2.0):
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (U * rng.uniform(lo, hi, size=d)) @ V.T


def _random_model(rng, d=3, N=12, p=2):
    A = rng.standard_normal((d, d))
    A *= 0.9 / np.max(np.abs(np.linalg.eigvals(A)))
    return {
        "A": A,
        "b": rng.standard_normal(d),
        "Q": _random_spd(rng, d),
        "C": rng.standard_normal((N, d)),
        "d": rng.standard_normal(N),
        "R": _random_spd(rng, N),
        "m0": rng.standard_normal(d),
        "P0": _random_spd(rng, d),
        "B": rng.standard_normal((d, p)),
        "D": rng.standard_normal((N, p)),
        "name": "toy",
    }


def _kalman_loglik(params, y, u):
    """Exact Gaussian log-likelihood of y (T, N) given inputs u (T, p), plain NumPy."""
    A, b, Q, C, dd, R = (params[k] for k in ("A", "b", "Q", "C", "d", "R"))
    B, D = params["B"], params["D"]
    m, P = params["m0"], params["P0"]
    ll = 0.0
    for t in range(y.shape[0]):
        if t > 0:
            m = A @ m + b + B @ u[t]
            P = A @ P @ A.T + Q
        S = C @ P @ C.T + R
        r = y[t] - (C @ m + dd + D @ u[t])
        _, logdet = np.linalg.slogdet(S)
        ll += -0.5 * (logdet + r @ np.linalg.solve(S, r) + len(r) * np.log(2 * np.pi))
        K = np.linalg.solve(S, C @ P).T
        m = m + K @ r
        P = P - K @ C @ P
    return ll


def _assert_canonical_C(C, tol=1e-10):
    G = C.T @ C
    scale = np.max(np.abs(G))
    off = G - np.diag(np.diag(G))
    assert np.max(np.abs(off)) <= tol * scale
    assert np.all(np.diff(np.diag(G)) <= 0.0)
    idx = np.argmax(np.abs(C), axis=0)
    assert np.all(C[idx, np.arange(C.shape[1])] > 0.0)


# ---------------------------------------------------------------------------
# canonical form
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("d", [1, 3, 4])
def test_canonical_form_is_gauge_invariant(seed, d):
    rng = np.random.default_rng(seed)
    model = _random_model(rng, d=d)
    S0 = _random_invertible(rng, d)
    model2 = transform_params(model, S0)
    # sanity: the gauge transform genuinely changed the parameters
    assert not np.allclose(model2["C"], model["C"])

    can1, S1 = canonicalize(model)
    can2, S2 = canonicalize(model2)
    # the singular values must be distinct for the canonical form to be unique
    sv = np.sqrt(np.diag(can1["C"].T @ can1["C"]))
    assert d == 1 or np.min(-np.diff(sv)) > 1e-3

    for key in ("A", "b", "Q", "C", "m0", "P0", "B"):
        np.testing.assert_allclose(can1[key], can2[key], rtol=0, atol=1e-10, err_msg=key)
    np.testing.assert_allclose(can1["Q"], np.eye(d), atol=1e-12)
    # the two canonicalising maps compose consistently: S2 S0 = S1
    np.testing.assert_allclose(S2 @ S0, S1, atol=1e-10)


def test_canonical_form_invariance_with_P_whitening():
    rng = np.random.default_rng(7)
    d = 3
    model = _random_model(rng, d=d)
    P = _random_spd(rng, d)
    S0 = _random_invertible(rng, d)
    model2 = transform_params(model, S0)
    can1, S1 = canonicalize(model, P=P)
    can2, _ = canonicalize(model2, P=S0 @ P @ S0.T)
    for key in ("A", "b", "Q", "C", "m0", "P0"):
        np.testing.assert_allclose(can1[key], can2[key], rtol=0, atol=1e-10, err_msg=key)
    np.testing.assert_allclose(S1 @ P @ S1.T, np.eye(d), atol=1e-12)
    _assert_canonical_C(can1["C"])
    # P takes precedence over Q: Q is not whitened
    assert not np.allclose(can1["Q"], np.eye(d), atol=1e-3)


@pytest.mark.parametrize("whiten", ["Q", "P", "none"])
def test_canonical_C_is_diagonal_descending_and_sign_fixed(whiten):
    rng = np.random.default_rng(3)
    d, N = 4, 15
    C = rng.standard_normal((N, d)) @ _random_invertible(rng, d)
    M = _random_spd(rng, d)
    kwargs = {"Q": M} if whiten == "Q" else {"P": M} if whiten == "P" else {}
    S = canonical_transform(C, **kwargs)
    Cc = C @ np.linalg.inv(S)
    _assert_canonical_C(Cc)
    if whiten == "none":
        np.testing.assert_allclose(S @ S.T, np.eye(d), atol=1e-12)
    else:
        np.testing.assert_allclose(S @ M @ S.T, np.eye(d), atol=1e-12)


def test_canonical_transform_fixes_signs_and_order_of_already_canonical_model():
    # C already has orthogonal columns, but in ascending norm order with a negative column
    C = np.array([[1.0, 0.0], [0.0, -3.0], [0.0, 1.0]])
    S = canonical_transform(C)
    expected = np.array([[0.0, -1.0], [1.0, 0.0]])
    np.testing.assert_allclose(S, expected, atol=1e-14)
    np.testing.assert_allclose(
        C @ np.linalg.inv(S), [[0.0, 1.0], [3.0, 0.0], [-1.0, 0.0]], atol=1e-14
    )


def test_transformed_model_has_identical_likelihood_and_invariants():
    rng = np.random.default_rng(11)
    d, N, p, T = 3, 6, 2, 25
    model = _random_model(rng, d=d, N=N, p=p)
    S0 = _random_invertible(rng, d)
    model2 = transform_params(model, S0)
    can, _ = canonicalize(model)

    y = rng.standard_normal((T, N))
    u = rng.standard_normal((T, p))
    ll = _kalman_loglik(model, y, u)
    for other in (model2, can):
        np.testing.assert_allclose(_kalman_loglik(other, y, u), ll, rtol=1e-10)

        # observable-side invariants
        np.testing.assert_allclose(
            other["C"] @ other["Q"] @ other["C"].T,
            model["C"] @ model["Q"] @ model["C"].T,
            atol=1e-10,
        )
        np.testing.assert_allclose(
            other["C"] @ other["P0"] @ other["C"].T,
            model["C"] @ model["P0"] @ model["C"].T,
            atol=1e-10,
        )
        for k in range(4):
            Ak = np.linalg.matrix_power(model["A"], k)
            Ak2 = np.linalg.matrix_power(other["A"], k)
            np.testing.assert_allclose(
                other["C"] @ Ak2 @ other["Q"] @ other["C"].T,
                model["C"] @ Ak @ model["Q"] @ model["C"].T,
                atol=1e-10,
            )
            np.testing.assert_allclose(
                other["C"] @ Ak2 @ other["b"], model["C"] @ Ak @ model["b"], atol=1e-10
            )
            np.testing.assert_allclose(
                other["C"] @ Ak2 @ other["B"], model["C"] @ Ak @ model["B"], atol=1e-10
            )
        # pass-through keys are unchanged
        for key in ("d", "R", "D", "name"):
            np.testing.assert_array_equal(other[key], model[key])

    # and the likelihood check really can fail: a non-gauge perturbation changes it
    bad = dict(model2)
    bad["Q"] = model2["Q"] * 1.5
    assert abs(_kalman_loglik(bad, y, u) - ll) > 1e-3


def test_transform_latents_matches_parameter_transform():
    rng = np.random.default_rng(5)
    T, d = 8, 3
    S = _random_invertible(rng, d)
    mu = rng.standard_normal((T, d))
    covs = np.stack([_random_spd(rng, d) for _ in range(T)])
    mu2, cov2 = transform_latents(mu, S, covs)
    assert mu2.shape == (T, d) and cov2.shape == (T, d, d)
    for t in range(T):
        np.testing.assert_allclose(mu2[t], S @ mu[t], atol=1e-12)
        np.testing.assert_allclose(cov2[t], S @ covs[t] @ S.T, atol=1e-12)
    mu3, none = transform_latents(mu, S)
    assert none is None
    np.testing.assert_allclose(mu3, mu2)
    _, cov_single = transform_latents(mu, S, covs[0])
    np.testing.assert_allclose(cov_single, S @ covs[0] @ S.T, atol=1e-12)
    # C x is invariant when C is transformed consistently
    C = rng.standard_normal((5, d))
    C2 = transform_params({"C": C}, S)["C"]
    np.testing.assert_allclose(mu2 @ C2.T, mu @ C.T, atol=1e-11)


# ---------------------------------------------------------------------------
# alignment
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("allow_scaling", [False, True])
def test_procrustes_recovers_known_rotation(allow_scaling):
    rng = np.random.default_rng(21)
    T, d = 200, 3
    Y = rng.standard_normal((T, d)) + np.array([1.0, -2.0, 0.5])
    R0, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scale = 2.5 if allow_scaling else 1.0
    offset = np.array([3.0, 0.0, -1.0])
    # X = (Y - mean) R0^T / scale + offset, so the aligning rotation is R0
    X = (Y - Y.mean(axis=0)) @ R0.T / scale + offset
    aligned, R = procrustes_align(X, Y, allow_scaling=allow_scaling)
    np.testing.assert_allclose(R, R0, atol=1e-10)
    np.testing.assert_allclose(R.T @ R, np.eye(d), atol=1e-12)
    np.testing.assert_allclose(aligned, Y, atol=1e-10)


def test_procrustes_without_scaling_does_not_fit_scale():
    rng = np.random.default_rng(22)
    Y = rng.standard_normal((50, 2))
    X = 2.0 * Y
    aligned, R = procrustes_align(X, Y)
    np.testing.assert_allclose(R, np.eye(2), atol=1e-10)
    np.testing.assert_allclose(aligned - Y.mean(0), 2.0 * (Y - Y.mean(0)), atol=1e-10)


def test_affine_align_recovers_invertible_map_exactly():
    rng = np.random.default_rng(31)
    T, d = 40, 4
    Y = rng.standard_normal((T, d))
    S0 = _random_invertible(rng, d)
    c = rng.standard_normal(d)
    X = Y @ S0.T + c  # fitted latents = S0 x_true + c
    aligned, M = affine_align(X, Y)
    np.testing.assert_allclose(M, np.linalg.inv(S0).T, atol=1e-10)
    np.testing.assert_allclose(aligned, Y, atol=1e-10)
    # procrustes cannot undo a non-orthogonal map
    aligned_p, _ = procrustes_align(X, Y)
    assert np.max(np.abs(aligned_p - Y)) > 1e-2


# ---------------------------------------------------------------------------
# invariant comparisons
# ---------------------------------------------------------------------------


def test_subspace_angle_zero_under_gauge():
    rng = np.random.default_rng(41)
    C = rng.standard_normal((20, 3))
    S = _random_invertible(rng, 3)
    angles = subspace_angles(C @ S, C)
    assert angles.shape == (3,)
    np.testing.assert_allclose(angles, 0.0, atol=1e-6)
    assert max_subspace_angle(C @ S, C) < 1e-6
    # a different random subspace is far from zero
    assert max_subspace_angle(rng.standard_normal((20, 3)), C) > 10.0


def test_subspace_angles_agree_with_scipy_on_random_subspaces():
    import scipy.linalg as scipy_linalg  # a runtime dependency: never skipped
    rng = np.random.default_rng(42)
    for d1, d2 in [(3, 3), (2, 4), (4, 1)]:
        A = rng.standard_normal((10, d1))
        B = rng.standard_normal((10, d2))
        ref = np.sort(np.degrees(scipy_linalg.subspace_angles(A, B)))
        np.testing.assert_allclose(subspace_angles(A, B), ref, atol=1e-6)
        np.testing.assert_allclose(subspace_angles(B, A), ref, atol=1e-6)


@pytest.mark.parametrize("theta_deg", [1e-6, 0.5, 17.0, 60.0, 90.0])
def test_subspace_angle_known_values(theta_deg):
    th = np.radians(theta_deg)
    # 1-D subspaces of R^2
    u = np.array([[1.0], [0.0]])
    v = np.array([[np.cos(th)], [np.sin(th)]])
    np.testing.assert_allclose(subspace_angles(u, 3.0 * v), [theta_deg], atol=1e-9)
    np.testing.assert_allclose(subspace_angles(u, v, degrees=False), [th], atol=1e-11)
    # 2-D subspaces of R^3 sharing one direction: angles {0, theta}, ascending
    C1 = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    C2 = np.array([[2.0, 1.0], [0.0, np.cos(th)], [0.0, np.sin(th)]])
    ang = subspace_angles(C1, C2)
    np.testing.assert_allclose(ang, [0.0, theta_deg], atol=1e-9)
    assert max_subspace_angle(C1, C2) == pytest.approx(theta_deg, abs=1e-9)


def test_eigenvalue_match_zero_under_similarity_and_detects_change():
    rng = np.random.default_rng(51)
    d = 5
    A = rng.standard_normal((d, d))  # generically has complex eigenvalue pairs
    S = _random_invertible(rng, d)
    A2 = S @ A @ np.linalg.inv(S)
    assert eigenvalue_match(A2, A) < 1e-10
    # known spectra, differently ordered
    A_true = np.diag([0.9, 0.5, -0.2])
    A_fit = S[:3, :3] @ np.diag([-0.25, 0.9, 0.52]) @ np.linalg.inv(S[:3, :3])
    assert eigenvalue_match(A_fit, A_true) == pytest.approx(0.05, abs=1e-10)

    # complex pair rotation matrices
    def rot(w, r=0.95):
        return r * np.array([[np.cos(w), -np.sin(w)], [np.sin(w), np.cos(w)]])

    dist = abs(0.95 * np.exp(0.3j) - 0.95 * np.exp(0.2j))
    assert eigenvalue_match(rot(0.3), rot(0.2)) == pytest.approx(dist, abs=1e-12)


# ---------------------------------------------------------------------------
# input validation and immutability
# ---------------------------------------------------------------------------

_C = np.ones((4, 2))
_C[0, 1] = 2.0


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: canonical_transform(np.ones(4)), ValueError, "C"),
        (lambda: canonical_transform(np.ones((4, 0))), ValueError, "C"),
        (lambda: canonical_transform(np.full((3, 2), np.nan)), ValueError, "C"),
        (lambda: canonical_transform("abc"), TypeError, "C"),
        (lambda: canonical_transform(np.ones((3, 2), dtype=complex)), TypeError, "C"),
        (lambda: canonical_transform(_C, Q=np.eye(3)), ValueError, "Q"),
        (lambda: canonical_transform(_C, Q=np.diag([1.0, -1.0])), ValueError, "Q"),
        (lambda: canonical_transform(_C, Q=np.array([[1.0, 0.5], [0.0, 1.0]])), ValueError, "Q"),
        (lambda: canonical_transform(_C, P=np.array([[1.0, np.inf], [0.0, 1.0]])), ValueError, "P"),
        (lambda: canonicalize({"A": np.eye(2)}), ValueError, "C"),
        (lambda: canonicalize([("C", _C)]), TypeError, "params"),
        (lambda: canonicalize({"C": _C, "A": np.eye(3)}), ValueError, "A"),
        (lambda: canonicalize({"C": _C, "b": np.ones(3)}), ValueError, "b"),
        (lambda: canonicalize({"C": _C, "Q": np.eye(3)}), ValueError, "Q"),
        (lambda: canonicalize({"C": _C, "m0": np.array([1.0, np.nan])}), ValueError, "m0"),
        (lambda: canonicalize({"C": _C, "B": np.ones((3, 1))}), ValueError, "B"),
        (lambda: transform_params({"C": _C}, np.zeros((2, 2))), ValueError, "S"),
        (lambda: transform_params({"C": _C}, np.eye(3)), ValueError, "C"),
        (lambda: transform_latents(np.ones((5, 2)), np.eye(3)), ValueError, "S"),
        (lambda: transform_latents(np.ones(5), np.eye(1)), ValueError, "mean"),
        (
            lambda: transform_latents(np.ones((5, 2)), np.eye(2), np.ones((4, 2, 2))),
            ValueError,
            "cov",
        ),
        (lambda: procrustes_align(np.ones((5, 2)), np.ones((5, 3))), ValueError, "Y"),
        (lambda: procrustes_align(np.ones((5, 0)), np.ones((5, 0))), ValueError, "X"),
        (lambda: procrustes_align(np.ones((1, 2)), np.ones((1, 2))), ValueError, "X"),
        (lambda: affine_align(np.ones((2, 2)), np.ones((2, 2))), ValueError, "X"),
        (lambda: affine_align(np.full((5, 2), np.inf), np.ones((5, 2))), ValueError, "X"),
        (lambda: subspace_angles(np.ones((4, 1)), np.ones((5, 1))), ValueError, "C_fit"),
        (lambda: subspace_angles(np.ones((4, 2)), _C), ValueError, "C_fit"),
        (lambda: max_subspace_angle(_C, np.ones((4, 0))), ValueError, "C_true"),
        (lambda: eigenvalue_match(np.ones((2, 3)), np.ones((2, 3))), ValueError, "A_fit"),
        (lambda: eigenvalue_match(np.eye(2), np.eye(3)), ValueError, "A_true"),
        (lambda: eigenvalue_match(np.eye(2), None), TypeError, "A_true"),
    ],
)
def test_bad_inputs_raise_naming_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_inputs_are_not_modified_and_outputs_are_new():
    rng = np.random.default_rng(61)
    d = 3
    model = _random_model(rng, d=d)
    P = _random_spd(rng, d)
    snapshot = copy.deepcopy(model)
    P_copy = P.copy()

    can, S = canonicalize(model, P=P)
    for key, val in model.items():
        np.testing.assert_array_equal(val, snapshot[key])
        if isinstance(val, np.ndarray):
            assert not np.shares_memory(val, can[key]), key
    np.testing.assert_array_equal(P, P_copy)

    C, Q = model["C"], model["Q"]
    S1 = canonical_transform(C, Q=Q)
    assert not np.shares_memory(S1, C) and not np.shares_memory(S1, Q)
    np.testing.assert_array_equal(C, snapshot["C"])
    np.testing.assert_array_equal(Q, snapshot["Q"])

    mu = rng.standard_normal((10, d))
    cov = np.stack([P] * 10)
    mu_c, cov_c, S_c = mu.copy(), cov.copy(), S.copy()
    transform_latents(mu, S, cov)
    np.testing.assert_array_equal(mu, mu_c)
    np.testing.assert_array_equal(cov, cov_c)
    np.testing.assert_array_equal(S, S_c)

    X = rng.standard_normal((10, d))
    Y = rng.standard_normal((10, d))
    X_c, Y_c = X.copy(), Y.copy()
    for fn in (procrustes_align, affine_align):
        aligned, _ = fn(X, Y)
        assert not np.shares_memory(aligned, X) and not np.shares_memory(aligned, Y)
    procrustes_align(X, Y, allow_scaling=True)
    np.testing.assert_array_equal(X, X_c)
    np.testing.assert_array_equal(Y, Y_c)

    A1, A2 = model["A"], rng.standard_normal((d, d))
    A1_c, A2_c = A1.copy(), A2.copy()
    eigenvalue_match(A1, A2)
    subspace_angles(C, C @ A2)
    np.testing.assert_array_equal(A1, A1_c)
    np.testing.assert_array_equal(A2, A2_c)
    np.testing.assert_array_equal(C, snapshot["C"])
