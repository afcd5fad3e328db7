"""``pdca_template``: a PDCA checked against the full Web4 template (3.2.4.2 and older 3.x).

On top of the schema rules (``pdca_schema``) the document must have
- the title line ``# 📋 **PDCA Cycle: <title> - <description>**``;
- the header fields of its template version, present, non-empty and in order, with the
  Date in UTC: ``YYYY-MM-DD-UTC-HHMM`` or one of the forms the team's tools write (see
  ``DATE_FORMATS``); the version field says which rule set applies and an unknown version
  fails;
- links dual where the template asks for them, in the header fields and in
  SUMMARY › Artifact Links: ``[GitHub](https://github.com/…) | [local path](relative/path)``
  (either order); elsewhere a link only needs a real target (not empty, no placeholder);
- the sections SUMMARY (with Artifact Links, the TRON decision block, TRON Feedback,
  My Answer, in that order), PLAN, DO, CHECK, ACT, EMOTIONAL REFLECTION,
  PDCA PROCESS UPDATE, in that order, no phase section empty (italic stand-in text such as
  "*This section will be populated later*" is no content);
- no ``{{PLACEHOLDER}}`` left outside code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from markdown_it.token import Token

from loragate.harnesses import pdca_schema
from loragate.harnesses.base import HarnessResult
from loragate.harnesses.markdown import (
    Heading,
    InlineLine,
    InlinePart,
    Link,
    MarkdownDoc,
    parse,
    phrase_position,
    words,
)

CURRENT_VERSION = "3.2.4.2"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY, _MON = r"(?P<a>[A-Z][a-z]{2})", r"(?P<b>[A-Z][a-z]{2})"
_YMD, _HMS = r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})", r"(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})"
# The template's form first, then the UTC forms the team's own tools write: `pdca createPDCA`
# fills the field with JavaScript's toUTCString() (RFC 1123, "GMT"), agents paste `date -u`.
# Every form names UTC or GMT: a local time cannot be ordered against the other PDCAs.
DATE_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("YYYY-MM-DD-UTC-HHMM", re.compile(_YMD + r"-UTC-(?P<H>\d{2})(?P<M>\d{2})")),
    ("YYYY-MM-DD UTC HH:MM", re.compile(_YMD + r" UTC (?P<H>\d{2}):(?P<M>\d{2})")),
    ("Wed, 05 Nov 2025 07:27:43 GMT",
     re.compile(_DAY + r", (?P<d>\d{1,2}) " + _MON + r" (?P<Y>\d{4}) " + _HMS + " GMT")),
    ("Mon Oct 13 15:27:22 UTC 2025",
     re.compile(_DAY + " " + _MON + r" (?P<d>\d{1,2}) " + _HMS + r" UTC (?P<Y>\d{4})")),
)
VERSION_NUMBER = re.compile(r"\d+(?:\.\d+)+")
TITLE_FORMAT = re.compile(r"^PDCA Cycle\s*:\s*(?P<title>.+?)\s+-\s+(?P<description>.+)$",
                          re.IGNORECASE)
SECTIONS: tuple[str, ...] = ("summary", "plan", "do", "check", "act",
                             "emotional reflection", "pdca process update")


@dataclass(frozen=True)
class SummaryPart:
    """A required level-3 part of the SUMMARY, recognised by any of its phrases."""

    name: str
    phrases: tuple[str, ...]

    def matches(self, heading: Heading) -> bool:
        return any(phrase_position(heading.words, p) is not None for p in self.phrases)


SUMMARY_PARTS: tuple[SummaryPart, ...] = (
    SummaryPart("Artifact Links", ("artifact links",)),
    # 3.2.4.2 titles it "To TRON: QA Decisions required", older versions "QA Decisions".
    SummaryPart("QA Decisions", ("qa decisions", "qa decision")),
    SummaryPart("TRON Feedback", ("tron feedback",)),
    SummaryPart("My Answer", ("my answer",)),
)

_FIELDS_3_0: tuple[str, ...] = (
    "Date", "Objective", "Template Version", "Agent Role", "Branch",
    "Project Journal Session", "Sprint", "Task", "Issues", "Previous Commit", "Previous PDCA",
)
_FIELDS_3_1: tuple[str, ...] = (
    "Date", "Objective", "Template Version", "Agent Name", "Agent Role", "Branch",
    "Sync Requirements", "Project Journal Session", "Sprint", "Task", "Issues",
    "Previous Commit", "Previous PDCA",
)
_FIELDS_3_2_4_2: tuple[str, ...] = (
    "Date", "Objective", "Template Version", "CMM Badge", "Agent Name", "Agent Role",
    "Branch", "Sync Requirements", "Project Journal Session", "Sprint", "Task", "Issues",
    "Previous Commit", "Previous PDCA",
)


@dataclass(frozen=True)
class TemplateRules:
    """What one template version requires. Versions differ only in their header fields."""

    version: str
    header_fields: tuple[str, ...]
    sections: tuple[str, ...] = SECTIONS
    summary_parts: tuple[SummaryPart, ...] = SUMMARY_PARTS


RULES: dict[str, TemplateRules] = {
    "3.0": TemplateRules("3.0", _FIELDS_3_0),
    "3.1": TemplateRules("3.1", _FIELDS_3_1),
    "3.1.4.2": TemplateRules("3.1.4.2", _FIELDS_3_1),
    "3.2.4.2": TemplateRules("3.2.4.2", _FIELDS_3_2_4_2),
}


def _strip_symbols(text: str) -> str:
    """Drop emoji and other symbols but keep punctuation (the title's ':' and ' - ')."""
    kept = (c for c in text if not unicodedata.category(c).startswith("S")
            and c not in "\ufe0e\ufe0f\u200d")
    return " ".join("".join(kept).split())


def title_reasons(doc: MarkdownDoc) -> list[str]:
    atx = [h for h in doc.headings if h.atx]
    if not atx or atx[0].level != 1:
        return ["title: first heading must be '# PDCA Cycle: <title> - <description>'"]
    title = _strip_symbols(atx[0].text)
    if TITLE_FORMAT.match(title) is None:
        return [f"title: {atx[0].text!r} is not 'PDCA Cycle: <title> - <description>'"]
    return []


def date_problem(value: str) -> str | None:
    """Why a header Date is not a UTC timestamp in one of ``DATE_FORMATS``, or None."""
    # `date -u` pads a one-digit day with a second space ("Oct  3").
    text = " ".join(value.split())
    for _, pattern in DATE_FORMATS:
        match = pattern.fullmatch(text)
        if match is not None:
            return _calendar_problem(match)
    forms = ", ".join(repr(form) for form, _ in DATE_FORMATS[1:])
    return f"not YYYY-MM-DD-UTC-HHMM (nor a UTC form such as {forms})"


def _calendar_problem(match: re.Match[str]) -> str | None:
    found = {key: value for key, value in match.groupdict().items() if value is not None}
    month_text = found.get("m") or found["b"]
    if not month_text.isdigit() and month_text not in _MONTHS:
        return f"unknown month {month_text!r}"
    month = int(month_text) if month_text.isdigit() else _MONTHS.index(month_text) + 1
    try:
        moment = datetime(int(found["Y"]), month, int(found["d"]), int(found["H"]),
                          int(found["M"]), int(found.get("S", 0)))
    except ValueError as error:
        return f"not a real date and time ({error})"
    # A weekday that does not fit the date means the timestamp was typed, not taken.
    weekday, actual = found.get("a"), _WEEKDAYS[moment.weekday()]
    if weekday is not None and weekday != actual:
        return f"weekday {weekday!r} does not match the date (that day is a {actual})"
    return None


def header_end(doc: MarkdownDoc) -> float:
    """The header is everything before the first level-2 heading."""
    for heading in doc.headings:
        if heading.atx and heading.level == 2:
            return heading.line
    return float("inf")


def template_version(doc: MarkdownDoc) -> tuple[str | None, list[str]]:
    field = pdca_schema.first_field(doc, "template version", header_end(doc))
    if field is None:
        return None, ["missing header field 'Template Version'"]
    match = VERSION_NUMBER.search(field.value)
    if match is None:
        return None, [f"header field 'Template Version' has no version number: {field.value!r}"]
    version = match.group(0)
    if version not in RULES:
        known = ", ".join(RULES)
        return None, [f"unknown template version '{version}' (known: {known})"]
    return version, []


def header_reasons(doc: MarkdownDoc, rules: TemplateRules) -> list[str]:
    end = header_end(doc)
    header = [f for f in doc.fields if f.line < end and f.bold]
    found: list[tuple[str, int]] = []
    reasons: list[str] = []
    for name in rules.header_fields:
        key = " ".join(name.lower().split())
        field = next((f for f in header if f.key == key), None)
        if field is None:
            reasons.append(f"missing header field '{name}'")
            continue
        found.append((name, field.line))
        if not field.value:
            reasons.append(f"header field '{name}' empty")
        elif name == "Date" and (problem := date_problem(field.value)) is not None:
            reasons.append(f"header field 'Date' {problem}: {field.value!r}")
        elif name == "Previous PDCA" and not field.links \
                and not pdca_schema.is_first_in_chain(field):
            reasons.append("header field 'Previous PDCA' has no link")
    for (earlier, earlier_line), (later, later_line) in pairwise(found):
        if later_line < earlier_line:
            reasons.append(f"header field order: '{later}' before '{earlier}'")
    return reasons


def _show(link: Link) -> str:
    return f"[{link.text}]({link.href}) (line {link.line + 1})"


def _pair_with_next(parts: tuple[InlinePart, ...], index: int) -> bool:
    """Whether the link at ``index`` and the one after a ``|`` form a dual link: one GitHub
    link and one local path, in either order (``[GitHub](u) | [§/p](p)`` is the template's,
    ``[§/p](p) | [GitHub](u)`` is written too)."""
    rest = parts[index + 1:index + 3]
    if len(rest) != 2 or rest[0].link is not None or rest[0].text.strip() != "|":
        return False
    first, second = parts[index].link, rest[1].link
    if first is None or second is None:
        return False
    return (first.is_github and second.is_local) or (first.is_local and second.is_github)


def dual_pairs(line: InlineLine) -> set[int]:
    """Indexes (into ``line.parts``) of the links that sit in a dual pair."""
    paired: set[int] = set()
    for index in range(len(line.parts)):
        if index not in paired and _pair_with_next(line.parts, index):
            paired.update({index, index + 2})
    return paired


def _after(doc: MarkdownDoc, heading: Heading) -> float:
    """The line where the part under ``heading`` ends: the next ATX heading of its level or
    above."""
    return next((h.line for h in doc.headings
                 if h.atx and h.line > heading.line and h.level <= heading.level),
                float("inf"))


def dual_link_lines(doc: MarkdownDoc) -> set[int]:
    """The lines where the template asks for dual links: the header fields and the
    SUMMARY's Artifact Links part. The team's checklist item is "Dual links in artifact
    section"; a link in prose, a list or a table elsewhere may be a single one."""
    end = header_end(doc)
    lines = {f.line for f in doc.fields if f.line < end}
    for heading in doc.headings:
        if heading.atx and SUMMARY_PARTS[0].matches(heading):
            stop = _after(doc, heading)
            lines.update(line.line for line in doc.lines if heading.line < line.line < stop)
    return lines


def dual_link_reasons(doc: MarkdownDoc) -> list[str]:
    """In ``dual_link_lines``, every link to a repository file, on GitHub (``/blob/``,
    ``/tree/``) or as a local path, must sit in a ``[GitHub](url) | [path](path)`` pair;
    everywhere, a link needs a real target (not empty, not a placeholder).

    Links that cannot have a local twin (other sites, GitHub commits, issues, pull
    requests) are not judged, and in-page anchors (``#…``) neither.
    """
    strict = dual_link_lines(doc)
    reasons: list[str] = []
    for line in doc.lines:
        # Any GitHub link can carry a local twin (authors pair commit links with a ref path
        # too); only file links and local paths must have one.
        paired = dual_pairs(line) if line.line in strict else set()
        for index, part in enumerate(line.parts):
            link = part.link
            if link is None:
                continue
            if line.line in strict and index not in paired \
                    and (link.is_github_file or link.is_local):
                reasons.append(f"link not dual: {_show(link)}")
            elif problem := pdca_schema.link_problem(link):
                reasons.append(f"link malformed ({problem}): {_show(link)}")
    return reasons


# What authors write in a phase they mean to fill later. Only wholly emphasised text
# counts ("*This section will be populated after the tests*"): the same words in plain
# prose can be a real statement ("the cache will be populated on first use").
_STAND_IN_PHRASES: tuple[str, ...] = tuple(
    f"{verb} be {participle}" for verb in ("will", "to", "shall")
    for participle in ("populated", "filled", "filled in", "added", "completed", "written",
                       "documented", "updated", "determined", "provided", "done")
) + ("tbd", "todo", "coming soon", "placeholder", "fill in")
# Whole-paragraph markers that stand for content in any emphasis.
_STAND_IN_ALONE: frozenset[tuple[str, ...]] = frozenset(
    {("tbd",), ("todo",), ("to", "do"), ("tba",), ("coming", "soon"), ("placeholder",),
     ("to", "be", "determined")})


def _wholly_emphasised(children: list[Token]) -> bool:
    """Whether one ``*…*``/``_…_`` span covers the whole inline content."""
    kept = [c for c in children if not (c.type in ("text", "softbreak", "hardbreak")
                                        and not c.content.strip())]
    if len(kept) < 2 or kept[0].type != "em_open" or kept[-1].type != "em_close":
        return False
    depth = 0
    for position, child in enumerate(kept):
        depth += (child.type == "em_open") - (child.type == "em_close")
        if depth == 0 and position < len(kept) - 1:
            return False
    return True


def is_stand_in(inline: Token) -> bool:
    """Whether an inline block is text standing in for content that is not there yet."""
    text_words = words(inline.content)
    if text_words in _STAND_IN_ALONE:
        return True
    return _wholly_emphasised(inline.children or []) and any(
        phrase_position(text_words, phrase) is not None for phrase in _STAND_IN_PHRASES)


def phase_emptiness(doc: MarkdownDoc, heading: Heading) -> str | None:
    """None when the section under ``heading`` has content; otherwise why it is empty: ""
    when it holds nothing at all, a note naming the stand-in text when only that is there."""
    stand_ins: list[str] = []
    for token in doc.section_tokens(heading):
        if token.type in ("fence", "code_block", "html_block") and token.content.strip():
            return None
        if token.type == "inline" and token.content.strip():
            if not is_stand_in(token):
                return None
            stand_ins.append(token.content.strip())
    if stand_ins:
        return f"only stand-in text {stand_ins[0]!r}"
    return ""


def section_reasons(doc: MarkdownDoc, rules: TemplateRules) -> list[str]:
    found = pdca_schema.sections(doc)
    first = pdca_schema.first_of_each(found)
    reasons = pdca_schema.order_reasons(first, rules.sections, "section")
    for phase in pdca_schema.PHASES:
        if phase not in first:
            continue
        emptiness = phase_emptiness(doc, first[phase].heading)
        if emptiness == "":
            reasons.append(f"section {phase.upper()} empty")
        elif emptiness is not None:
            reasons.append(f"section {phase.upper()} empty: {emptiness}")
    if "summary" in first:
        reasons += summary_reasons(doc, first["summary"].heading, found, rules)
    return reasons


def summary_reasons(doc: MarkdownDoc, summary: Heading, found: list, rules: TemplateRules
                    ) -> list[str]:
    later = [s.heading.line for s in found if s.heading.line > summary.line]
    stop = min(later, default=float("inf"))
    inside = [h for h in doc.headings if h.atx and summary.line < h.line < stop]
    positions: list[tuple[str, int]] = []
    reasons: list[str] = []
    for part in rules.summary_parts:
        heading = next((h for h in inside if part.matches(h)), None)
        if heading is None:
            reasons.append(f"missing summary part: {part.name}")
        else:
            positions.append((part.name, heading.line))
    for (earlier, earlier_line), (after, after_line) in pairwise(positions):
        if after_line < earlier_line:
            reasons.append(f"summary order: {after} before {earlier}")
    return reasons


def placeholder_reasons(doc: MarkdownDoc) -> list[str]:
    seen: list[str] = []
    for placeholder in doc.placeholders():
        if placeholder not in seen:
            seen.append(placeholder)
    return [f"placeholder left: {p}" for p in seen]


def check(doc: MarkdownDoc) -> list[str]:
    """Every broken template rule of a parsed document (schema rules included)."""
    reasons = title_reasons(doc)
    version, version_reasons = template_version(doc)
    reasons += version_reasons
    rules = RULES[version] if version is not None else None
    if rules is not None:
        reasons += header_reasons(doc, rules)
    reasons += section_reasons(doc, rules or RULES[CURRENT_VERSION])
    reasons += dual_link_reasons(doc)
    reasons += placeholder_reasons(doc)
    first = pdca_schema.first_of_each(pdca_schema.sections(doc))
    reasons += pdca_schema.objective_reasons(doc, first)
    reasons += pdca_schema.breadcrumb_reasons(doc)
    return list(dict.fromkeys(reasons))


def validate(text: str) -> HarnessResult:
    """Check ``text`` against the PDCA template of the version its header names."""
    return HarnessResult.from_reasons(check(parse(text)))
