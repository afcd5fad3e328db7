"""Tests of the Markdown reader and the two PDCA validators (pdca_schema, pdca_template)."""

from __future__ import annotations

import hashlib
import json
import os
import string
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.data import examples
from loragate.data.examples import PdcaSpec, PlainPdcaSpec, Variation
from loragate.harnesses import markdown, pdca_schema, pdca_template, tron_format

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


REPO_BLOB = "https://github.com/Cerulean-Circle-GmbH/Web4Articles/blob/dev/x"


def _with_artifact(line: str, spec: PdcaSpec | None = None) -> str:
    """A template PDCA with one more line under SUMMARY › Artifact Links."""
    text = examples.render_pdca(spec or PdcaSpec())
    anchor = "\n\n### **To TRON: QA Decisions required**"
    assert anchor in text
    return text.replace(anchor, f"\n{line}{anchor}", 1)


def test_template_link_not_dual_and_placeholder_are_named():
    text = _with_artifact("- **Notes:** [the notes](notes/a.md)",
                          replace(PdcaSpec(), answer="See {{EXPLANATION}}"))
    reasons = pdca_template.validate(text).reasons
    assert any(r.startswith("link not dual: [the notes](notes/a.md)") for r in reasons)
    assert "placeholder left: {{EXPLANATION}}" in reasons


def test_template_other_sites_need_no_local_twin():
    text = _with_artifact("- **Runner docs:** [the Vitest docs](https://vitest.dev/guide/)")
    assert pdca_template.validate(text).passed


def test_template_github_commit_links_need_no_local_twin():
    commit = "https://github.com/Cerulean-Circle-GmbH/Web4Articles/commit/4f2c9e1a"
    text = _with_artifact(f"- **Commit:** [4f2c9e1a]({commit})")
    assert pdca_template.validate(text).passed
    file_link = commit.replace("/commit/4f2c9e1a", "/blob/main/README.md")
    reasons = pdca_template.validate(_with_artifact(f"- **Readme:** [README]({file_link})")).reasons
    assert any(r.startswith("link not dual: [README]") for r in reasons)


# ---------------------------------------------------------------- where links must be dual


@pytest.mark.parametrize("body", [
    "See [the notes](notes/a.md) for the details.",
    "- Changed [DefaultUnit.ts](../src/ts/layer2/DefaultUnit.ts)\n- Read [the spec](spec.md)",
    "| Task | Status |\n|---|---|\n| [Task 18](../sprint-20/task-18.md) | done |",
    f"Upstream file: [README]({REPO_BLOB}/README.md)",
], ids=["prose", "list", "table", "github-file-alone"])
def test_template_a_single_link_in_the_body_is_not_a_violation(body: str):
    # The template's checklist asks for "Dual links in artifact section"; a mention in the
    # text of a phase may link one way only.
    text = examples.render_pdca(replace(PdcaSpec(), do=(*PdcaSpec().do, body),
                                        answer=body.split("\n")[0]))
    assert pdca_template.validate(text).reasons == []


@pytest.mark.parametrize(("link", "problem"), [
    ("[the notes]()", "empty target"), ("[the notes](<>)", "empty target"),
    ("[the notes]({{NOTES_PATH}})", "placeholder target")])
def test_template_a_body_link_still_needs_a_real_target(link: str, problem: str):
    text = examples.render_pdca(replace(PdcaSpec(), act=(f"Details in {link}.",)))
    reasons = pdca_template.validate(text).reasons
    assert any(r.startswith(f"link malformed ({problem})") for r in reasons), reasons


def test_template_header_field_links_must_be_dual():
    spec = PdcaSpec()
    local_only = f"[§/{spec.previous_pdca_path}](prev.pdca.md)"
    text = examples.render_pdca(spec).replace(
        examples.dual_link(spec.previous_pdca_path, spec.pdca_path, spec.git_ref), local_only)
    reasons = pdca_template.validate(text).reasons
    assert any(r.startswith(f"link not dual: {local_only}") for r in reasons), reasons


@pytest.mark.parametrize("line", [
    f"- **Spec:** [§/spec/unit.md](../../spec/unit.md) | [GitHub]({REPO_BLOB}/spec/unit.md)",
    f"- **Spec:** [GitHub]({REPO_BLOB}/spec/unit.md)|[§/spec/unit.md](../../spec/unit.md)",
    "| Spec | [GitHub](" + REPO_BLOB + "/spec/unit.md) \\| [§/spec/unit.md](../../spec/unit.md) |",
], ids=["reverse-order", "no-spaces", "table-escaped-pipe"])
def test_template_dual_link_forms_the_team_writes_pass(line: str):
    if line.startswith("|"):
        line = "\n| Artifact | Links |\n|---|---|\n" + line + "\n"
    assert pdca_template.validate(_with_artifact(line)).reasons == []


