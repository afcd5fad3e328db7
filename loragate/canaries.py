"""Checking one canary answer: what it claims, read for meaning, or what it does.

A canary record (a line of ``data/canaries.jsonl`` or ``data/forgetting.jsonl``) has ``id``,
``task``, ``messages`` and a ``check`` with one or more of these rules; the answer must pass
all of them:

* ``keywords``: every keyword is *affirmed* in the answer (``"any": true``: at least one).
  A KEYWORD is a string or a list of accepted alternatives (``["7", "seven"]``);
* ``must_not``: forbidden claims (``["jest", {"regex": "agent awards"}]``): none may be
  affirmed (``"Jest is not used"`` negates it and passes);
* ``ordered``: items the answer must name in this order (PDCA phases);
* ``pairs``: ``[[TERM, MEANING], ...]``: each term tied to its meaning (``["layer3",
  "interfaces"]``), the meaning standing nearer to its own term than to any other pair's term,
  within one sentence (a list item or table row is a sentence of its own);
* ``regex``: a pattern (or a list of patterns) that must match (searched after folding,
  case-insensitive, not read for negation; ``(?s)`` lets ``.`` cross lines);
* ``validator``: a behaviour check of :mod:`loragate.harnesses.behaviour` (``stop_honoured``,
  ``tron_offered``, ``python_function``, ``json_object``, ``sql_query``), a built-in harness
  (its context, e.g. ``expected``, sits beside it) or a project's ``"module:function"``.

A term is a keyword, a list of alternatives, or ``{"regex": P}``. *Affirmed* means not inside
a negated, hedged or asked clause (:mod:`loragate.harnesses.meaning`), and an answer that says
it does not know, or will not answer, affirms nothing.

How a keyword matches as words (:func:`keyword_in`): the answer and the keyword are both
normalised (Unicode NFKC, case folded, typographic quotes and dashes made ASCII) and cut into
tokens. A *word* token is a run of letters, digits and underscores; every other visible
character is a *symbol* token of its own; whitespace only separates tokens. The keyword matches
when its tokens occur in the answer as a contiguous run. So

* a keyword never matches inside a longer word: ``hi`` is not in ``this``, ``7`` not in
  ``17``, ``do`` not in ``document``, ``layer2`` not in ``layer20``;
* punctuation around a keyword does not matter: ``paris`` is in ``"Paris."``;
* symbols inside a keyword are matched literally, spaces between tokens are free:
  ``[::-1]`` is in ``a[::-1]``, ``--no-edit`` in ``git pull --no-edit`` (not in "no edit"),
  ``# notes`` in ``# Notes``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loragate.harnesses import behaviour, meaning
from loragate.harnesses.base import HarnessResult
from loragate.harnesses.registry import (
    BUILTINS,
    load_validator,
    run_validator,
    score,
)

KEYWORD_KEYS = frozenset({"keywords", "any", "regex"})
MEANING_KEYS = frozenset({"must_not", "ordered", "pairs"})
CHECK_KEYS = KEYWORD_KEYS | MEANING_KEYS

_TOKEN = meaning.TOKEN


class CanaryError(ValueError):
    """A canary record or check that cannot be used; the message names the canary and field."""


# ------------------------------------------------------------------------- matching


fold = meaning.normalise


def tokens(text: str) -> list[str]:
    """The case-folded word and symbol tokens of ``text`` (see the module docstring)."""
    return _TOKEN.findall(fold(text).casefold())


def _contains_run(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    width, first = len(needle), needle[0]
    return any(haystack[i] == first and list(haystack[i:i + width]) == list(needle)
               for i in range(len(haystack) - width + 1))


def keyword_in(keyword: str, text: str) -> bool:
    """Whether ``keyword`` occurs in ``text`` as whole tokens (word-boundary match; negation
    is not read here: :func:`check_canary` does that)."""
    needle = tokens(keyword)
    if not needle:
        raise CanaryError(f"keyword {keyword!r} has no letters, digits or symbols")
    return _contains_run(tokens(text), needle)


def regex_in(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (case-insensitive, after folding)."""
    return re.search(pattern, fold(text), re.IGNORECASE) is not None


# ------------------------------------------------------------------------- checks


def _terms(value: Any, where: str) -> list[meaning.Term]:
    try:
        return meaning.parse_terms(value, where)
    except meaning.TermError as exc:
        raise CanaryError(str(exc)) from None


