"""Tests of the Markdown reader and the two PDCA validators (pdca_schema, pdca_template)."""

from __future__ import annotations

import json
import string
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.harnesses import examples, markdown, pdca_schema, pdca_template, tron_format
from loragate.harnesses.examples import PdcaSpec, PlainPdcaSpec, Variation

DOCS = Path(__file__).parent / "data" / "web4_docs"
EXPECTED = json.loads((DOCS / "expected.json").read_text(encoding="utf-8"))
VALIDATORS = {"pdca_schema": pdca_schema.validate, "pdca_template": pdca_template.validate,
              "tron_format": tron_format.validate}
PROPERTY = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Words a generated text must not contain: they name sections or fields, so a random
# heading suffix made of them would legitimately change the structure.
RESERVED = {"plan", "do", "check", "act", "summary", "emotional", "reflection", "pdca",
            "process", "update", "objective", "artifact", "links", "qa", "decisions",
            "decision", "tron", "feedback", "my", "answer", "precedes", "follows", "all",
            "clear"}


# ---------------------------------------------------------------- the Markdown reader


@pytest.mark.parametrize(("raw", "expected"), [
    ("**📋 PLAN**", "plan"),
    ("🗓️ Date:", "date"),
    ("  **To TRON: QA Decisions required**  ", "to tron qa decisions required"),
    ("💫 EMOTIONAL REFLECTION: Multi-Day Focus!", "emotional reflection multi day focus"),
    ("Check (results)", "check results"),
])
def test_normalise_label_strips_bold_emoji_punctuation_and_case(raw: str, expected: str):
    assert markdown.normalise_label(raw) == expected


def test_headings_inside_fenced_and_indented_code_are_not_headings():
    doc = markdown.parse("# Title\n\n```md\n## Plan\n```\n\n    ## Do\n\n## Check\n")
    assert [(h.level, h.norm) for h in doc.headings] == [(1, "title"), (2, "check")]


def test_bold_label_fields_in_both_colon_positions_and_plain_labels():
    doc = markdown.parse("**🗓️ Date:** 2025-09-21-UTC-2225  \n**Branch**: dev/x\n"
                         "PRECEDES: [next](next.md)\n")
    fields = {f.key: f for f in doc.fields}
    assert fields["date"].value == "2025-09-21-UTC-2225" and fields["date"].bold
    assert fields["branch"].value == "dev/x"
    assert not fields["precedes"].bold and fields["precedes"].links[0].href == "next.md"


def test_bold_text_that_is_not_a_label_is_not_a_field():
    doc = markdown.parse("**Important** note without a colon\n")
    assert doc.fields == []


def test_links_keep_their_order_and_the_pipe_between_them():
    doc = markdown.parse(
        "- **Doc:** [GitHub](https://github.com/o/r/blob/m/a.md) | [§/a.md](a.md)\n")
    parts = [p.link.href if p.link else p.text for p in doc.lines[0].parts]
    assert parts[-3:] == ["https://github.com/o/r/blob/m/a.md", " | ", "a.md"]


def test_placeholders_in_code_are_exempt_but_not_in_prose():
    doc = markdown.parse("Value {{TITLE}}\n\n```\n{{CODE_PLACEHOLDER}}\n```\n")
    assert doc.placeholders() == ["{{TITLE}}"]


# ---------------------------------------------------------------- hand-written documents


def _cases():
    for name, harnesses in EXPECTED.items():
        if name.startswith("_"):
            continue
        for harness, (passes, *fragments) in harnesses.items():
            yield pytest.param(name, harness, passes, fragments, id=f"{name}-{harness}")


@pytest.mark.parametrize(("name", "harness", "passes", "fragments"), list(_cases()))
def test_hand_written_documents(name: str, harness: str, passes: bool, fragments: list[str]):
    result = VALIDATORS[harness]((DOCS / name).read_text(encoding="utf-8"))
    assert result.passed is passes, result.reasons
    for fragment in fragments:
        assert any(fragment in reason for reason in result.reasons), (fragment, result.reasons)


def test_every_document_in_the_folder_has_expectations():
    on_disk = {p.name for p in DOCS.glob("*.md")}
    assert on_disk == {k for k in EXPECTED if not k.startswith("_")}


# ---------------------------------------------------------------- the naive check's defects


