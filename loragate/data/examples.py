"""Deterministic builders of compliant Web4 documents: a PDCA in the template, a PDCA in the
plan's plain schema form, and a TRON decision block.

Every builder is a pure function of its parameters (no randomness, no clock), so the data
generator can vary the content by passing different values and get the same bytes for the
same values. ``Variation`` renders harmless surface changes (emoji, bold, case, heading
suffixes) and, for negative examples, structural faults (a part omitted, two sections
swapped, a section heading hidden in a code block).

The output of ``render_pdca`` passes ``pdca_schema``, ``pdca_template`` and
``tron_format`` (with ``spec.tron_feedback`` as the feedback); ``render_plain_pdca`` passes
``pdca_schema``; ``render_decision_block`` passes ``tron_format`` when wrapped by
``render_tron_answer``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from loragate.harnesses.tron_format import has_warning, is_destructive

REPO_URL = "https://github.com/Cerulean-Circle-GmbH/Web4Articles"

# Section key -> (emoji, heading text) as the template writes them.
SECTION_HEADINGS: dict[str, tuple[str, str]] = {
    "summary": ("📊", "SUMMARY"),
    "plan": ("📋", "PLAN"),
    "do": ("🔧", "DO"),
    "check": ("✅", "CHECK"),
    "act": ("🎯", "ACT"),
    "emotional reflection": ("💫", "EMOTIONAL REFLECTION"),
    "pdca process update": ("🎯", "PDCA PROCESS UPDATE"),
}
TEMPLATE_SECTIONS: tuple[str, ...] = tuple(SECTION_HEADINGS)
SUMMARY_PARTS: tuple[str, ...] = ("artifact links", "decisions", "tron feedback", "my answer")

# Header field -> emoji, in template 3.2.4.2 order; older versions use a subset.
HEADER_EMOJI: dict[str, str] = {
    "Date": "🗓️", "Objective": "🎯", "Template Version": "🎯", "CMM Badge": "🏅",
    "Agent Name": "👤", "Agent Role": "👤", "Branch": "👤", "Sync Requirements": "🔄",
    "Project Journal Session": "🎯", "Sprint": "🎯", "Task": "✅", "Issues": "🚨",
    "Previous Commit": "📎", "Previous PDCA": "🔗",
}
HEADER_FIELDS_BY_VERSION: dict[str, tuple[str, ...]] = {
    "3.2.4.2": tuple(HEADER_EMOJI),
    "3.1.4.2": tuple(f for f in HEADER_EMOJI if f != "CMM Badge"),
    "3.1": tuple(f for f in HEADER_EMOJI if f != "CMM Badge"),
    "3.0": tuple(f for f in HEADER_EMOJI
                 if f not in ("CMM Badge", "Agent Name", "Sync Requirements")),
}


@dataclass(frozen=True)
class PendingDecision:
    """An open choice for TRON: a title and at least two lettered options, which must be
    real alternatives (distinct, not one option and its negation). Destructive options
    get their ⚠️ from the renderer."""

    title: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class TakenDecision:
    """A decision already made: ``- [x] <title>: <description>``."""

    title: str
    description: str


@dataclass(frozen=True)
class AllClear:
    """Nothing to decide, and why."""

    reason: str


# Taken items may precede the open decisions (the team's PDCA.howto.decide.md shows
# completed items above "Decision 1"), so a tuple may mix the two.
Decisions = tuple[PendingDecision | TakenDecision, ...] | AllClear


@dataclass(frozen=True)
class Variation:
    """Surface style and deliberate faults applied while rendering.

    Harmless: ``emoji`` (False drops heading emoji; a string replaces them), ``bold``
    (headings wrapped in ``**``), ``case`` ("upper" | "title" | "lower" for section
    headings), ``suffixes`` / ``prefixes`` (text after / before a section keyword, by
    section key), ``blank_lines`` (extra blank lines between blocks). Faults: ``omit``
    (section keys, summary parts, header field names, "title", "breadcrumbs", "objective"
    to leave out), ``swap`` (two section keys rendered in each other's place), ``fence``
    (section keys whose heading is put inside a fenced code block).
    """

    emoji: bool | str = True
    bold: bool = True
    case: str = "upper"
    suffixes: tuple[tuple[str, str], ...] = ()
    prefixes: tuple[tuple[str, str], ...] = ()
    blank_lines: int = 1
    omit: frozenset[str] = frozenset()
    swap: tuple[str, str] | None = None
    fence: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PdcaSpec:
    """Everything a template PDCA says. Defaults give a complete, compliant document."""

    title: str = "Vitest Migration"
    description: str = "Replace Jest runner in the Unit component"
    date: str = "2025-09-21-UTC-2225"
    objective: str = "Move the Unit component tests from Jest to Vitest"
    version: str = "3.2.4.2"
    cmm_badge: str = "CMM3 (awaiting TRON review)"
    agent_name: str = "Background Agent → Developer session agent"
    agent_role: str = "Developer → Test infrastructure"
    branch: str = "dev/2025-09-21-UTC-2225 → Session branch"
    sync: str = "origin/dev/2025-09-21-UTC-2225 → Push after each PDCA"
    session: str = "2025-09-21-UTC-2225-session → Test migration"
    sprint: str = "Sprint 21 → Test tooling"
    task: str = "Migrate Unit tests to Vitest"
    issues: str = "Jest config conflicts with ES modules"
    previous_commit: str = "4f2c9e1a - Add Unit component skeleton"
    pdca_path: str = ("scrum.pmo/project.journal/2025-09-21-UTC-2225-session/"
                      "2025-09-21-UTC-2225-vitest-migration.pdca.md")
    previous_pdca_path: str | None = ("scrum.pmo/project.journal/2025-09-21-UTC-2225-session/"
                                      "2025-09-21-UTC-2200-session-start.pdca.md")
    next_pdca_path: str | None = None
    git_ref: str = "dev/2025-09-21-UTC-2225"
    artifacts: tuple[tuple[str, str], ...] = (
        ("Changed Files", "components/Unit/0.3.0.5/vitest.config.ts"),
    )
    decisions: Decisions = AllClear("the migration follows the agreed Vitest standard")
    tron_feedback: str = "migrate the unit tests to vitest\npdca"
    feedback_timestamp: str = "2025-09-21-UTC-2224"
    answer: str = "Migrating the Unit tests to Vitest now; Jest is removed from the component."
    learning: str = "Check the test runner standard before touching tests."
    plan: tuple[str, ...] = ("**Objective:** Run every Unit test under Vitest",
                             "**Requirements Traceability:** Web4 test standard")
    do: tuple[str, ...] = ("**1. Replace the runner**", "```bash\nnpm install --yes vitest\n```")
    check: tuple[str, ...] = ("**Verification Results:**", "```\nTests  12 passed (12)\n```")
    act: tuple[str, ...] = ("**Success Achieved:** all Unit tests run under Vitest",)
    emotional_headline: str = "Clean Tooling"
    emotional: tuple[tuple[str, str], ...] = (("Relief", "One runner for all components."),)
    process_learning: tuple[str, ...] = ("**PDCA Protocol:** document every significant step",)
    quality_impact: str = "One test runner across components."
    next_focus: str = "Migrate the CLI component tests."


def github_url(path: str, git_ref: str, repo_url: str = REPO_URL) -> str:
    return f"{repo_url}/blob/{git_ref}/{path}"


def dual_link(path: str, from_path: str, git_ref: str, repo_url: str = REPO_URL) -> str:
    """``[GitHub](url) | [§/path](relative)``: the link written in a PDCA at ``from_path``."""
    relative = posixpath.relpath(path, posixpath.dirname(from_path) or ".")
    return f"[GitHub]({github_url(path, git_ref, repo_url)}) | [§/{path}]({relative})"


def _warned(option: str) -> str:
    """Options that destroy data or history carry the ⚠️ warning TRON must see."""
    if is_destructive(option) and not has_warning(option):
        return f"⚠️ {option}"
    return option


def render_decision_block(decisions: Decisions) -> str:
    """The body of a TRON decision block in exactly one of its three forms."""
    if isinstance(decisions, AllClear):
        return f"**All clear, no decisions to make** - {decisions.reason}"
    lines: list[str] = []
    number = 0  # taken items carry no decision number: only open decisions are counted
    for decision in decisions:
        if isinstance(decision, TakenDecision):
            lines.append(f"- [x] **{decision.title}:** {decision.description}")
            continue
        number += 1
        lines.append(f"- [ ] **Decision {number}: {decision.title}**")
        for index, option in enumerate(decision.options):
            lines.append(f"  - {chr(ord('a') + index)}) {_warned(option)}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def render_feedback(feedback: str, timestamp: str, answer: str, learning: str = "") -> str:
    """The ``TRON Feedback`` quote and the ``My Answer`` block that follows it."""
    parts = [f"### **TRON Feedback ({timestamp})**", f"```quote\n{feedback}\n```", "",
             "### **My Answer**", answer]
    if learning:
        parts += ["", f"**Learning Applied:** {learning}"]
    return "\n".join(parts)


def render_tron_answer(decisions: Decisions, feedback: str | None = None,
                       timestamp: str = "2025-09-21-UTC-2224", answer: str = "",
                       heading: str = "To TRON: QA Decisions required") -> str:
    """A short chat answer holding only the decision block (and the quote, if any)."""
    parts = [f"### **{heading}**", render_decision_block(decisions)]
    if feedback is not None:
        parts += ["", render_feedback(feedback, timestamp,
                                      answer or "Understood; the decisions above are open.")]
    return "\n".join(parts) + "\n"


def _case(text: str, case: str) -> str:
    if case == "lower":
        return text.lower()
    if case == "title":
        return text.title()
    return text.upper()


def _heading(level: int, key: str, text: str, emoji: str, variation: Variation,
             headline: str = "") -> str:
    suffix = dict(variation.suffixes).get(key, "")
    prefix = dict(variation.prefixes).get(key, "")
    label = " ".join(part for part in (prefix, _case(text, variation.case)) if part)
    label += (f": {headline}" if headline else "") + (f" {suffix}" if suffix else "")
    if variation.emoji is True:
        label = f"{emoji} {label}"
    elif isinstance(variation.emoji, str) and variation.emoji:
        label = f"{variation.emoji} {label}"
    if variation.bold:
        label = f"**{label}**"
    line = f"{'#' * level} {label}"
    if key in variation.fence:
        return f"```markdown\n{line}\n```"
    return line


def _header(spec: PdcaSpec, variation: Variation) -> list[str]:
    values = {
        "Date": spec.date, "Objective": spec.objective, "Template Version": spec.version,
        "CMM Badge": spec.cmm_badge, "Agent Name": spec.agent_name,
        "Agent Role": spec.agent_role, "Branch": spec.branch, "Sync Requirements": spec.sync,
        "Project Journal Session": spec.session, "Sprint": spec.sprint, "Task": spec.task,
        "Issues": spec.issues, "Previous Commit": spec.previous_commit,
        "Previous PDCA": (dual_link(spec.previous_pdca_path, spec.pdca_path, spec.git_ref)
                          if spec.previous_pdca_path else "N/A - First PDCA"),
    }
    fields = HEADER_FIELDS_BY_VERSION.get(spec.version, HEADER_FIELDS_BY_VERSION["3.2.4.2"])
    # The template groups the fields: version block, agent block, commit/PDCA block.
    group_ends = {"CMM Badge" if "CMM Badge" in fields else "Template Version", "Issues"}
    lines: list[str] = []
    for name in fields:
        skipped = name in variation.omit \
            or (name == "Previous PDCA" and "breadcrumbs" in variation.omit) \
            or (name == "Objective" and "objective" in variation.omit)
        if not skipped:
            emoji = f"{HEADER_EMOJI[name]} " if variation.emoji is not False else ""
            lines.append(f"**{emoji}{name}:** {values[name]}  ")
        if name in group_ends:
            lines.append("")
    if spec.next_pdca_path and "breadcrumbs" not in variation.omit:
        lines.append(f"**➡️ Next PDCA:** "
                     f"{dual_link(spec.next_pdca_path, spec.pdca_path, spec.git_ref)}")
    return lines


def _decision_heading(version: str) -> str:
    return "To TRON: QA Decisions required" if version == "3.2.4.2" else "QA Decisions"


def _summary(spec: PdcaSpec, variation: Variation) -> list[str]:
    parts: dict[str, list[str]] = {
        "artifact links": ["### **Artifact Links**",
                           f"- **PDCA Document:** "
                           f"{dual_link(spec.pdca_path, spec.pdca_path, spec.git_ref)}",
                           *[f"- **{label}:** {dual_link(path, spec.pdca_path, spec.git_ref)}"
                             for label, path in spec.artifacts]],
        "decisions": [f"### **{_decision_heading(spec.version)}**",
                      render_decision_block(spec.decisions)],
        "tron feedback": [f"### **TRON Feedback ({spec.feedback_timestamp})**",
                          f"```quote\n{spec.tron_feedback}\n```"],
        "my answer": ["### **My Answer**", spec.answer, "",
                      f"**Learning Applied:** {spec.learning}"],
    }
    out: list[str] = []
    for key in SUMMARY_PARTS:
        if key not in variation.omit:
            out += [*parts[key], ""]
    return out


def _section_body(spec: PdcaSpec, key: str) -> list[str]:
    if key == "summary":
        return []
    if key == "emotional reflection":
        body: list[str] = []
        for category, text in spec.emotional:
            body += [f"### **{category}:**", text, ""]
        return body
    if key == "pdca process update":
        return ["**Process Learning:**", *[f"- ✅ {line}" for line in spec.process_learning],
                "", f"**Quality Impact:** {spec.quality_impact}", "",
                f"**Next PDCA Focus:** {spec.next_focus}"]
    return "\n\n".join(getattr(spec, key)).split("\n")


def _ordered(keys: tuple[str, ...], variation: Variation) -> list[str]:
    order = [k for k in keys if k not in variation.omit]
    if variation.swap is not None:
        first, second = variation.swap
        if first in order and second in order:
            i, j = order.index(first), order.index(second)
            order[i], order[j] = order[j], order[i]
    return order


def render_pdca(spec: PdcaSpec = PdcaSpec(), variation: Variation = Variation()) -> str:
    """A PDCA in the Web4 template of ``spec.version`` (3.2.4.2 unless told)."""
    blocks: list[str] = []
    if "title" not in variation.omit:
        title_emoji = "📋 " if variation.emoji is not False else ""
        blocks.append(f"# {title_emoji}**PDCA Cycle: {spec.title} - {spec.description}**")
        blocks.append("")
    blocks += _header(spec, variation)
    blocks += ["", "---", ""]
    for key in _ordered(TEMPLATE_SECTIONS, variation):
        emoji, text = SECTION_HEADINGS[key]
        blocks.append(_heading(2, key, text, emoji, variation,
                               headline=spec.emotional_headline
                               if key == "emotional reflection" else ""))
        blocks.append("")
        blocks += _summary(spec, variation) if key == "summary" else _section_body(spec, key)
        blocks += ["", "---", ""]
    return _spaced(blocks, variation)


def _spaced(blocks: list[str], variation: Variation) -> str:
    text = "\n".join(blocks).rstrip("\n-") + "\n"
    if variation.blank_lines > 1:
        text = text.replace("\n\n", "\n" * (variation.blank_lines + 1))
    return text


@dataclass(frozen=True)
class PlainPdcaSpec:
    """The plan's minimum PDCA: Objective, the four phases and two breadcrumb links."""

    title: str = "Vitest Migration"
    objective: str = "Move the Unit component tests from Jest to Vitest"
    follows: str = "2025-09-21-UTC-2200-session-start.pdca.md"
    precedes: str = "2025-09-21-UTC-2300-cli-tests.pdca.md"
    phases: dict[str, str] = field(default_factory=lambda: {
        "plan": "Replace the runner, keep every assertion.",
        "do": "Installed Vitest with `npm install --yes vitest` and ported 12 tests.",
        "check": "All 12 tests pass under Vitest.",
        "act": "Use Vitest for the CLI component next.",
    })


def render_plain_pdca(spec: PlainPdcaSpec = PlainPdcaSpec(),
                      variation: Variation = Variation(emoji=False, bold=False,
                                                       case="title")) -> str:
    """A PDCA in the plan's plain form (``## Objective`` … ``PRECEDES:``/``FOLLOWS:``)."""
    blocks = [f"# PDCA: {spec.title}", ""]
    if "breadcrumbs" not in variation.omit:
        blocks += [f"FOLLOWS: [{spec.follows}]({spec.follows})",
                   f"PRECEDES: [{spec.precedes}]({spec.precedes})", ""]
    if "objective" not in variation.omit:
        blocks += [_heading(2, "objective", "Objective", "🎯", variation), "",
                   spec.objective, ""]
    for key in _ordered(("plan", "do", "check", "act"), variation):
        emoji, text = SECTION_HEADINGS[key]
        blocks += [_heading(2, key, text, emoji, variation), "", spec.phases[key], ""]
    return _spaced(blocks, variation)