def _pairs(value: Any, where: str) -> list[tuple[meaning.Term, meaning.Term]]:
    if not isinstance(value, list) or not value:
        raise CanaryError(f"{where} must be a non-empty list of [term, meaning] pairs")
    pairs = []
    for index, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise CanaryError(f"{where}.{index} must be a [term, meaning] pair, got {pair!r}")
        key, sense = _terms(pair, f"{where}.{index}")
        pairs.append((key, sense))
    return pairs


def validate_check(check: Any, name: str = "canary") -> None:
    """Raise :class:`CanaryError` naming ``name`` and the field when ``check`` is malformed."""
    if not isinstance(check, dict):
        raise CanaryError(f"{name}: field 'check' must be an object, got {check!r}")
    if "validator" in check:
        validator = check["validator"]
        if not isinstance(validator, str) or not validator:
            raise CanaryError(f"{name}: field 'check.validator' must be a name or "
                              "'module:function'")
        if validator not in behaviour.CHECKS and validator not in BUILTINS \
                and ":" not in validator:
            raise CanaryError(
                f"{name}: field 'check.validator': unknown validator {validator!r}; known: "
                f"{', '.join([*behaviour.CHECKS, *BUILTINS])}, or 'module:function'")
    else:
        unknown = sorted(set(check) - CHECK_KEYS)
        if unknown:
            raise CanaryError(f"{name}: field 'check' has unknown key(s) {unknown}; known: "
                              f"{sorted(CHECK_KEYS)} or 'validator'")
    if "validator" not in check and not set(check) & (CHECK_KEYS - {"any"}):
        raise CanaryError(f"{name}: field 'check' needs 'keywords', 'regex', 'must_not', "
                          "'ordered', 'pairs' or 'validator'")
    if "keywords" in check:
        keywords = check["keywords"]
        if not isinstance(keywords, list) or not keywords:
            raise CanaryError(f"{name}: field 'check.keywords' must be a non-empty list")
        for index, item in enumerate(keywords):
            _alternatives(item, f"{name}: field 'check.keywords.{index}'")
    if not isinstance(check.get("any", False), bool):
        raise CanaryError(f"{name}: field 'check.any' must be true or false")
    if "regex" in check:
        patterns = _patterns(check["regex"])
        if not patterns or not all(isinstance(p, str) and p for p in patterns):
            raise CanaryError(f"{name}: field 'check.regex' must be a non-empty string or a "
                              "list of them")
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise CanaryError(f"{name}: field 'check.regex': invalid pattern {pattern!r}: "
                                  f"{exc}") from None
    for key in ("must_not", "ordered"):
        if key in check:
            _terms(check[key], f"{name}: field 'check.{key}'")
    if "ordered" in check and len(check["ordered"]) < 2:
        raise CanaryError(f"{name}: field 'check.ordered' needs at least two items")
    if "pairs" in check:
        _pairs(check["pairs"], f"{name}: field 'check.pairs'")


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


def _patterns(value: Any) -> list[Any]:
    """``regex`` as a list: one pattern, or several that must all match."""
    return value if isinstance(value, list) else [value]




def _meaning_reasons(check: dict[str, Any], text: str) -> list[str]:
    """What the answer fails to claim, or claims wrongly, under the check's meaning rules."""
    reading = meaning.Reading(text)
    keywords = [meaning.Term.parse(item) for item in check.get("keywords", [])]
    ordered = _terms(check["ordered"], "ordered") if "ordered" in check else []
    pairs = _pairs(check["pairs"], "pairs") if "pairs" in check else []
    own = meaning.own_spans(reading, [*keywords, *ordered, *(t for p in pairs for t in p)])
    reasons: list[str] = []
    if keywords:
        missing = [k for k in keywords if not reading.affirmed_spans(k, own)]
        if check.get("any") and len(missing) == len(keywords):
            reasons.append("none of " + ", ".join(f"({k.label})" for k in keywords)
                           + " affirmed in the answer")
        elif not check.get("any"):
            for term in missing:
                said = reading.spans(term)
                reasons.append(f"keyword missing: {term.label}" if not said else
                               f"keyword only negated, hedged or asked: {term.label}")
    for term in _terms(check["must_not"], "must_not") if "must_not" in check else []:
        claimed = reading.affirmed_spans(term, own)
        if claimed:
            said = reading.text[claimed[0].start:claimed[0].end]
            reasons.append(f"claims what is wrong: {said!r} ({term.label})")
    if ordered:
        problem = meaning.in_order(reading, ordered, own)
        if problem:
            reasons.append(problem)
    keys = [key for key, _ in pairs]
    for key, sense in pairs:
        if not meaning.paired(reading, key, sense, keys, own):
            reasons.append(f"{key.label} is not tied to {sense.label}")
    return reasons


