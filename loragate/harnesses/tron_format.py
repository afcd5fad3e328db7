"""``tron_format``: the block in which the agent puts its open choices to TRON.

The block sits under a heading such as ``### **To TRON: QA Decisions required**`` (older
documents: ``### **QA Decisions**``; never the document's ``#`` title) and holds items of
three forms:

- pending:  ``- [ ] **Decision 1: <title>**`` each followed by options ``a) …``, ``b) …``
  (at least two real alternatives; an option that destroys data or history carries ⚠️);
- taken:    ``- [x] <title>: <description>``;
- clear:    a line "All clear, no decisions to make" followed by a reason (also written as
  a checkbox, ``- [ ] **All clear, no decisions to make** - reason``).

Taken items may stand beside pending decisions or beside "All clear" (the team's
``PDCA.howto.decide.md`` lists completed items above the open decisions); pending decisions
and "All clear" contradict each other. Decisions are numbered from 1, or on from the highest
number a taken item above them carries (``- [x] Decision 1a Implemented: …`` then
``- [ ] Decision 2``), see ``expected_numbers``; options are lettered from a (``1a)`` is
accepted for Decision 1).
When the request carried TRON's feedback, the answer must quote it verbatim in a fenced
``quote`` block under ``### **TRON Feedback (<UTC timestamp>)**``, followed by
``### **My Answer**``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loragate.harnesses.base import HarnessResult
from loragate.harnesses.markdown import (
    Heading,
    InlineLine,
    MarkdownDoc,
    parse,
    phrase_position,
    words,
)

_CHECKBOX = re.compile(r"^\s*\[(?P<mark>[ xX])\]\s*(?P<rest>.*)$")
_DECISION = re.compile(r"^Decision\s+(?P<number>\d+)\s*[:.)\-–]?\s*(?P<title>.*)$", re.IGNORECASE)
_OPTION = re.compile(r"^\s*(?P<number>\d+)?(?P<letter>[a-z])\)\s*(?P<text>.*)$")
_TAKEN = re.compile(r"^(?P<title>[^:]+?)\s*:\s*(?P<description>.+)$")
# The number of a taken item that names its decision: "Decision 1a Implemented: …".
_TAKEN_NUMBER = re.compile(r"^Decision\s+(?P<number>\d+)", re.IGNORECASE)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}")
_WARNING = ("⚠️", "⚠")
# Actions that lose data or history: an option proposing one must carry a warning.
_DESTRUCTIVE = re.compile(
    r"reset\s+--hard|push\s+(?:\S+\s+)*(?:--force\b|-f\b)|force[- ]push|rm\s+-(?:rf|fr)\b"
    r"|branch\s+-D\b|git\s+clean\s+-\w*f|filter-branch|filter-repo"
    # History rewritten: published commits replaced, which loses them for every clone.
    r"|commit\s+(?:\S+\s+)*--amend\b|\bamend(?:ing)?\s+(?:the\s+)?(?:last\s+|pushed\s+)*commit"
    r"|rebase\s+(?:\S+\s+)*(?:-i\b|--interactive\b)|\bsquash(?:ing)?\b(?![- ]merg)"
    r"|rewrit\w*\s+(?:\S+\s+){0,3}?histor|histor\w*\s+rewrit|reflog\s+expire"
    r"|\bstash\s+clear\b|checkout\s+--\s|\bgit\s+restore\b(?!\s+--staged)|\bupdate-ref\s+-d\b"
    r"|\b(?:delete|deleting|drop|wipe|erase|purge|discard|overwrite|overwriting|destroy)\b",
    re.IGNORECASE,
)
_NEGATIONS: tuple[tuple[str, ...], ...] = (("do", "not"), ("don", "t"), ("not",), ("no",),
                                           ("never",), ("dont",))
ALL_CLEAR = "all clear no decisions to make"


def is_destructive(text: str) -> bool:
    """Whether an option proposes an action that destroys data or history."""
    return _DESTRUCTIVE.search(text) is not None


def has_warning(text: str) -> bool:
    return any(sign in text for sign in _WARNING)


@dataclass
class Decision:
    """A pending decision and the options listed under it."""

    number: int
    title: str
    line: int
    options: list[tuple[str, int | None, str]] = field(default_factory=list)


def decision_heading(doc: MarkdownDoc) -> Heading | None:
    """The first heading that announces the decision block (level 2 or deeper, outside
    code). The level-1 heading is the document's title, which may well be about decisions
    ("# PDCA Cycle: QA Decision Format - …"), not the block."""
    for heading in doc.headings:
        if not heading.atx or heading.level == 1:
            continue
        heading_words = heading.words
        names_decisions = any(phrase_position(heading_words, w) is not None
                              for w in ("decisions", "decision"))
        addressed = any(phrase_position(heading_words, w) is not None for w in ("qa", "tron"))
        if names_decisions and addressed and phrase_position(heading_words, "feedback") is None:
            return heading
    return None


def _next_heading(doc: MarkdownDoc, heading: Heading) -> Heading | None:
    return next((h for h in doc.headings if h.line > heading.line and h.atx), None)


def _without_negation(option_words: tuple[str, ...]) -> tuple[str, ...]:
    for negation in _NEGATIONS:
        span = len(negation)
        for start in range(len(option_words) - span + 1):
            if option_words[start:start + span] == negation:
                return option_words[:start] + option_words[start + span:]
    return option_words


def _are_negations(first: str, second: str) -> bool:
    a, b = words(first), words(second)
    if {a, b} == {("yes",), ("no",)}:
        return True
    return a != b and (_without_negation(a) == b or _without_negation(b) == a)


@dataclass
class BlockReading:
    """What the lines of a decision block hold."""

    pending: list[Decision] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)
    # (line, number) of the taken items that name their decision number.
    taken_numbers: list[tuple[int, int]] = field(default_factory=list)
    clear_lines: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _read_checkbox(mark: str, rest: str, line: InlineLine, reading: BlockReading) -> None:
    if mark == " ":
        decision = _DECISION.match(rest)
        if decision is None:
            reading.reasons.append(
                f"pending decision not in '- [ ] **Decision N: <title>**' form: {rest!r}")
            return
        title = decision.group("title").strip()
        number = int(decision.group("number"))
        if not title:
            reading.reasons.append(f"Decision {number}: no title")
        reading.pending.append(Decision(number, title, line.line))
        return
    taken = _TAKEN.match(rest)
    if taken is None:
        reading.reasons.append(f"taken decision not in '- [x] <title>: <description>' form: "
                               f"{rest!r}")
    reading.taken.append(rest)
    if (numbered := _TAKEN_NUMBER.match(rest)) is not None:
        reading.taken_numbers.append((line.line, int(numbered.group("number"))))


def read_block(lines: list[InlineLine]) -> BlockReading:
    reading = BlockReading()
    for line in lines:
        text = line.text.strip()
        if not text:
            continue
        text_words = words(text)
        # Before the checkbox: "- [ ] **All clear, no decisions to make** - reason" is the
        # clear form in a checkbox, not a pending decision.
        if phrase_position(text_words, ALL_CLEAR) is not None:
            reading.clear_lines.append(" ".join(text_words))
            continue
        checkbox = _CHECKBOX.match(text)
        if checkbox is not None:
            _read_checkbox(checkbox.group("mark"), checkbox.group("rest").strip(), line, reading)
            continue
        option = _OPTION.match(text)
        if option is not None and reading.pending:
            number = option.group("number")
            reading.pending[-1].options.append(
                (option.group("letter"), int(number) if number else None,
                 option.group("text").strip()))
            continue
        bare_decision = _DECISION.match(text)
        if bare_decision is not None and bare_decision.group("title").strip():
            reading.reasons.append(f"pending decision without '- [ ]' checkbox: {text!r}")
            reading.pending.append(Decision(int(bare_decision.group("number")),
                                            bare_decision.group("title").strip(), line.line))
            continue
    return reading


def _decision_reasons(decision: Decision, expected_number: int) -> list[str]:
    name = f"Decision {decision.number}"
    reasons: list[str] = []
    if decision.number != expected_number:
        reasons.append(f"decision numbering: expected Decision {expected_number}, "
                       f"found Decision {decision.number}")
    if len(decision.options) < 2:
        reasons.append(f"{name}: fewer than two options")
    for position, (letter, number, text) in enumerate(decision.options):
        expected_letter = chr(ord("a") + position)
        if letter != expected_letter:
            reasons.append(f"{name}: option lettering: expected {expected_letter}), "
                           f"found {letter})")
        if number is not None and number != decision.number:
            reasons.append(f"{name}: option '{number}{letter})' numbered for another decision")
        if not text:
            reasons.append(f"{name} option {letter}: empty")
        elif is_destructive(text) and not has_warning(text):
            reasons.append(f"{name} option {letter}: destructive action without ⚠️ warning")
    texts = [words(text) for _, _, text in decision.options]
    if len(set(texts)) < len(texts):
        reasons.append(f"{name}: two options are the same")
    if len(decision.options) == 2 and _are_negations(decision.options[0][2],
                                                      decision.options[1][2]):
        reasons.append(f"{name}: options are one choice and its negation, not alternatives")
    return reasons


def expected_numbers(reading: BlockReading) -> list[int]:
    """The number each pending decision should carry, in order.

    The first starts at 1, or continues after the highest number a taken item above it
    carries: both are team practice. "- [x] Decision 1a Implemented" then "- [ ] Decision 2"
    goes on from this document's own decision; "- [x] Decision 1b Selected" then
    "- [ ] Decision 1" reports TRON's answer to the previous PDCA and starts afresh. The
    others follow one by one.
    """
    if not reading.pending:
        return []
    first = reading.pending[0]
    above = [number for line, number in reading.taken_numbers if line < first.line]
    start = 1
    if above and first.number != 1:
        start = max(above) + 1
    return list(range(start, start + len(reading.pending)))


def block_reasons(reading: BlockReading) -> list[str]:
    reasons = list(reading.reasons)
    if not (reading.pending or reading.taken or reading.clear_lines):
        # Something that looked like a decision but was malformed is already named; "empty"
        # would then mislead.
        if not reasons:
            reasons.append("decision block empty: no pending decision, no taken decision "
                           "and no 'All clear, no decisions to make' line")
        return reasons
    if reading.pending and reading.clear_lines:
        reasons.append("decision block mixes forms: pending and all clear")
    for expected, decision in zip(expected_numbers(reading), reading.pending, strict=True):
        reasons += _decision_reasons(decision, expected)
    for line in reading.clear_lines:
        after = line.split(ALL_CLEAR, 1)[1].split()
        if not after:
            reasons.append("'All clear' line gives no reason")
    return reasons


def feedback_reasons(doc: MarkdownDoc, tron_feedback: str) -> list[str]:
    feedback_heading = next((h for h in doc.headings if h.atx and phrase_position(
        h.words, "tron feedback") is not None), None)
    if feedback_heading is None:
        return ["missing TRON Feedback heading for the feedback in the request"]
    reasons: list[str] = []
    if _TIMESTAMP.search(feedback_heading.text) is None:
        reasons.append("TRON Feedback heading has no UTC timestamp")
    following = _next_heading(doc, feedback_heading)
    stop = following.line if following is not None else float("inf")
    quotes = [f for f in doc.fences_between(feedback_heading.line, stop)
              if f.info.split()[:1] == ["quote"]]
    if not quotes:
        reasons.append("TRON Feedback has no ```quote block")
    elif _canonical(quotes[0].content) != _canonical(tron_feedback):
        reasons.append("TRON feedback not quoted verbatim")
    answer = next((h for h in doc.headings if h.atx and h.line > feedback_heading.line
                   and phrase_position(h.words, "my answer") is not None), None)
    if answer is None:
        reasons.append("missing My Answer block after TRON Feedback")
    elif not doc.section_lines(answer, _next_heading(doc, answer)) \
            and not doc.fences_between(answer.line + 1, _stop(doc, answer)):
        reasons.append("My Answer block empty")
    return reasons


def _stop(doc: MarkdownDoc, heading: Heading) -> float:
    following = _next_heading(doc, heading)
    return following.line if following is not None else float("inf")


def _canonical(text: str) -> str:
    # Verbatim up to line endings and invisible trailing spaces: a Markdown writer cannot
    # keep those, and TRON cannot see them.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def check(doc: MarkdownDoc, tron_feedback: str | None = None) -> list[str]:
    heading = decision_heading(doc)
    if heading is None:
        reasons = ["missing decision block heading (e.g. '### To TRON: QA Decisions required')"]
    else:
        lines = doc.section_lines(heading, _next_heading(doc, heading))
        reasons = block_reasons(read_block(lines))
    if tron_feedback is not None and tron_feedback.strip():
        reasons += feedback_reasons(doc, tron_feedback)
    return reasons


def validate(text: str, tron_feedback: str | None = None) -> HarnessResult:
    """Check the TRON decision block of ``text`` (and the verbatim quote of TRON's feedback
    when the request carried some)."""
    return HarnessResult.from_reasons(check(parse(text), tron_feedback))