NAIVE_ACCEPTED_BUT_BROKEN = """# PDCA: Code block only

FOLLOWS: [a.md](a.md)
PRECEDES: [c.md](c.md)

## Objective
Show the naive check's defect.

```markdown
## Plan
## Do
## Check
## Act
```
"""


def naive_check(text: str) -> bool:
    """The plan's original check, kept here only to show what it gets wrong."""
    return all(f"## {p}" in text for p in ("Objective", "Plan", "Do", "Check", "Act"))


def test_naive_check_defect_1_emoji_bold_heading_is_accepted():
    text = examples.render_pdca()
    assert "## **📋 PLAN**" in text and not naive_check(text)
    assert pdca_schema.validate(text).passed
    assert pdca_template.validate(text).passed


def test_naive_check_defect_2_heading_in_code_block_is_rejected():
    assert naive_check(NAIVE_ACCEPTED_BUT_BROKEN)
    result = pdca_schema.validate(NAIVE_ACCEPTED_BUT_BROKEN)
    assert not result.passed
    assert {"missing section: PLAN", "missing section: DO", "missing section: CHECK",
            "missing section: ACT"} <= set(result.reasons)


# ---------------------------------------------------------------- named reasons


def test_schema_reasons_name_the_part():
    text = examples.render_plain_pdca(variation=Variation(
        emoji=False, bold=False, case="title", swap=("plan", "do"),
        omit=frozenset({"check"})))
    reasons = pdca_schema.validate(text).reasons
    assert "missing section: CHECK" in reasons
    assert "phase order: DO before PLAN" in reasons


def test_schema_accepts_objective_as_header_field_and_as_section():
    assert pdca_schema.validate(examples.render_pdca()).passed
    assert pdca_schema.validate(examples.render_plain_pdca()).passed


def test_schema_breadcrumbs_plain_form_needs_both_lines():
    text = examples.render_plain_pdca().replace("PRECEDES: ", "Next up: ")
    assert pdca_schema.validate(text).reasons == ["missing breadcrumb: PRECEDES"]


def test_schema_malformed_next_pdca_link_fails():
    text = examples.render_pdca().replace(
        "**🔗 Previous PDCA:**", "**➡️ Next PDCA:** [GitHub]()  \n**🔗 Previous PDCA:**")
    assert any(r.startswith("breadcrumb 'Next PDCA' link malformed")
               for r in pdca_schema.validate(text).reasons)


def test_first_pdca_of_a_chain_needs_no_previous_link():
    text = examples.render_pdca(replace(PdcaSpec(), previous_pdca_path=None))
    assert "N/A - First PDCA" in text
    assert pdca_schema.validate(text).passed and pdca_template.validate(text).passed


def test_template_empty_header_field_is_named():
    text = examples.render_pdca(replace(PdcaSpec(), branch=""))
    assert "header field 'Branch' empty" in pdca_template.validate(text).reasons


def test_template_unknown_version_fails_with_that_reason():
    text = examples.render_pdca(replace(PdcaSpec(), version="4.0"))
    assert "unknown template version '4.0' (known: 3.0, 3.1, 3.1.4.2, 3.2.4.2)" in \
        pdca_template.validate(text).reasons


def test_template_version_rules_differ_in_header_fields():
    older = examples.render_pdca(replace(PdcaSpec(), version="3.0"))
    assert pdca_template.validate(older).passed
    claimed_newer = older.replace("Template Version:** 3.0", "Template Version:** 3.2.4.2")
    reasons = pdca_template.validate(claimed_newer).reasons
    assert {"missing header field 'CMM Badge'", "missing header field 'Agent Name'",
            "missing header field 'Sync Requirements'"} <= set(reasons)


def test_template_link_not_dual_and_placeholder_are_named():
    text = examples.render_pdca(replace(
        PdcaSpec(), answer="See [the notes](notes/a.md) and {{EXPLANATION}}"))
    reasons = pdca_template.validate(text).reasons
    assert any(r.startswith("link not dual: [the notes](notes/a.md)") for r in reasons)
    assert "placeholder left: {{EXPLANATION}}" in reasons


def test_template_other_sites_need_no_local_twin():
    text = examples.render_pdca(replace(
        PdcaSpec(), answer="Per [the Vitest docs](https://vitest.dev/guide/)."))
    assert pdca_template.validate(text).passed