def _run_validator(check: dict[str, Any], text: str) -> HarnessResult:
    name = check["validator"]
    if name in behaviour.CHECKS:
        return behaviour.CHECKS[name](text, check)
    if name in BUILTINS:
        return score(name, text, check)
    return run_validator(load_validator(name), text, check)


def check_canary(record: dict[str, Any], text: str) -> HarnessResult:
    """Check ``text``, the answer to the canary ``record``; the reasons say what is wrong.

    Knowledge rules (keywords, must_not, ordered, pairs) read meaning: an answer that says it
    does not know affirms nothing, and a term counts only where it is affirmed. A validator
    and knowledge rules may be combined: the answer must pass both."""
    name = f"canary {record.get('id')!r}"
    check = record.get("check")
    validate_check(check, name)
    reasons: list[str] = []
    if "validator" in check:
        reasons += _run_validator(check, text).reasons
    knowledge = set(check) & (KEYWORD_KEYS | MEANING_KEYS) - {"any", "regex"}
    if knowledge:
        declined = meaning.declines_to_answer(text)
        if declined:
            reasons.append(f"the answer does not commit to an answer: {declined!r}")
        else:
            reasons += _meaning_reasons(check, text)
    for pattern in _patterns(check.get("regex", [])):
        if not regex_in(pattern, text):
            reasons.append(f"no match for regex {pattern!r}")
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
    if "probes" in record:
        validate_probes(record["probes"], f"{where}: canary {record['id']!r}")


def validate_probes(probes: Any, name: str) -> None:
    """``probes``: minimal pairs ``{"right": STATEMENT, "wrong": ITS WRONG TWIN}``."""
    if not isinstance(probes, list) or not probes:
        raise CanaryError(f"{name}: field 'probes' must be a non-empty list of "
                          "{right, wrong} pairs")
    for index, pair in enumerate(probes):
        if (not isinstance(pair, dict) or set(pair) != {"right", "wrong"}
                or not all(isinstance(v, str) and v.strip() for v in pair.values())):
            raise CanaryError(f"{name}: field 'probes.{index}' must be {{\"right\": text, "
                              f"\"wrong\": text}}, got {pair!r}")
        if pair["right"] == pair["wrong"]:
            raise CanaryError(f"{name}: field 'probes.{index}': right and wrong are the same")


def probe_margins(record: dict[str, Any], backend: Any, system_prompt: str | None = None
                  ) -> tuple[list[float] | None, str]:
    """For each minimal pair of the canary, log P(right) - log P(wrong) as the model's reply
    to the canary's messages (positive: the model prefers the right statement). Returns
    (None, why) where the backend reads no prompt log-probabilities: a probe is then "not run",
    never passed."""
    probes = record.get("probes")
    if not probes:
        return None, ""
    inner = getattr(backend, "inner", backend)
    measure = getattr(inner, "loglikelihood", None)
    if measure is None:
        return None, (f"not run: the {getattr(inner, 'kind', 'backend')} backend gives no "
                      "prompt log-probabilities (gguf: and hf: do)")
    from loragate.backends.base import Message

    messages = [Message(m["role"], m["content"]) for m in record["messages"]]
    if system_prompt and messages[0].role != "system":
        messages.insert(0, Message("system", system_prompt))
    context = tuple(messages)
    return [round(measure(context, pair["right"]) - measure(context, pair["wrong"]), 4)
            for pair in probes], ""


def load_canaries(path: Path) -> list[dict[str, Any]]:
    """The records of a canary file, each validated; errors name the file and line."""
    from loragate.gating.prompts import PromptFileError, read_prompt_records

    try:
        return read_prompt_records(path, what="canary file", check=validate_record)
    except PromptFileError as exc:
        raise CanaryError(str(exc)) from None
