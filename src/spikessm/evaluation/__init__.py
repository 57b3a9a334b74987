"""Evaluation utilities for spikessm models (the gauge math itself lives in
:mod:`spikessm.models.gauge`, below every model that canonicalises its fits)."""

from spikessm.models.gauge import (
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

__all__ = [
    "affine_align",
    "canonical_transform",
    "canonicalize",
    "eigenvalue_match",
    "max_subspace_angle",
    "procrustes_align",
    "subspace_angles",
    "transform_latents",
    "transform_params",
]