def test_template_github_commit_links_need_no_local_twin():
    commit = "https://github.com/Cerulean-Circle-GmbH/Web4Articles/commit/4f2c9e1a"
    text = examples.render_pdca(replace(PdcaSpec(), answer=f"Fixed in [4f2c9e1a]({commit})."))
    assert pdca_template.validate(text).passed
    file_link = commit.replace("/commit/4f2c9e1a", "/blob/main/README.md")
    text = examples.render_pdca(replace(PdcaSpec(), answer=f"See [README]({file_link})."))
    reasons = pdca_template.validate(text).reasons
    assert any(r.startswith("link not dual: [README]") for r in reasons)


def test_template_empty_phase_is_named():
    text = examples.render_pdca(replace(PdcaSpec(), check=()))
    assert "section CHECK empty" in pdca_template.validate(text).reasons


def test_template_title_needs_description():
    text = examples.render_pdca().replace(" - Replace Jest runner in the Unit component", "")
    assert any(r.startswith("title:") for r in pdca_template.validate(text).reasons)


def test_builders_are_deterministic():
    assert examples.render_pdca() == examples.render_pdca()
    assert examples.render_plain_pdca() == examples.render_plain_pdca()


@pytest.mark.parametrize("version", sorted(pdca_template.RULES))
def test_builder_output_passes_every_version(version: str):
    text = examples.render_pdca(replace(PdcaSpec(), version=version))
    assert pdca_template.validate(text).passed, pdca_template.validate(text).reasons
    assert pdca_schema.validate(text).passed


# ---------------------------------------------------------------- property tests

_word = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=9) \
    .filter(lambda w: w.lower() not in RESERVED)
_phrase = st.lists(_word, min_size=1, max_size=6).map(" ".join)
_date = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)) \
    .map(lambda d: d.strftime("%Y-%m-%d-UTC-%H%M"))
_body = st.lists(_phrase, min_size=1, max_size=3).map(tuple)


@st.composite
def pdca_specs(draw) -> PdcaSpec:
    return replace(
        PdcaSpec(), title=draw(_phrase), description=draw(_phrase), objective=draw(_phrase),
        date=draw(_date), version=draw(st.sampled_from(sorted(pdca_template.RULES))),
        agent_name=draw(_phrase), agent_role=draw(_phrase), task=draw(_phrase),
        issues=draw(_phrase), plan=draw(_body), do=draw(_body), check=draw(_body),
        act=draw(_body), answer=draw(_phrase), emotional_headline=draw(_phrase),
        previous_pdca_path=draw(st.sampled_from([None, "scrum.pmo/a/prev.pdca.md"])),
        next_pdca_path=draw(st.sampled_from([None, "scrum.pmo/a/next.pdca.md"])),
    )


_sections = st.sampled_from(examples.TEMPLATE_SECTIONS)


@st.composite
def harmless_variations(draw) -> Variation:
    keys = draw(st.lists(_sections, max_size=4, unique=True))
    return Variation(
        emoji=draw(st.sampled_from([True, False, "🧪", "⭐"])),
        bold=draw(st.booleans()),
        case=draw(st.sampled_from(["upper", "title", "lower"])),
        suffixes=tuple((k, draw(_phrase)) for k in keys[:2]),
        prefixes=tuple((k, draw(_phrase)) for k in keys[2:]),
        blank_lines=draw(st.integers(1, 3)),
    )


def _with_whitespace_noise(text: str, crlf: bool, trailing: bool) -> str:
    lines = text.split("\n")
    if trailing:
        lines = [line + "  " if line and not line.startswith("```") else line
                 for line in lines]
    return ("\r\n" if crlf else "\n").join(lines)


@PROPERTY
@given(pdca_specs(), harmless_variations(), st.booleans(), st.booleans())
def test_valid_template_pdca_stays_valid_under_harmless_variations(spec, variation, crlf,
                                                                   trailing):
    text = _with_whitespace_noise(examples.render_pdca(spec, variation), crlf, trailing)
    assert pdca_template.validate(text).reasons == []
    assert pdca_schema.validate(text).reasons == []


@PROPERTY
@given(harmless_variations(), _phrase, _phrase)
def test_valid_plain_pdca_stays_valid_under_harmless_variations(variation, title, objective):
    spec = replace(PlainPdcaSpec(), title=title, objective=objective)
    assert pdca_schema.validate(examples.render_plain_pdca(spec, variation)).reasons == []


SUMMARY_REASON = {"artifact links": "Artifact Links", "decisions": "QA Decisions",
                  "tron feedback": "TRON Feedback", "my answer": "My Answer"}


