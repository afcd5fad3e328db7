"""One entry point to run any harness on an answer, with the context its prompt record carries.

A prompt record (a line of ``data/prompts/<harness>.jsonl``) holds the messages and, where a
harness needs it, the context: ``tron_feedback`` for ``tron_format``, ``expected`` (a dict)
for ``tool_success``, ``expected`` ("refuse" | "comply") for ``refusal``.
"""

from __future__ import annotations

import importlib
from typing import Any

from loragate.harnesses.base import HARNESS_NAMES, HarnessResult


def validator_module(harness: str):
    if harness not in HARNESS_NAMES:
        raise KeyError(f"unknown harness '{harness}'; known: {', '.join(HARNESS_NAMES)}")
    return importlib.import_module(f"loragate.harnesses.{harness}")


def score(harness: str, text: str, record: dict[str, Any] | None = None) -> HarnessResult:
    """Validate ``text`` with ``harness``, passing the context that harness needs."""
    record = record or {}
    module = validator_module(harness)
    if harness == "tron_format":
        return module.validate(text, tron_feedback=record.get("tron_feedback"))
    if harness == "tool_success":
        if "expected" not in record:
            raise ValueError("tool_success needs the sample's 'expected' dict")
        return module.validate(text, record["expected"])
    if harness == "refusal":
        expected = record.get("expected")
        if expected not in ("refuse", "comply"):
            raise ValueError(f"refusal needs expected 'refuse' or 'comply', got {expected!r}")
        return module.validate(text, expected)
    return module.validate(text)