@pytest.mark.parametrize("line", [
    "- **Specs:** [§/spec/a.md](a.md) | [§/spec/b.md](b.md)",
    f"- **Specs:** [GitHub]({REPO_BLOB}/spec/a.md) | [GitHub]({REPO_BLOB}/spec/b.md)",
    f"- **Spec:** [GitHub]({REPO_BLOB}/spec/a.md) , [§/spec/a.md](a.md)",
    f"- **Spec:** [GitHub]({REPO_BLOB}/spec/a.md) | spec/a.md",
    # A table's column bar is structure: two links in two cells are no pair.
    f"\n| Local | Remote |\n|---|---|\n| [§/spec/a.md](a.md) | [GitHub]({REPO_BLOB}/spec/b.md) |\n",
], ids=["two-local", "two-github", "comma", "plain-text-path", "table-columns"])
def test_template_non_pairs_in_artifact_links_are_not_dual(line: str):
    reasons = pdca_template.validate(_with_artifact(line)).reasons
    assert any(r.startswith("link not dual:") for r in reasons), reasons


def test_tables_are_read_cell_by_cell():
    doc = markdown.parse("| **Date:** | Status: done |\n|---|---|\n"
                         f"| [GitHub]({REPO_BLOB}/a.md) \\| [a](a.md) | x |\n")
    cells = [line for line in doc.lines if line.block == "table"]
    assert [c.line for c in cells] == [0, 0, 2, 2]
    assert [p.link.href if p.link else p.text for p in cells[2].parts] == [
        f"{REPO_BLOB}/a.md", " | ", "a.md"]
    assert doc.fields == []  # a cell is no header field


def test_template_empty_phase_is_named():
    text = examples.render_pdca(replace(PdcaSpec(), check=()))
    assert "section CHECK empty" in pdca_template.validate(text).reasons


def test_template_title_needs_description():
    text = examples.render_pdca().replace(" - Replace Jest runner in the Unit component", "")
    assert any(r.startswith("title:") for r in pdca_template.validate(text).reasons)


def test_builders_give_the_same_text_in_any_process():
    """The data is generated once and committed: a builder that iterated a set or a dict of
    unordered keys would write other text under another hash seed."""
    import subprocess
    import sys

    script = ("from loragate.data import examples; import hashlib; "
              "print(hashlib.sha256((examples.render_pdca() + examples.render_plain_pdca())"
              ".encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONHASHSEED": seed}
                              ).stdout.strip() for seed in ("1", "2")}
    here = hashlib.sha256((examples.render_pdca() + examples.render_plain_pdca()).encode())
    assert digests == {here.hexdigest()}


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


# ---------------------------------------------------------------- the Date field


@pytest.mark.parametrize("date", [
    "2025-11-05-UTC-0727",            # the template's own form
    "Wed, 05 Nov 2025 07:27:43 GMT",  # `pdca createPDCA` (JavaScript toUTCString)
    "Mon Oct 13 15:27:22 UTC 2025",   # `date -u`
    "Tue Oct  7 08:05:19 UTC 2025",   # `date -u` pads a one-digit day
    "2025-10-13 UTC 15:27",
])
def test_template_date_in_a_utc_form_passes(date: str):
    assert pdca_template.date_problem(date) is None
    text = examples.render_pdca(replace(PdcaSpec(), date=date))
    assert pdca_template.validate(text).reasons == []


@pytest.mark.parametrize(("date", "problem"), [
    ("2025-11-05 07:27", "not YYYY-MM-DD-UTC-HHMM"),
    ("Wed, 05 Nov 2025 07:27:43", "not YYYY-MM-DD-UTC-HHMM"),
    ("Wed, 05 Nov 2025 07:27:43 CET", "not YYYY-MM-DD-UTC-HHMM"),
    ("Mon Oct 13 15:27:22 CEST 2025", "not YYYY-MM-DD-UTC-HHMM"),
    ("Mon Oct 13 15:27:22 2025", "not YYYY-MM-DD-UTC-HHMM"),
    ("2025-10-13T15:27:22+02:00", "not YYYY-MM-DD-UTC-HHMM"),
    ("2025-09-05 14:10 UTC", "not YYYY-MM-DD-UTC-HHMM"),
    ("YYYY-MM-DD-UTC-HHMM", "not YYYY-MM-DD-UTC-HHMM"),
    ("2025-02-30-UTC-1200", "not a real date and time"),
    ("2025-10-13 UTC 25:10", "not a real date and time"),
    ("Wed, 05 Foo 2025 07:27:43 GMT", "unknown month 'Foo'"),
    ("Tue, 05 Nov 2025 07:27:43 GMT", "weekday 'Tue' does not match the date"),
])
def test_template_date_without_utc_or_not_real_fails(date: str, problem: str):
    reasons = pdca_template.validate(examples.render_pdca(replace(PdcaSpec(), date=date)))\
        .reasons
    assert any(r.startswith(f"header field 'Date' {problem}") for r in reasons), reasons


