"""Poisson hidden Markov model fit by exact EM (see docs/hmm.md)."""

from .model import HMMFitResult, LineResult, PoissonHMM
from .params import PoissonHMMParams, make_params, transition_matrix_from_rates
from .selection import NStatesSelection, align_states, select_n_states

__all__ = ["HMMFitResult", "LineResult", "NStatesSelection", "PoissonHMM",
           "PoissonHMMParams", "align_states", "make_params", "select_n_states",
           "transition_matrix_from_rates"]
