"""Several candidates in one gate session: one verdict each, a table of them, and the exit
status of the session by one documented rule (``docs/verdict.md``).

Each candidate is judged against the same baseline, prompts and rules as if it were gated
alone. The table adds, for each pair of candidates, the exact McNemar test on the gate prompts
both judged (pooled over the harnesses; prompts matched and, with repeats, decided by majority
as in :mod:`loragate.gating.compare`) and on the canaries, so "A is better than B" is a paired
statement, not two scores side by side.

The session's exit status: a candidate that could not be judged (exit 6) makes the comparison
incomplete, so the session is 6 whatever the others did; otherwise 0 when at least one
candidate cleared (the table names them and the best-scoring one), else 1.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from loragate.exit_codes import ExitCode
from loragate.gating.compare import compare_verdicts
from loragate.gating.formatting import format_p
from loragate.gating.statistics import mcnemar_exact

if TYPE_CHECKING:
    from loragate.gating.document import VerdictDocument

CANDIDATES_FORMAT = "loragate.candidates/1"
RULE = ("6 when any candidate could not be judged; else 0 when at least one candidate cleared; "
        "else 1")


class CandidateRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    spec: str | None
    verdict: str
    exit_status: int
    overall_score: float
    verdict_json: str
    reasons: list[str]


class PairRow(BaseModel):
    """Candidate ``a`` against ``b`` on what both judged."""

    model_config = ConfigDict(extra="forbid")

    a: str
    b: str
    section: Literal["gates", "canaries"]
    compared: int
    only_a_passed: int
    only_b_passed: int
    mcnemar_p: float | None


class CandidatesDocument(BaseModel):
    """The table of a session's candidates, written beside their verdicts."""

    model_config = ConfigDict(extra="forbid")

    format: str = CANDIDATES_FORMAT
    rule: str = RULE
    exit_status: int
    cleared: list[str]
    best: str | None
    candidates: list[CandidateRow]
    pairs: list[PairRow]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> CandidatesDocument:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


def candidate_paths(json_path: Path, html_path: Path, name: str) -> tuple[Path, Path]:
    """Where one candidate's verdict goes: ``verdict.json`` -> ``verdict-NAME.json``."""
    return (json_path.with_name(f"{json_path.stem}-{name}{json_path.suffix}"),
            html_path.with_name(f"{html_path.stem}-{name}{html_path.suffix}"))


def table_path(json_path: Path) -> Path:
    return json_path.with_name(f"{json_path.stem}-candidates{json_path.suffix}")


def table_html_path(html_path: Path) -> Path:
    """``report.html`` -> ``report-candidates.html``: the table as a page, linking each
    candidate's own report."""
    return html_path.with_name(f"{html_path.stem}-candidates{html_path.suffix}")


def session_exit_status(documents: dict[str, VerdictDocument]) -> int:
    statuses = [doc.exit_status for doc in documents.values()]
    if any(status not in (ExitCode.CLEARED, ExitCode.BLOCKED) for status in statuses):
        return ExitCode.GATE_ERROR
    return ExitCode.CLEARED if ExitCode.CLEARED in statuses else ExitCode.BLOCKED


def pair_rows(a_name: str, a: VerdictDocument, b_name: str, b: VerdictDocument
              ) -> list[PairRow]:
    """McNemar on the gate prompts (pooled over the harnesses) and on the canaries both
    candidates judged, from :func:`~loragate.gating.compare.compare_verdicts`' flips."""
    comparison = compare_verdicts(a.to_dict(), b.to_dict(), old_label=a_name, new_label=b_name)
    harnesses = comparison["harnesses"]
    rows = [_pair(a_name, b_name, "gates", sum(h["compared"] for h in harnesses),
                  sum(len(h["pass_to_fail"]) for h in harnesses),
                  sum(len(h["fail_to_pass"]) for h in harnesses))]
    canaries = comparison["canaries"]
    if canaries and canaries["shared"]:
        rows.append(_pair(a_name, b_name, "canaries", canaries["shared"],
                          len(canaries["regressions"]), len(canaries["improvements"])))
    return rows


def _pair(a: str, b: str, section: Literal["gates", "canaries"], compared: int, only_a: int,
          only_b: int) -> PairRow:
    return PairRow(a=a, b=b, section=section, compared=compared, only_a_passed=only_a,
                   only_b_passed=only_b, mcnemar_p=mcnemar_exact(only_a, only_b))


def candidates_document(documents: dict[str, VerdictDocument],
                        verdict_files: dict[str, Path]) -> CandidatesDocument:
    rows = [CandidateRow(name=name, spec=doc.model.spec, verdict=doc.verdict,
                         exit_status=doc.exit_status, overall_score=round(doc.overall.score, 2),
                         verdict_json=str(verdict_files[name]),
                         reasons=[*doc.blocking_reasons, *doc.undecided_reasons])
            for name, doc in documents.items()]
    cleared = [row.name for row in rows if row.exit_status == ExitCode.CLEARED]
    best = max(cleared, key=lambda n: documents[n].overall.score) if cleared else None
    pairs = [row for (a, doc_a), (b, doc_b) in itertools.combinations(documents.items(), 2)
             for row in pair_rows(a, doc_a, b, doc_b)]
    return CandidatesDocument(exit_status=session_exit_status(documents), cleared=cleared,
                              best=best, candidates=rows, pairs=pairs)


def render_candidates_text(table: CandidatesDocument) -> str:
    """The terminal's table: a line per candidate, a line per pair, the rule and its result."""
    lines = []
    width = max(len(row.name) for row in table.candidates)
    for row in table.candidates:
        why = f" ({row.reasons[0]}{' …' if len(row.reasons) > 1 else ''})" if row.reasons else ""
        lines.append(f"{row.name:<{width}}  {row.verdict.upper():<8} overall "
                     f"{row.overall_score:5.1f}  {row.verdict_json}{why}")
    for pair in table.pairs:
        lines.append(f"{pair.a} vs {pair.b} [{pair.section}]: {pair.compared} compared, only "
                     f"{pair.a} passed {pair.only_a_passed}, only {pair.b} passed "
                     f"{pair.only_b_passed}, McNemar p {format_p(pair.mcnemar_p)}")
    outcome = (f"cleared: {', '.join(table.cleared)} (best overall: {table.best})"
               if table.cleared else "no candidate cleared")
    lines.append(f"{outcome}; exit {table.exit_status} by the rule: {table.rule}")
    return "\n".join(lines)


def render_candidates_html(table: CandidatesDocument, reports: dict[str, str]) -> str:
    """The table as a page; ``reports``: each candidate's report, relative to the page."""
    from loragate.gating.report import environment

    env = environment()
    env.filters["p_value"] = format_p
    return env.get_template("candidates.html.j2").render(table=table, reports=reports)
