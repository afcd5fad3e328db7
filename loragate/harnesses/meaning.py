"""Reading an answer for what it claims, not for which words it contains.

A knowledge check names *terms*; a term is a keyword (a string, matched as whole tokens, see
:func:`loragate.canaries.keyword_in`), a list of accepted spellings, or ``{"regex": P}`` (a
pattern searched in the folded, lower-cased answer). What a term's occurrence *means* depends
on where it stands:

- **clauses**: the answer is cut at sentence ends, ``;``, ``,``, ``:``, parentheses, table
  cells, spaced dashes and line ends; a clause is the unit a negation or a hedge reaches;
- **negated**: a negation cue (``not``, ``no``, ``never``, ``without``, ``instead of``,
  ``rather than``, ``don't`` …) earlier in the clause, up to a conjunction that starts a new
  claim (``but``, ``and``, ``so`` …), or a verbal negation right after the term (``Jest is
  not used``, ``Jest isn't``); a cue that is part of one of the check's own terms (``no
  parameters``) negates nothing;
- **hedged**: the clause guesses (``maybe``, ``perhaps``, ``could be``, ``might`` …) or
  asks (its sentence ends with ``?``);
- **affirmed**: neither. Only affirmed occurrences count for a required term, and only
  affirmed occurrences of a forbidden claim fail the answer.

An answer that says it does not know or will not answer (``I don't know``, ``I'm not sure``,
``I can't tell``) affirms nothing: :func:`declines_to_answer` finds that. *Order* is read
from the first mention of each item, after the first item, within one sentence, list block
or the whole answer (:func:`in_order`); a *pair* ties a term to its meaning when the meaning
is nearer to that term than to any other key of the check, within one sentence
(:func:`paired`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

TOKEN = _TOKEN = re.compile(r"\w+|[^\w\s]")
# Models and editors write curly quotes and long dashes where code has ASCII ones.
_TYPOGRAPHIC = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-",
})
# Where a claim ends: sentence ends, list and table punctuation, spaced dashes, line ends.
# A table cell is no break: "| **Not used** | Jest |" negates Jest.
# A coordinating conjunction starts a claim of its own ("PRECEDES: the next PDCA and FOLLOWS:
# the previous one").
_CLAUSE_BREAK = re.compile(r"[.!?](?=\s|$)|[;,:()]|\s-{1,2}\s|\n|\s->\s|=>|"
                           r"\s(?=(?:and|but|while|whereas|although|though|however|yet)\s)")
_SENTENCE_BREAK = re.compile(r"[.!?;](?=\s|$)|\n\s*\n|\n(?=\s*[|#])|\n(?=\s*(?:[-*+]|\d+[.)])\s)")
# A conjunction that starts a new claim ends the reach of a negation before it.
_SCOPE_END = frozenset({"but", "and", "so", "then", "while", "whereas", "although", "though",
                        "however", "yet", "which", "because", "since", "instead"})
_NEGATION = re.compile(
    r"\b(?:not|no|never|none|neither|nor|without|cannot|can't|don't|doesn't|didn't|isn't|"
    r"aren't|wasn't|weren't|won't|wouldn't|shouldn't|mustn't|avoid|avoids|avoided|"
    r"instead of|rather than|unlike|except|no longer|forbidden|banned|disallowed|"
    r"deprecated|prohibited)\b|[❌🚫✗✘⛔]")
# Verbal negation after a term reaches back to it: "Jest is not used", "Jest, on the
# contrary, is not employed", "CommonJS (require) is not allowed".
_POST_CUES = frozenset({"not", "never", "forbidden", "banned", "disallowed", "prohibited",
                        "avoided", "excluded", "unused", "deprecated", "discouraged", "rejected",
                        "cannot", "nowhere"})
_INSERTION = re.compile(r"\s*(?:\([^()]*\)|,[^,.;:()]{0,40},|[)\]`'\"*]+)")
_POST_WINDOW = 12
_HEDGE = re.compile(
    r"\b(?:maybe|perhaps|possibly|probably|presumably|might|could be|may be|i think|"
    r"i believe|i guess|i suppose|not sure|unsure|either|depends|it depends|whichever|"
    r"or so|some say|i'm not certain|not certain|could try|you could|you might|might want|"
    r"depending on|any one of (?:them|these)|any of (?:them|these))\b")
# An answer that will not commit: the fact "depends", "varies", any order or form will do.
_NON_COMMITTAL = re.compile(
    r"\b(?:it depends|depends (?:on )?(?:the|your|who|which|what|whether)|(?:try )?one of "
    r"(?:these|them) (?:should|might|may|will|could)|try (?:one|any) of (?:these|them)|"
    r"it can be|(?:varies|vary) (?:by|from|between|across|with)|"
    r"any (?:sequence|order) (?:works|is fine)|whichever|up to you|"
    r"(?:isn't|is not|no|there's no) (?:really )?(?:a )?(?:required|fixed|strict|set|single) "
    r"(?:order|rule|format|sequence|answer)|the format is flexible|both are (?:common|fine|"
    r"valid|possible|ok|okay|used)|all (?:of these|three|four) (?:are|work))\b")
_DECLINES = re.compile(
    r"\b(?:i (?:do not|don't|dont) (?:know|have (?:any )?(?:information|details|knowledge|"
    r"context))|i(?:'m| am) not (?:sure|certain|aware|familiar)|i(?:'m| am) unsure|"
    r"no idea|i (?:cannot|can't|can not|couldn't|could not) (?:say|tell|answer|confirm|"
    r"help|find|recall|determine)|i(?:'m| am) (?:unable|not able) to (?:say|tell|answer|"
    r"confirm|help|find|determine)|i have no (?:information|knowledge|way)|"
    r"(?:is|are) (?:unknown|unclear) to me|i (?:won't|will not) (?:answer|say|guess))\b")


def normalise(text: str) -> str:
    """``text`` in NFKC with typographic quotes and dashes made ASCII (case kept)."""
    return unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC)


def fold(text: str) -> str:
    """:func:`normalise`, then case-folded: the form every term is matched in."""
    return normalise(text).casefold()


class TermError(ValueError):
    """A term that cannot be used; the message names it."""


@dataclass(frozen=True)
class Span:
    start: int  # character offsets in the folded text
    end: int


@dataclass(frozen=True)
class Term:
    """One term of a check: token runs and patterns, any of which counts."""

    spellings: tuple[tuple[str, ...], ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    label: str = ""

    @classmethod
    def parse(cls, value: Any, where: str = "term") -> Term:
        """A string, ``{"regex": P}``, or a list mixing both (accepted alternatives)."""
        alternatives = value if isinstance(value, list) else [value]
        if not alternatives:
            raise TermError(f"{where}: an empty list of alternatives")
        runs: list[tuple[str, ...]] = []
        patterns: list[re.Pattern[str]] = []
        labels: list[str] = []
        for alternative in alternatives:
            if isinstance(alternative, dict):
                patterns.append(_pattern(alternative, where))
                labels.append(f"/{alternative['regex']}/")
            elif isinstance(alternative, str):
                run = tuple(_TOKEN.findall(fold(alternative)))
                if not run:
                    raise TermError(f"{where}: {alternative!r} has no letters, digits or "
                                    "symbols")
                runs.append(run)
                labels.append(repr(alternative))
            else:
                raise TermError(f"{where}: a term is a string, {{\"regex\": PATTERN}} or a "
                                f"list of them, got {alternative!r}")
        return cls(spellings=tuple(runs), patterns=tuple(patterns), label=" or ".join(labels))


def _pattern(value: dict[str, Any], where: str) -> re.Pattern[str]:
    if set(value) != {"regex"} or not isinstance(value["regex"], str) or not value["regex"]:
        raise TermError(f"{where}: a pattern term is {{\"regex\": PATTERN}}, got {value!r}")
    try:
        return re.compile(value["regex"])
    except re.error as exc:
        raise TermError(f"{where}: invalid pattern {value['regex']!r}: {exc}") from None


class Reading:
    """The folded answer with its tokens, clauses and sentences, read once per answer."""

    def __init__(self, text: str) -> None:
        self.text = fold(text)
        found = list(_TOKEN.finditer(self.text))
        self.words = [m.group() for m in found]
        self.starts = [m.start() for m in found]
        self.ends = [m.end() for m in found]
        self.clause_starts = self._breaks(_CLAUSE_BREAK)
        self.sentence_starts = self._breaks(_SENTENCE_BREAK)
        self.questions = {self._sentence_at(m.start()) for m in re.finditer(r"\?", self.text)}

    def _breaks(self, pattern: re.Pattern[str]) -> list[int]:
        return [0, *sorted({m.end() for m in pattern.finditer(self.text)}), len(self.text) + 1]

    @staticmethod
    def _index(starts: list[int], offset: int) -> int:
        low, high = 0, len(starts) - 1
        while low < high - 1:
            middle = (low + high) // 2
            if starts[middle] <= offset:
                low = middle
            else:
                high = middle
        return low

    def _clause_at(self, offset: int) -> int:
        return self._index(self.clause_starts, offset)

    def _sentence_at(self, offset: int) -> int:
        return self._index(self.sentence_starts, offset)

    def clause(self, span: Span) -> tuple[int, int]:
        index = self._clause_at(span.start)
        return self.clause_starts[index], self.clause_starts[index + 1] - 1

    def sentence(self, span: Span) -> int:
        return self._sentence_at(span.start)

    # -- finding terms ------------------------------------------------------------------

    def spans(self, term: Term) -> list[Span]:
        """Every occurrence of ``term``, in order."""
        out = [Span(m.start(), m.end()) for pattern in term.patterns
               for m in pattern.finditer(self.text) if m.end() > m.start()]
        for run in term.spellings:
            width = len(run)
            for i in range(len(self.words) - width + 1):
                if self.words[i] == run[0] and tuple(self.words[i:i + width]) == run:
                    out.append(Span(self.starts[i], self.ends[i + width - 1]))
        return sorted(set(out), key=lambda s: (s.start, s.end))

    # -- what an occurrence means --------------------------------------------------------

    def negated(self, span: Span, own: Sequence[Span] = ()) -> bool:
        """Whether the clause negates this occurrence (cues inside ``own`` spans, the
        check's own terms, do not count)."""
        start, end = self.clause(span)
        before = self.text[start:span.start]
        for cue in _NEGATION.finditer(before):
            at = start + cue.start()
            if any(s.start <= at < s.end for s in own):
                continue
            between = _TOKEN.findall(before[cue.end():])
            if not _SCOPE_END & set(between):
                return True
        return self._negated_after(span, own)

    def _negated_after(self, span: Span, own: Sequence[Span]) -> bool:
        """A negated verb after the term, in its sentence: short insertions (a parenthesis,
        ", on the contrary,") skipped, up to a clause break or a conjunction."""
        sentence_end = self.sentence_starts[self._sentence_at(span.start) + 1] - 1
        offset = span.end
        while True:
            inserted = _INSERTION.match(self.text, offset, sentence_end)
            if inserted is None or inserted.end() == offset:
                break
            offset = inserted.end()
        end = sentence_end
        stop = _CLAUSE_BREAK.search(self.text, offset, sentence_end)
        if stop is not None:
            end = stop.start()
        for count, token in enumerate(_TOKEN.finditer(self.text, offset, end)):
            word = token.group()
            if count >= _POST_WINDOW or word in _SCOPE_END:
                return False
            contracted = word == "t" and self.text[token.start() - 1:token.start()] == "'"
            if (word in _POST_CUES or contracted) and not any(
                    s.start <= token.start() < s.end for s in own):
                return True
        return False

    def hedged(self, span: Span) -> bool:
        start, end = self.clause(span)
        return (_HEDGE.search(self.text[start:end]) is not None
                or self.sentence(span) in self.questions)

    def affirmed(self, span: Span, own: Sequence[Span] = ()) -> bool:
        return not self.negated(span, own) and not self.hedged(span)

    def affirmed_spans(self, term: Term, own: Sequence[Span] = ()) -> list[Span]:
        return [s for s in self.spans(term) if self.affirmed(s, own)]


def declines_to_answer(text: str) -> str | None:
    """The words with which the answer says it does not know, will not answer, or will not
    commit to one answer ("it depends", "any order works"), if any."""
    folded = fold(text)
    found = _DECLINES.search(folded) or _NON_COMMITTAL.search(folded)
    return found.group() if found else None


def parse_terms(values: Any, where: str) -> list[Term]:
    if not isinstance(values, list) or not values:
        raise TermError(f"{where} must be a non-empty list")
    return [Term.parse(value, f"{where}.{i}") for i, value in enumerate(values)]


def own_spans(reading: Reading, terms: Iterable[Term]) -> list[Span]:
    """The spans of a check's own terms: a negation cue inside them is part of the term."""
    return [span for term in terms for span in reading.spans(term)]


# -- order ----------------------------------------------------------------------------------


def _segments(reading: Reading) -> list[tuple[int, int]]:
    """The whole answer, each sentence and each line, as (start, end) character ranges."""
    text = reading.text
    ranges = [(0, len(text))]
    starts = reading.sentence_starts
    ranges += [(starts[i], starts[i + 1] - 1) for i in range(len(starts) - 1)]
    offset = 0
    for line in text.split("\n"):
        ranges.append((offset, offset + len(line)))
        offset += len(line) + 1
    return ranges


def _order_in(reading: Reading, items: Sequence[Term], segment: tuple[int, int],
              own: Sequence[Span]) -> list[int] | None:
    """The first affirmed mention of each item in ``segment`` from the first item's first
    mention on, as offsets; None when an item is missing there."""
    low, high = segment
    first = [s for s in reading.affirmed_spans(items[0], own) if low <= s.start < high]
    if not first:
        return None
    start = first[0].start
    positions = [start]
    for item in items[1:]:
        later = [s.start for s in reading.affirmed_spans(item, own) if start <= s.start < high]
        if not later:
            return None
        positions.append(later[0])
    return positions


def in_order(reading: Reading, items: Sequence[Term], own: Sequence[Span] = ()) -> str | None:
    """None when some segment names every item in order and none names them all in another
    order; else the reason."""
    found_order = wrong_order = False
    for segment in _segments(reading):
        positions = _order_in(reading, items, segment, own)
        if positions is None:
            continue
        if all(a < b for a, b in zip(positions, positions[1:], strict=False)):
            found_order = True
        elif segment != (0, len(reading.text)) or not found_order:
            wrong_order = True
    names = ", ".join(item.label for item in items)
    if wrong_order:
        return f"the items are not in the order {names}"
    if not found_order:
        return f"the items {names} are not all named, in order"
    return None


# -- pairs ----------------------------------------------------------------------------------


def paired(reading: Reading, key: Term, meaning: Term, all_keys: Sequence[Term],
           own: Sequence[Span] = ()) -> bool:
    """Whether an affirmed mention of ``meaning`` is tied to ``key``, the key it belongs to
    among ``all_keys`` in its sentence (a list item and a table row are sentences of their
    own): a key spelled together with it ("constructor()"), else the nearest key in its own
    clause, else the nearest key before it ("PRECEDES (the next PDCA)"), else the nearest
    key after it ("interfaces live in layer3")."""
    key_spans = [(index, span) for index, other in enumerate(all_keys)
                 for span in reading.spans(other)]
    for found in reading.affirmed_spans(meaning, own):
        sentence = reading.sentence(found)
        clause = reading.clause(found)
        best: tuple[int, int, int] | None = None  # (preference, distance, key index)
        for index, span in key_spans:
            if reading.sentence(span) != sentence:
                continue
            if span.start < found.end and found.start < span.end:
                rank = (0, 0, index)
            elif span.end <= found.start:
                gap = len(_TOKEN.findall(reading.text[span.end:found.start]))
                rank = (1 if reading.clause(span) == clause else 2, gap, index)
            else:
                gap = len(_TOKEN.findall(reading.text[found.end:span.start]))
                rank = (1 if reading.clause(span) == clause else 3, gap, index)
            if best is None or rank < best:
                best = rank
        if best is not None and all_keys[best[2]] is key:
            return True
    return False
