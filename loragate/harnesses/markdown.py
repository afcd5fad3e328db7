"""Structural Markdown reading shared by the PDCA and TRON validators.

The text is parsed once with markdown-it-py (CommonMark plus GitHub's pipe tables, which the
Web4 documents use for artifact and status lists). Everything the validators look at comes
from the parser's tokens, never from substring search over the raw text, so:

- a heading inside a fenced or indented code block is code, not a heading;
- ``## **📋 PLAN**`` and ``## Plan`` are the same section once labels are normalised
  (``normalise_label`` strips ``**``, emoji, punctuation and case);
- a header field is a line that *starts* with a bold label ending in a colon
  (``**🗓️ Date:** value``; ``**Date**: value`` is accepted as the same thing);
- a table cell is its own inline line (block ``"table"``): the ``|`` between columns is
  structure, not text, so it never joins two links of different columns into a pair, while
  an escaped ``\\|`` inside a cell stays text (the team's dual links in tables).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

# Emoji presentation selectors and joiners are format/mark characters, not letters: they
# must vanish with the emoji they decorate ("🗓️" is U+1F5D3 U+FE0F).
_INVISIBLE = {"\ufe0e", "\ufe0f", "\u200d", "\u20e3"}
_PLACEHOLDER = re.compile(r"\{\{\s*[#/]?[A-Za-z_][A-Za-z0-9_ .:-]*\}\}")
_PLAIN_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 _/-]{0,40}?)\s*:(?:\s|$)")


def normalise_label(text: str) -> str:
    """Reduce a heading or label to lowercase words: no ``**``, emoji, punctuation or case.

    Punctuation and symbols become spaces (so "Multi-Day" -> "multi day"), runs of spaces
    collapse, and the result is casefolded.
    """
    out: list[str] = []
    for char in text:
        if char in _INVISIBLE:
            continue
        category = unicodedata.category(char)
        if category[0] in "PSCZ" or category in ("Me", "Mn") and not char.isalnum():
            out.append(" ")
        else:
            out.append(char)
    return " ".join("".join(out).casefold().split())


def words(text: str) -> tuple[str, ...]:
    """The normalised words of ``text``."""
    return tuple(normalise_label(text).split())


def phrase_position(text_words: tuple[str, ...], phrase: str) -> int | None:
    """Index of the first whole-word occurrence of ``phrase`` in ``text_words``, else None."""
    target = tuple(phrase.split())
    if not target:
        return None
    span = len(target)
    for start in range(len(text_words) - span + 1):
        if text_words[start:start + span] == target:
            return start
    return None


def find_placeholders(text: str) -> list[str]:
    """Template placeholders such as ``{{TITLE}}`` or ``{{#each X}}`` left in ``text``."""
    return _PLACEHOLDER.findall(text)


@dataclass(frozen=True)
class Link:
    """An inline Markdown link: its visible text and its target."""

    text: str
    href: str
    line: int

    @property
    def is_github(self) -> bool:
        return self.href.startswith(("https://github.com/", "http://github.com/"))

    @property
    def is_github_file(self) -> bool:
        """A GitHub link to a file or folder of a repository: it has a local twin."""
        return self.is_github and ("/blob/" in self.href or "/tree/" in self.href)

    @property
    def is_external(self) -> bool:
        return "://" in self.href or self.href.startswith(("mailto:", "www."))

    @property
    def is_local(self) -> bool:
        return bool(self.href) and not self.is_external and not self.href.startswith("#")


@dataclass(frozen=True)
class InlinePart:
    """One piece of an inline line: text (``link`` is None) or a link."""

    text: str
    link: Link | None = None


@dataclass(frozen=True)
class InlineLine:
    """One source line of inline content (a paragraph, heading or list item line)."""

    line: int
    parts: tuple[InlinePart, ...]
    # "heading", "paragraph", "list" (a paragraph inside a list item) or "table" (one cell)
    block: str

    @property
    def text(self) -> str:
        return "".join(part.text for part in self.parts)

    @property
    def links(self) -> list[Link]:
        return [part.link for part in self.parts if part.link is not None]


@dataclass(frozen=True)
class Field:
    """A labelled line: ``**🗓️ Date:** value`` (bold) or ``PRECEDES: value`` (plain)."""

    label: str
    value: str
    links: tuple[Link, ...]
    line: int
    bold: bool
    block: str
    key: str = ""  # normalise_label(label), computed once by the parser


@dataclass(frozen=True)
class Heading:
    """An ATX or setext heading outside code, with its plain and normalised text."""

    level: int
    text: str
    line: int
    atx: bool
    token_index: int
    words: tuple[str, ...] = ()  # normalised words of ``text``, computed once by the parser

    @property
    def norm(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class Fence:
    """A fenced code block: its info string (``quote``, ``bash`` …) and content."""

    info: str
    content: str
    line: int
    token_index: int


@dataclass
class MarkdownDoc:
    """A parsed document: tokens plus the structural views the validators need."""

    source: str
    tokens: list[Token]
    headings: list[Heading] = field(default_factory=list)
    lines: list[InlineLine] = field(default_factory=list)
    fields: list[Field] = field(default_factory=list)
    fences: list[Fence] = field(default_factory=list)

    def section_tokens(self, heading: Heading) -> list[Token]:
        """Block tokens after ``heading`` up to the next ATX heading of the same or a higher
        level (setext headings are treated as text, see ``parse``)."""
        start = heading.token_index + 3  # heading_open, inline, heading_close
        end = len(self.tokens)
        for other in self.headings:
            if other.token_index > heading.token_index and other.atx \
                    and other.level <= heading.level:
                end = other.token_index
                break
        return self.tokens[start:end]

    def section_lines(self, heading: Heading, next_heading: Heading | None) -> list[InlineLine]:
        """Inline lines strictly between ``heading`` and ``next_heading`` (or the end)."""
        stop = next_heading.line if next_heading is not None else float("inf")
        return [line for line in self.lines if heading.line < line.line < stop]

    def fields_between(self, first_line: int, stop_line: float) -> list[Field]:
        return [f for f in self.fields if first_line <= f.line < stop_line]

    def fences_between(self, first_line: int, stop_line: float) -> list[Fence]:
        return [f for f in self.fences if first_line <= f.line < stop_line]

    def placeholders(self) -> list[str]:
        """Placeholders left in prose, headings and link targets (code is exempt: a PDCA may
        quote the template in a code block)."""
        found: list[str] = []
        for line in self.lines:
            found += find_placeholders(line.text)
            for link in line.links:
                found += find_placeholders(link.href)
        return found


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # "gfm-like" would also need linkify-it-py; tables are the part of GFM the documents use.
    return MarkdownIt("commonmark").enable("table")


def _plain(children: list[Token]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline", "html_inline", "image"):
            parts.append(child.content)
    return "".join(parts)


def _split_lines(inline: Token) -> list[list[Token]]:
    """Inline children split at soft and hard line breaks (one list per source line)."""
    lines: list[list[Token]] = [[]]
    for child in inline.children or []:
        if child.type in ("softbreak", "hardbreak"):
            lines.append([])
        else:
            lines[-1].append(child)
    return lines


def _inline_parts(children: list[Token], line: int) -> tuple[InlinePart, ...]:
    parts: list[InlinePart] = []
    index = 0
    while index < len(children):
        child = children[index]
        if child.type == "link_open":
            inner: list[Token] = []
            index += 1
            while index < len(children) and children[index].type != "link_close":
                inner.append(children[index])
                index += 1
            text = _plain(inner)
            href = str(child.attrs.get("href", ""))
            parts.append(InlinePart(f"[{text}]", Link(text, href, line)))
        elif child.type in ("text", "code_inline", "html_inline", "image"):
            parts.append(InlinePart(child.content))
        index += 1
    return tuple(parts)


def _bold_field(children: list[Token], line: int, block: str) -> Field | None:
    """``**Label:** value`` or ``**Label**: value`` at the start of a line."""
    index = 0
    while index < len(children) and children[index].type == "text" \
            and not children[index].content.strip():
        index += 1
    if index >= len(children) or children[index].type != "strong_open":
        return None
    close = index + 1
    while close < len(children) and children[close].type != "strong_close":
        close += 1
    if close >= len(children):
        return None
    label = _plain(children[index + 1:close]).strip()
    rest = children[close + 1:]
    if label.endswith(":"):
        label = label[:-1]
    elif rest and rest[0].type == "text" and rest[0].content.lstrip().startswith(":"):
        first = rest[0]
        trimmed = Token("text", "", 0, content=first.content.lstrip()[1:])
        rest = [trimmed, *rest[1:]]
    else:
        return None
    key = normalise_label(label)
    if not key:
        return None
    parts = _inline_parts(rest, line)
    value = "".join(p.text if p.link is None else p.link.text for p in parts).strip()
    links = tuple(p.link for p in parts if p.link is not None)
    return Field(label.strip(), value, links, line, True, block, key)


def _plain_field(children: list[Token], line: int, block: str) -> Field | None:
    """``LABEL: value`` with a plain-text label (the plan's ``PRECEDES:`` lines)."""
    if not children or children[0].type != "text":
        return None
    match = _PLAIN_LABEL.match(children[0].content)
    if match is None:
        return None
    head = Token("text", "", 0, content=children[0].content[match.end():])
    parts = _inline_parts([head, *children[1:]], line)
    value = "".join(p.text if p.link is None else p.link.text for p in parts).strip()
    links = tuple(p.link for p in parts if p.link is not None)
    label = match.group(1)
    return Field(label, value, links, line, False, block, normalise_label(label))


def parse(text: str) -> MarkdownDoc:
    """Parse ``text`` into a ``MarkdownDoc``.

    Setext headings (a paragraph underlined by ``---``) are kept in ``headings`` with
    ``atx=False``; validators look for sections among ATX headings only, because in PDCAs a
    ``---`` under a line of prose is a rule the writer meant as a separator.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected the answer as str, got {type(text).__name__}")
    tokens = _parser().parse(text)
    doc = MarkdownDoc(source=text, tokens=tokens)
    list_depth = 0
    for index, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif token.type == "fence":
            line = token.map[0] if token.map else 0
            doc.fences.append(Fence(token.info.strip(), token.content, line, index))
        elif token.type == "heading_open":
            inline = tokens[index + 1]
            line = token.map[0] if token.map else 0
            text = _plain(inline.children or []).strip()
            doc.headings.append(Heading(
                level=int(token.tag[1]), text=text, line=line,
                atx=token.markup.startswith("#"), token_index=index,
                words=tuple(normalise_label(text).split())))
        elif token.type == "inline" and token.map is not None:
            _collect_inline(doc, token, tokens[index - 1], list_depth)
    return doc


def _block_kind(opener: Token, list_depth: int) -> str:
    if opener.type == "heading_open":
        return "heading"
    if opener.type in ("th_open", "td_open"):
        return "table"
    return "list" if list_depth else "paragraph"


def _collect_inline(doc: MarkdownDoc, inline: Token, opener: Token, list_depth: int) -> None:
    block = _block_kind(opener, list_depth)
    first_line = inline.map[0] if inline.map else 0
    for offset, children in enumerate(_split_lines(inline)):
        line = first_line + offset
        doc.lines.append(InlineLine(line, _inline_parts(children, line), block))
        # A cell is a value in a grid, not a labelled line: "Status: done" in a table must
        # not become a field (nor a breadcrumb such as "Previous PDCA: …").
        if block in ("heading", "table"):
            continue
        found = _bold_field(children, line, block) or _plain_field(children, line, block)
        if found is not None:
            doc.fields.append(found)
