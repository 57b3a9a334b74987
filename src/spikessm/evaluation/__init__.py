"""Evaluation utilities for spikessm models."""

from spikessm.evaluation.gauge import (
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
