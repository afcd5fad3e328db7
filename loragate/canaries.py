"""Checking one canary answer: keywords matched as words, a regular expression, or a harness.

A canary record (a line of ``data/canaries.jsonl`` or ``data/forgetting.jsonl``) has ``id``,
``task``, ``messages`` and a ``check``, one of:

* ``{"keywords": [KEYWORD, ...], "any": false, "regex": PATTERN}``: every keyword is in the
  answer (``"any": true``: at least one is), and, when ``regex`` is given, the pattern matches
  too. ``keywords`` or ``regex`` may be left out, not both. A KEYWORD is a string or a list of
  accepted alternatives (``["7", "seven"]``: either one counts).
* ``{"validator": HARNESS, ...context}``: the harness passes (its context, e.g. ``expected``,
  sits beside ``validator``). For tasks that are a format rather than a fact.

How a keyword matches (:func:`keyword_in`): the answer and the keyword are both normalised
(Unicode NFKC, case folded, typographic quotes and dashes made ASCII) and cut into tokens. A
*word* token is a run of letters, digits and underscores; every other visible character is a
*symbol* token of its own; whitespace only separates tokens. The keyword matches when its
tokens occur in the answer as a contiguous run. So

* a keyword never matches inside a longer word: ``hi`` is not in ``this``, ``7`` not in
  ``17``, ``do`` not in ``document``, ``layer2`` not in ``layer20``;
* punctuation around a keyword does not matter: ``paris`` is in ``"Paris."``;
* symbols inside a keyword are matched literally, spaces between tokens are free:
  ``[::-1]`` is in ``a[::-1]``, ``--no-edit`` in ``git pull --no-edit`` (not in "no edit"),
  ``# notes`` in ``# Notes``, ``init(scenario`` in ``init(scenario: Scenario)`` (while
  ``init(scenario)`` is not: its ``)`` must follow ``scenario``).

``regex`` is searched (:func:`re.search`, case-insensitive) in the answer after the same
NFKC and quote/dash folding, but not tokenised; add ``(?s)`` to let ``.`` cross lines.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loragate.harnesses.base import HarnessResult
from loragate.harnesses.registry import score

KEYWORD_KEYS = frozenset({"keywords", "any", "regex"})

_TOKEN = re.compile(r"\w+|[^\w\s]")
# Models and editors write curly quotes and long dashes where code has ASCII ones.
_TYPOGRAPHIC = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-",
})


class CanaryError(ValueError):
    """A canary record or check that cannot be used; the message names the canary and field."""


# ------------------------------------------------------------------------- matching


def fold(text: str) -> str:
    """``text`` in NFKC with typographic quotes and dashes made ASCII (case kept)."""
    return unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC)


def tokens(text: str) -> list[str]:
    """The case-folded word and symbol tokens of ``text`` (see the module docstring)."""
    return _TOKEN.findall(fold(text).casefold())


def _contains_run(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    width, first = len(needle), needle[0]
    return any(haystack[i] == first and list(haystack[i:i + width]) == list(needle)
               for i in range(len(haystack) - width + 1))


def keyword_in(keyword: str, text: str) -> bool:
    """Whether ``keyword`` occurs in ``text`` as whole tokens (word-boundary match)."""
    needle = tokens(keyword)
    if not needle:
        raise CanaryError(f"keyword {keyword!r} has no letters, digits or symbols")
    return _contains_run(tokens(text), needle)


def regex_in(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (case-insensitive, after folding)."""
    return re.search(pattern, fold(text), re.IGNORECASE) is not None


# ------------------------------------------------------------------------- checks


def _alternatives(item: Any, where: str) -> list[str]:
    """One keyword entry as its list of accepted spellings."""
    spellings = item if isinstance(item, list) else [item]
    if not spellings:
        raise CanaryError(f"{where}: an empty list of alternatives")
    for spelling in spellings:
        if not isinstance(spelling, str):
            raise CanaryError(f"{where}: a keyword must be a string or a list of strings, "
                              f"got {spelling!r}")
        if not tokens(spelling):
            raise CanaryError(f"{where}: keyword {spelling!r} has no letters, digits or symbols")
    return spellings