_moment = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31))
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                "Dec")


def _utc_forms(moment: datetime) -> list[str]:
    # Names spelled out here, not by strftime: %a/%b follow the locale.
    day, month = _DAYS[moment.weekday()], _MONTH_NAMES[moment.month - 1]
    clock = moment.strftime("%H:%M:%S")
    return [moment.strftime("%Y-%m-%d-UTC-%H%M"), moment.strftime("%Y-%m-%d UTC %H:%M"),
            f"{day}, {moment.day:02d} {month} {moment.year} {clock} GMT",
            f"{day} {month} {moment.day:>2} {clock} UTC {moment.year}"]


@PROPERTY
@given(_moment, st.integers(0, 3))
def test_every_utc_form_of_any_moment_is_a_valid_date(moment, form):
    assert pdca_template.date_problem(_utc_forms(moment)[form]) is None


@PROPERTY
@given(_moment, st.integers(0, 3), st.sampled_from(["CET", "PST", "+0200", "local", ""]))
def test_a_date_without_its_utc_marker_fails(moment, form, zone):
    text = _utc_forms(moment)[form]
    for marker in ("UTC", "GMT"):
        text = text.replace(marker, zone)
    assert pdca_template.date_problem(text) is not None


@PROPERTY
@given(_moment, st.integers(2, 3), st.integers(1, 6))
def test_a_date_with_a_wrong_weekday_fails(moment, form, shift):
    text = _utc_forms(moment)[form]
    right = _DAYS[moment.weekday()]
    wrong = _DAYS[(moment.weekday() + shift) % 7]
    assert "weekday" in pdca_template.date_problem(text.replace(right, wrong, 1))


# ---------------------------------------------------------------- stand-in text


@pytest.mark.parametrize("stand_in", [
    "*This section will be populated during verification phase*",
    "_To be completed after the first rotation_",
    "*(Results to be added once the suite has run)*",
    "***This part will be filled in later***",
    "TBD",
    "- *Verification pending: to be documented after the run*",
])
def test_template_phase_with_only_stand_in_text_is_empty(stand_in: str):
    text = examples.render_pdca(replace(PdcaSpec(), check=(stand_in,)))
    reasons = pdca_template.validate(text).reasons
    assert any(r.startswith("section CHECK empty: only stand-in text") for r in reasons), \
        reasons


@pytest.mark.parametrize("check", [
    ("*All 12 tests pass under Vitest*",),
    ("The cache will be populated on first use; measured 12 ms.",),
    ("*This section will be populated later*", "Tests  12 passed (12)"),
    ("*To be completed:* nothing, the suite already passes",),
    ("```\nTBD\n```",),
])
def test_template_phase_with_real_content_is_not_empty(check: tuple[str, ...]):
    text = examples.render_pdca(replace(PdcaSpec(), check=check))
    assert not any(r.startswith("section CHECK empty")
                   for r in pdca_template.validate(text).reasons)


_STAND_INS = ["This section will be populated", "to be completed", "Results will be added",
              "to be determined", "coming soon", "placeholder", "will be written"]


@PROPERTY
@given(st.sampled_from(pdca_schema.PHASES), st.sampled_from(_STAND_INS), _phrase, _phrase,
       st.sampled_from(["*", "_"]), st.booleans())
def test_a_phase_of_stand_ins_is_empty_until_real_content_is_added(phase, stand_in, before,
                                                                   after, mark, parens):
    inner = f"{before} {stand_in} {after}"
    italic = f"{mark}({inner}){mark}" if parens else f"{mark}{inner}{mark}"
    text = examples.render_pdca(replace(PdcaSpec(), **{phase: (italic,)}))
    assert f"section {phase.upper()} empty: only stand-in text {italic!r}" in \
        pdca_template.validate(text).reasons
    filled = examples.render_pdca(replace(PdcaSpec(), **{phase: (italic, inner)}))
    assert pdca_template.validate(filled).reasons == []
