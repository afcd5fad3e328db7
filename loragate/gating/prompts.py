"""Prompt records: the JSONL lines a harness (or the canaries) is judged on.

A record is a JSON object with an ``id`` and ``messages``: a non-empty list of
``{"role": "system" | "user" | "assistant", "content": STR}`` that ends with a user message.
Anything else the record holds is context for its validator (``expected``,
``tron_feedback``, ``check``, …). Every problem is a :class:`PromptFileError` naming
``path:line``, raised at collection, before any answer is generated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from loragate.textfiles import InputFileError, jsonl_lines

ROLES = ("system", "user", "assistant")


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message starts with ``path:line``."""


def read_prompt_records(path: Path, *, what: str = "prompt file",
                        check: Callable[[dict[str, Any], str], None] | None = None
                        ) -> list[dict[str, Any]]:
    """Every record of ``path``, checked; blank lines are skipped. ``check(record, where)``
    adds the checks of one kind of record (the canaries'), ``where`` being ``path:line``."""
    try:
        lines = list(jsonl_lines(path, what))
    except InputFileError as exc:
        raise PromptFileError(str(exc)) from None
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line in lines:
        where, number, record = line.where, line.number, line.value
        if line.error is not None:
            raise PromptFileError(f"{where}: {line.error}")
        check_record(record, where)
        if check is not None:
            check(record, where)
        if record["id"] in seen:
            raise PromptFileError(f"{where}: duplicate id {record['id']!r} "
                                  f"(first on line {seen[record['id']]})")
        seen[record["id"]] = number
        records.append(record)
    return records


def check_record(record: Any, where: str) -> None:
    """Raise :class:`PromptFileError` unless ``record`` is a usable prompt record."""
    if not isinstance(record, dict):
        raise PromptFileError(f"{where}: a record must be a JSON object, "
                              f"got {type(record).__name__}")
    record_id = record.get("id")
    if not isinstance(record_id, str) or not record_id.strip():
        raise PromptFileError(f"{where}: field 'id' must be a non-empty string")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise PromptFileError(f"{where}: field 'messages' must be a non-empty list of "
                              "{role, content} objects")
    for index, message in enumerate(messages):
        field = f"{where}: field 'messages[{index}]'"
        if not isinstance(message, dict):
            raise PromptFileError(f"{field}: must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise PromptFileError(f"{field}.role: must be one of {list(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise PromptFileError(f"{field}.content: must be a string, "
                                  f"got {type(content).__name__}")
        extra = sorted(set(message) - {"role", "content"})
        if extra:
            raise PromptFileError(f"{field}: unknown key(s) {extra}")
    if messages[-1]["role"] != "user":
        raise PromptFileError(f"{where}: field 'messages': the last message must be the "
                              f"user's, got {messages[-1]['role']!r}")
