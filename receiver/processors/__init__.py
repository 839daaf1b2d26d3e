"""Processors between assembly and export; see :mod:`.batch`."""
