"""The ``spikessm`` command."""
