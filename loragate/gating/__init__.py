"""Gating: the pytest plugin, its fixtures, the verdict and the reports.

Everything a project outside this repository needs to gate a model lives here, so that
``pip install loragate`` and ``pytest --model SPEC`` work from any folder.
"""