def _template_removals(version: str) -> list[tuple[str, str]]:
    removals = [(key, f"missing section: {key.upper()}") for key in examples.TEMPLATE_SECTIONS]
    removals += [(key, f"missing summary part: {name}") for key, name in SUMMARY_REASON.items()]
    removals += [(name, f"missing header field '{name}'")
                 for name in pdca_template.RULES[version].header_fields]
    removals.append(("title", "title: first heading must be"))
    return removals


@PROPERTY
@given(pdca_specs(), harmless_variations(), st.data())
def test_template_fails_when_any_required_part_is_removed(spec, variation, data):
    part, reason = data.draw(st.sampled_from(_template_removals(spec.version)))
    text = examples.render_pdca(spec, replace(variation, omit=frozenset({part})))
    reasons = pdca_template.validate(text).reasons
    assert any(r.startswith(reason) for r in reasons), (part, reasons)


SCHEMA_REMOVALS = [("plan", "missing section: PLAN"), ("do", "missing section: DO"),
                   ("check", "missing section: CHECK"), ("act", "missing section: ACT"),
                   ("objective", "missing objective"), ("breadcrumbs", "missing breadcrumb")]


@PROPERTY
@given(pdca_specs(), harmless_variations(), st.sampled_from(SCHEMA_REMOVALS), st.booleans())
def test_schema_fails_when_any_required_part_is_removed(spec, variation, removal, plain):
    part, reason = removal
    if plain:
        text = examples.render_plain_pdca(variation=replace(variation, omit=frozenset({part})))
    else:
        text = examples.render_pdca(spec, replace(variation, omit=frozenset({part})))
    reasons = pdca_schema.validate(text).reasons
    assert any(r.startswith(reason) for r in reasons), (part, reasons)


@PROPERTY
@given(pdca_specs(), harmless_variations(),
       st.lists(_sections, min_size=2, max_size=2, unique=True))
def test_template_fails_when_two_sections_are_swapped(spec, variation, pair):
    text = examples.render_pdca(spec, replace(variation, swap=tuple(pair)))
    reasons = pdca_template.validate(text).reasons
    assert any(r.startswith("section order:") for r in reasons), (pair, reasons)


@PROPERTY
@given(harmless_variations(), st.lists(st.sampled_from(pdca_schema.PHASES), min_size=2,
                                       max_size=2, unique=True), st.booleans())
def test_schema_fails_when_two_phases_are_swapped(variation, pair, plain):
    swapped = replace(variation, swap=tuple(pair))
    text = (examples.render_plain_pdca(variation=swapped) if plain
            else examples.render_pdca(variation=swapped))
    reasons = pdca_schema.validate(text).reasons
    assert any(r.startswith("phase order:") for r in reasons), (pair, reasons)
    assert not any(r.startswith("missing") for r in reasons), reasons


@PROPERTY
@given(pdca_specs(), harmless_variations(), _sections)
def test_a_section_heading_inside_a_code_block_never_counts(spec, variation, key):
    text = examples.render_pdca(spec, replace(variation, fence=frozenset({key})))
    assert f"missing section: {key.upper()}" in pdca_template.validate(text).reasons
    if key in pdca_schema.PHASES:
        assert f"missing section: {key.upper()}" in pdca_schema.validate(text).reasons


@PROPERTY
@given(pdca_specs(), st.sampled_from(pdca_schema.PHASES))
def test_a_removed_phase_is_not_restored_by_a_code_block_copy(spec, phase):
    variation = Variation(omit=frozenset({phase}))
    text = examples.render_pdca(spec, variation)
    emoji, name = examples.SECTION_HEADINGS[phase]
    text += f"\n```markdown\n## **{emoji} {name}**\ncontent\n```\n"
    assert f"missing section: {name}" in pdca_schema.validate(text).reasons


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("#*-|[]()`>\n :abcPLANDOx0123456789{}_~"))
               | st.characters(), max_size=300))
def test_any_text_gets_a_result_never_an_exception(text):
    for validate in VALIDATORS.values():
        result = validate(text)
        assert result.passed is (not result.reasons)


def test_empty_answer_fails_with_reasons_and_non_text_is_a_clear_error():
    for validate in VALIDATORS.values():
        assert validate("").reasons
    with pytest.raises(TypeError, match="expected the answer as str"):
        pdca_schema.validate(None)  # type: ignore[arg-type]
