"""Saving and loading without pickle, and safe output files.

- :func:`save` / :func:`load`: any spikessm result, parameter set, model or data container
  as one ``.npz`` (arrays + JSON metadata with versions and provenance); bit-identical
  round trips, never unpickles. :func:`load_metadata` reads the description only.
- :func:`atomic_write`: write a file so that an interrupted run leaves no partial file.
- :func:`safe_output_path`: a file name confined to the output folder the user named.
"""

from .atomic import atomic_write, safe_output_path
from .saved import FORMAT_VERSION, load, load_metadata, save

__all__ = ["FORMAT_VERSION", "atomic_write", "load", "load_metadata", "safe_output_path",
           "save"]
