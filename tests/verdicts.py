"""Verdicts for tests: the rule's judgement as its file holds it, and whole documents made from
the few fields a test cares about."""

from __future__ import annotations

from typing import Any

from loragate.gating.document import VerdictDocument
from loragate.gating.verdict import compute_verdict

FILLER = {"schema": "loragate.verdict/1", "loragate_version": "test", "created_at": "",
          "model": {}, "generation": {}, "thresholds": {}, "data_hash": "d",
          "inputs_hash": "h", "harnesses": {},
          "overall": {"score": 0.0, "target": 90.0, "passed": False}}


def verdict_json(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """``compute_verdict(...)``'s judgement in the form the verdict file holds it."""
    return compute_verdict(*args, **kwargs).model_dump()


def document(**fields: Any) -> VerdictDocument:
    """A valid verdict document with ``fields`` (JSON form) over neutral filler."""
    data = {**FILLER, **fields}
    data.pop("exit_status", None)
    return VerdictDocument.from_dict(data)
