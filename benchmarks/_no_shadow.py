"""Imported first by every script here, before anything that could import PyPI's `packaging`.

Run as ``python benchmarks/NAME.py``, a script's folder is ``sys.path[0]``, and
``benchmarks/packaging.py`` (the issue's name for the packaging benchmark) would then shadow
the `packaging` library that transformers imports: every benchmark died with "cannot import
name 'version' from 'packaging'". This drops the folder from the path.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
