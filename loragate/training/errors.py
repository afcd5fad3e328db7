"""The errors training raises; each message says why and what to do."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot start or cannot finish; the message says why and what to do."""


class TrainingDiverged(TrainingError):
    """The loss or the weights became NaN/inf; the last good checkpoint is kept."""

