"""``pdca_template``: a PDCA checked against the full Web4 template (3.2.4.2 and older 3.x).

On top of the schema rules (``pdca_schema``) the document must have
- the title line ``# 📋 **PDCA Cycle: <title> - <description>**``;
- the header fields of its template version, present, non-empty and in order, with the
  Date as ``YYYY-MM-DD-UTC-HHMM``; the version field says which rule set applies and an
  unknown version fails;
- every link dual: ``[GitHub](https://github.com/…) | [local path](relative/path)``;
- the sections SUMMARY (with Artifact Links, the TRON decision block, TRON Feedback,
  My Answer, in that order), PLAN, DO, CHECK, ACT, EMOTIONAL REFLECTION,
  PDCA PROCESS UPDATE, in that order, no phase section empty;
- no ``{{PLACEHOLDER}}`` left outside code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import pairwise

from loragate.harnesses import pdca_schema
from loragate.harnesses.base import HarnessResult
from loragate.harnesses.markdown import (
    Heading,
    InlineLine,
    Link,
    MarkdownDoc,
    parse,
    phrase_position,
)

CURRENT_VERSION = "3.2.4.2"
DATE_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}-UTC-\d{4}$")
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
        elif name == "Date" and DATE_FORMAT.match(field.value) is None:
            reasons.append(f"header field 'Date' not YYYY-MM-DD-UTC-HHMM: {field.value!r}")
        elif name == "Previous PDCA" and not field.links \
                and not pdca_schema.is_first_in_chain(field):
            reasons.append("header field 'Previous PDCA' has no link")
    for (earlier, earlier_line), (later, later_line) in pairwise(found):
        if later_line < earlier_line:
            reasons.append(f"header field order: '{later}' before '{earlier}'")
    return reasons


def _show(link: Link) -> str:
    return f"[{link.text}]({link.href}) (line {link.line + 1})"


def dual_link_reasons(lines: list[InlineLine]) -> list[str]:
    """Every link to a repository file, on GitHub (``/blob/``, ``/tree/``) or as a local
    path, must sit in a ``[GitHub](url) | [path](path)`` pair.

    Links that cannot have a local twin (other sites, GitHub commits, issues, pull
    requests) are not judged, and in-page anchors (``#…``) neither.
    """
    reasons: list[str] = []
    for line in lines:
        parts = line.parts
        paired: set[int] = set()
        for index, part in enumerate(parts):
            # Any GitHub link can carry a local twin (authors pair commit links with a ref
            # path too); only file links and local paths must have one.
            if part.link is None or not part.link.is_github:
                continue
            rest = parts[index + 1:index + 3]
            if len(rest) == 2 and rest[0].link is None and rest[0].text.strip() == "|" \
                    and rest[1].link is not None and rest[1].link.is_local:
                paired.update({index, index + 2})
        for index, part in enumerate(parts):
            link = part.link
            if link is None or index in paired:
                continue
            if link.is_github_file or link.is_local:
                reasons.append(f"link not dual: {_show(link)}")
            elif problem := pdca_schema.link_problem(link):
                reasons.append(f"link malformed ({problem}): {_show(link)}")
    return reasons


def _has_content(doc: MarkdownDoc, heading: Heading) -> bool:
    for token in doc.section_tokens(heading):
        if token.type == "inline" and token.content.strip():
            return True
        if token.type in ("fence", "code_block", "html_block") and token.content.strip():
            return True
    return False


def section_reasons(doc: MarkdownDoc, rules: TemplateRules) -> list[str]:
    found = pdca_schema.sections(doc)
    first = pdca_schema.first_of_each(found)
    reasons = pdca_schema.order_reasons(first, rules.sections, "section")
    for phase in pdca_schema.PHASES:
        if phase in first and not _has_content(doc, first[phase].heading):
            reasons.append(f"section {phase.upper()} empty")
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
    reasons += dual_link_reasons(doc.lines)
    reasons += placeholder_reasons(doc)
    first = pdca_schema.first_of_each(pdca_schema.sections(doc))
    reasons += pdca_schema.objective_reasons(doc, first)
    reasons += pdca_schema.breadcrumb_reasons(doc)
    return list(dict.fromkeys(reasons))


def validate(text: str) -> HarnessResult:
    """Check ``text`` against the PDCA template of the version its header names."""
    return HarnessResult.from_reasons(check(parse(text)))
