"""Checking one canary answer: expected keywords, or a harness validator.

A canary record (a line of ``data/canaries.jsonl``) has ``id``, ``task``, ``messages`` and a
``check``: ``{"keywords": [...]}`` (every keyword present, case-insensitive; ``"any": true``
for at least one) or ``{"validator": HARNESS, ...context}`` (the harness passes).
"""

from __future__ import annotations

from typing import Any

from loragate.harnesses.base import HarnessResult
from loragate.harnesses.registry import score


def check_canary(record: dict[str, Any], text: str) -> HarnessResult:
    check = record.get("check")
    if not isinstance(check, dict):
        raise ValueError(f"canary {record.get('id')!r}: field 'check' must be an object")
    if "validator" in check:
        return score(check["validator"], text, check)
    keywords = check.get("keywords")
    if not keywords:
        raise ValueError(f"canary {record.get('id')!r}: 'check' needs 'keywords' or 'validator'")
    lowered = text.lower()
    missing = [k for k in keywords if k.lower() not in lowered]
    if check.get("any"):
        ok = len(missing) < len(keywords)
        return HarnessResult.from_reasons([] if ok else [f"none of {keywords} in the answer"])
    return HarnessResult.from_reasons([f"keyword missing: {k!r}" for k in missing])