def validate_check(check: Any, name: str = "canary") -> None:
    """Raise :class:`CanaryError` naming ``name`` and the field when ``check`` is malformed."""
    if not isinstance(check, dict):
        raise CanaryError(f"{name}: field 'check' must be an object, got {check!r}")
    if "validator" in check:
        if set(check) & KEYWORD_KEYS:
            raise CanaryError(f"{name}: field 'check' has both 'validator' and "
                              f"{sorted(set(check) & KEYWORD_KEYS)}; use one kind of check")
        return
    unknown = sorted(set(check) - KEYWORD_KEYS)
    if unknown:
        raise CanaryError(f"{name}: field 'check' has unknown key(s) {unknown}; "
                          f"known: {sorted(KEYWORD_KEYS)} or 'validator'")
    if "keywords" not in check and "regex" not in check:
        raise CanaryError(f"{name}: field 'check' needs 'keywords', 'regex' or 'validator'")
    if "keywords" in check:
        keywords = check["keywords"]
        if not isinstance(keywords, list) or not keywords:
            raise CanaryError(f"{name}: field 'check.keywords' must be a non-empty list")
        for index, item in enumerate(keywords):
            _alternatives(item, f"{name}: field 'check.keywords.{index}'")
    if not isinstance(check.get("any", False), bool):
        raise CanaryError(f"{name}: field 'check.any' must be true or false")
    if "regex" in check:
        pattern = check["regex"]
        if not isinstance(pattern, str) or not pattern:
            raise CanaryError(f"{name}: field 'check.regex' must be a non-empty string")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise CanaryError(f"{name}: field 'check.regex': invalid pattern: {exc}") from None


def _describe(spellings: list[str]) -> str:
    return " or ".join(repr(s) for s in spellings)


def _keyword_reasons(check: dict[str, Any], text: str) -> list[str]:
    entries = [_alternatives(item, "keyword") for item in check.get("keywords", [])]
    if not entries:
        return []
    missing = [spellings for spellings in entries
               if not any(keyword_in(s, text) for s in spellings)]
    if check.get("any"):
        if len(missing) < len(entries):
            return []
        return ["none of " + ", ".join(f"({_describe(s)})" for s in entries) + " in the answer"]
    return [f"keyword missing: {_describe(s)}" for s in missing]


def check_canary(record: dict[str, Any], text: str) -> HarnessResult:
    """Check ``text``, the answer to the canary ``record``; the reasons say what is missing."""
    name = f"canary {record.get('id')!r}"
    check = record.get("check")
    validate_check(check, name)
    if "validator" in check:
        return score(check["validator"], text, check)
    reasons = _keyword_reasons(check, text)
    if "regex" in check and not regex_in(check["regex"], text):
        reasons.append(f"no match for regex {check['regex']!r}")
    return HarnessResult.from_reasons(reasons)


# ------------------------------------------------------------------------- files


def validate_record(record: Any, where: str) -> None:
    """Raise :class:`CanaryError` when ``record`` is not a canary record (``where``: file:line)."""
    if not isinstance(record, dict):
        raise CanaryError(f"{where}: a canary must be a JSON object")
    for key in ("id", "task"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise CanaryError(f"{where}: field '{key}' must be a non-empty string")
    messages = record.get("messages")
    if (not isinstance(messages, list) or not messages
            or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                       and m.get("role") in ("system", "user", "assistant") for m in messages)
            or messages[-1]["role"] != "user"):
        raise CanaryError(f"{where}: field 'messages' must be a list of "
                          "{role, content} messages ending with a user turn")
    validate_check(record.get("check"), f"{where}: canary {record['id']!r}")


def load_canaries(path: Path) -> list[dict[str, Any]]:
    """The records of a canary file, each validated; errors name the file and line."""
    from loragate.gating.prompts import PromptFileError, read_prompt_records

    try:
        return read_prompt_records(path, what="canary file", check=validate_record)
    except PromptFileError as exc:
        raise CanaryError(str(exc)) from None
