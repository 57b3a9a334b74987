"""Sweeps over recordings x models x state dimensions x restarts on Dask.

- :func:`sweep` / :class:`SweepResult`: one Dask task per fit, results gathered into a
  pandas DataFrame, fits saved under ``out_dir``, failures isolated, resumable
  (:mod:`spikessm.distributed.sweep`).
- :func:`fit_task` / :class:`TaskSpec` / :func:`task_seed`: one task, runnable in-process
  (:mod:`spikessm.distributed.tasks`).
- ``spikessm sweep CONFIG.json --out DIR``: :func:`spikessm.distributed.cli.sweep_main`.

Needs ``pip install "spikessm[dask]"`` (dask.distributed, pandas). See ``docs/sweeps.md``.
"""

from .sweep import SweepResult, sweep
from .tasks import MODELS, TaskSpec, fit_task, task_seed

__all__ = ["MODELS", "SweepResult", "TaskSpec", "fit_task", "sweep", "task_seed"]
