"""Data layer: the trial container, binning spike times, covariates, readers.

- :class:`SpikeTrials`: binned counts of N units in K (ragged) trials with unit ids, bin
  width, trial labels and starts, aligned covariates and provenance; accepted by every model.
- :func:`bin_spike_times`, :func:`resample_covariate`, :func:`rebin_counts`.
- Readers: :func:`read` (by file extension), :func:`read_nwb` (pynwb), :func:`from_pynapple`,
  :func:`from_neo`, :func:`read_mat`, :func:`read_npz`, :func:`read_csv`. The optional
  packages (``pip install "spikessm[io]"``) are imported only when a reader needs them.
- Validation helpers used by the models: :func:`as_trial_list`, :func:`pack_trials`.
"""

from .binning import bin_spike_times, rebin_counts, resample_covariate, trial_windows
from .container import SpikeTrials
from .files import read, read_csv, read_mat, read_npz
from .interop import from_neo, from_pynapple
from .nwb import read_nwb
from .trials import TrialBatch, as_trial_list, pack_trials

__all__ = ["SpikeTrials", "TrialBatch", "as_trial_list", "bin_spike_times", "from_neo",
           "from_pynapple", "pack_trials", "read", "read_csv", "read_mat", "read_npz",
           "read_nwb", "rebin_counts", "resample_covariate", "trial_windows"]
