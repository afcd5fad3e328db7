"""``pdca_schema``: the plan's minimum PDCA structure, checked on parsed Markdown.

A document passes when it has
- an Objective, as a level-2 section or as a header field, before the PLAN section;
- the four phase sections PLAN, DO, CHECK, ACT (level-2 headings), in that order;
- breadcrumbs in either form: ``PRECEDES:`` and ``FOLLOWS:`` lines (bold labels allowed),
  or the template's ``Previous PDCA`` header link; a ``Next PDCA`` link, when present,
  must be well formed.

Headings are matched on normalised words (``## **📋 PLAN**`` is PLAN; so is
``## Plan: the fix``); headings inside code blocks do not exist for the parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from loragate.harnesses.base import HarnessResult
from loragate.harnesses.markdown import (
    Field,
    Heading,
    Link,
    MarkdownDoc,
    parse,
    phrase_position,
    words,
)

PHASES: tuple[str, ...] = ("plan", "do", "check", "act")
# Named sections whose headlines may contain a phase word ("EMOTIONAL REFLECTION: Do or
# die"); they are recognised first so such a headline never counts as a phase.
NAMED_SECTIONS: tuple[str, ...] = ("pdca process update", "emotional reflection", "summary")


@dataclass(frozen=True)
class Section:
    """A level-2 ATX heading recognised as one of the PDCA sections."""

    kind: str
    heading: Heading

    @property
    def label(self) -> str:
        return self.kind.upper()


def classify_heading(heading: Heading) -> str | None:
    """The section a level-2 heading stands for, or None for a free-form heading."""
    heading_words = heading.words
    for name in NAMED_SECTIONS:
        if phrase_position(heading_words, name) is not None:
            return name
    found = [(pos, phase) for phase in PHASES
             if (pos := phrase_position(heading_words, phase)) is not None]
    return min(found)[1] if found else None


def sections(doc: MarkdownDoc) -> list[Section]:
    """Recognised level-2 sections in document order (duplicates kept)."""
    found: list[Section] = []
    for heading in doc.headings:
        if heading.level == 2 and heading.atx:
            kind = classify_heading(heading)
            if kind is not None:
                found.append(Section(kind, heading))
    return found


def first_of_each(found: list[Section]) -> dict[str, Section]:
    first: dict[str, Section] = {}
    for section in found:
        first.setdefault(section.kind, section)
    return first


def order_reasons(first: dict[str, Section], required: tuple[str, ...], what: str) -> list[str]:
    """Missing and misordered sections, as ``missing section: X`` / ``<what> order: B before A``."""
    reasons = [f"missing section: {kind.upper()}" for kind in required if kind not in first]
    present = [kind for kind in required if kind in first]
    for earlier, later in pairwise(present):
        if first[later].heading.line < first[earlier].heading.line:
            reasons.append(f"{what} order: {later.upper()} before {earlier.upper()}")
    return reasons


def first_field(doc: MarkdownDoc, key: str, before_line: float = float("inf")) -> Field | None:
    for found in doc.fields:
        if found.key == key and found.line < before_line:
            return found
    return None


def link_problem(link: Link) -> str | None:
    """Why a link is not well formed, or None."""
    href = link.href.strip()
    if not href:
        return "empty target"
    if "{{" in href or "%7B%7B" in href:
        return "placeholder target"
    return None


def objective_reasons(doc: MarkdownDoc, first: dict[str, Section]) -> list[str]:
    plan_line = first["plan"].heading.line if "plan" in first else float("inf")
    for heading in doc.headings:
        if heading.level == 2 and heading.atx and heading.line < plan_line \
                and phrase_position(heading.words, "objective") is not None:
            return []
    field = first_field(doc, "objective", plan_line)
    if field is None:
        return ["missing objective: no Objective section or header field before PLAN"]
    if not field.value:
        return ["header field 'Objective' empty"]
    return []


def _breadcrumb_field_reasons(field: Field | None, name: str, need_link: bool) -> list[str]:
    if field is None:
        return [f"missing breadcrumb: {name}"]
    if not field.value:
        return [f"breadcrumb '{name}' empty"]
    if need_link and not field.links:
        return [f"breadcrumb '{name}' has no link"]
    return [f"breadcrumb '{name}' link malformed ({problem}): {link.href!r}"
            for link in field.links if (problem := link_problem(link))]


def is_first_in_chain(field: Field) -> bool:
    """A ``Previous PDCA`` value that says there is none: the first PDCA of a chain has no
    predecessor, and real documents write "N/A - First PDCA" or "First session PDCA"."""
    value_words = words(field.value)
    return not field.links and bool(value_words) and (
        value_words[:2] == ("n", "a") or value_words[0] == "none" or "first" in value_words)


def breadcrumb_reasons(doc: MarkdownDoc) -> list[str]:
    """Both breadcrumb forms are tried; either complete form passes."""
    precedes = first_field(doc, "precedes")
    follows = first_field(doc, "follows")
    previous = first_field(doc, "previous pdca")
    plain = (_breadcrumb_field_reasons(precedes, "PRECEDES", need_link=False)
             + _breadcrumb_field_reasons(follows, "FOLLOWS", need_link=False))
    if previous is not None and is_first_in_chain(previous):
        template: list[str] = []
    else:
        template = _breadcrumb_field_reasons(previous, "Previous PDCA", need_link=True)
    next_pdca = first_field(doc, "next pdca")
    next_reasons = [] if next_pdca is None else [
        f"breadcrumb 'Next PDCA' link malformed ({problem}): {link.href!r}"
        for link in next_pdca.links if (problem := link_problem(link))]
    if not plain or not template:
        return next_reasons
    if precedes is None and follows is None and previous is None:
        return ["missing breadcrumbs: no PRECEDES/FOLLOWS lines and no 'Previous PDCA' link",
                *next_reasons]
    attempted = template if previous is not None else plain
    return attempted + next_reasons


def check(doc: MarkdownDoc) -> list[str]:
    """Every broken schema rule of a parsed document."""
    first = first_of_each(sections(doc))
    reasons = objective_reasons(doc, first)
    reasons += order_reasons(first, PHASES, "phase")
    reasons += breadcrumb_reasons(doc)
    return reasons


def validate(text: str) -> HarnessResult:
    """Check ``text`` against the plan's minimum PDCA schema."""
    return HarnessResult.from_reasons(check(parse(text)))
