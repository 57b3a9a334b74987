"""Data layer: trial containers and validation."""

from .trials import TrialBatch, as_trial_list, pack_trials

__all__ = ["TrialBatch", "as_trial_list", "pack_trials"]
