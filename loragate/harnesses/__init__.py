"""The Web4 harnesses: pure, deterministic validators (text -> HarnessResult).

Rules: ../shared/spec/web4.md. The harnesses are declared in :mod:`loragate.harnesses.registry`
(name, default gate, threshold, metric, validator); each built-in module exposes
``validate(text, **context) -> HarnessResult``.
"""

from loragate.harnesses.base import HarnessResult
from loragate.harnesses.registry import BUILTINS, HARNESS_NAMES, Harness

__all__ = ["BUILTINS", "HARNESS_NAMES", "Harness", "HarnessResult"]
