"""Tests of the ``tron_format`` validator: the TRON decision block and the feedback quote."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.data import examples
from loragate.data.examples import AllClear, PendingDecision, TakenDecision
from loragate.harnesses import tron_format

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
FEEDBACK = "looks good\n1a, 2b\n  keep the indentation\npdca"

PENDING = """### **To TRON: QA Decisions required**
- [ ] **Decision 1: Test runner for the new component**
  - a) Vitest with the shared config
  - b) Vitest with a component-local config
- [ ] **Decision 2:** Where the scenario files live
  - **2a)** Next to the component version folder
  - **2b)** In the shared scenarios folder
  - **2c)** ⚠️ Overwrite the old scenarios in place (loses their history)
"""

TAKEN = """### **📋 QA Decisions**
- [x] **Test runner:** Vitest with the shared config, as TRON chose in 1a
- [x] Scenario location: next to the component version folder (2a)
"""

ALL_CLEAR = """## To TRON: QA decisions required (none open)
**All clear, no decisions to make** - the change only renames a private method.
"""

FEEDBACK_ANSWER = f"""{PENDING}
### **TRON Feedback (2025-10-14-UTC-0912)**
```quote
{FEEDBACK}
```

### **My Answer**
Both choices are listed above; I wait for your codes.
"""


@pytest.mark.parametrize("text", [PENDING, TAKEN, ALL_CLEAR],
                         ids=["pending", "taken", "all-clear"])
def test_the_three_forms_pass(text: str):
    assert tron_format.validate(text).reasons == []


def test_feedback_quoted_verbatim_with_answer_passes():
    assert tron_format.validate(FEEDBACK_ANSWER, tron_feedback=FEEDBACK).reasons == []


def test_feedback_crlf_and_trailing_spaces_do_not_matter():
    text = FEEDBACK_ANSWER.replace("1a, 2b", "1a, 2b   ").replace("\n", "\r\n")
    assert tron_format.validate(text, tron_feedback=FEEDBACK).passed


@pytest.mark.parametrize(("text", "reason"), [
    ("Just prose, no block.\n", "missing decision block heading"),
    ("```markdown\n" + PENDING + "```\n", "missing decision block heading"),
    ("### **QA Decisions**\nWe will see.\n", "decision block empty"),
    (PENDING + ALL_CLEAR.split("\n", 1)[1], "decision block mixes forms: pending and all clear"),
    (PENDING + "- [ ] **All clear, no decisions to make** - nothing else\n",
     "decision block mixes forms: pending and all clear"),
    (PENDING.replace("Decision 1:", "Decision 3:"),
     "decision numbering: expected Decision 1, found Decision 3"),
    (PENDING.replace("  - a) Vitest with the shared config\n", ""),
     "Decision 1: fewer than two options"),
    (PENDING.replace("  - a) Vitest", "  - c) Vitest"), "Decision 1: option lettering"),
    (PENDING.replace("**2a)**", "**1a)**"), "Decision 2: option '1a)' numbered for another"),
    (PENDING.replace("⚠️ ", ""), "Decision 2 option c: destructive action without ⚠️"),
    (PENDING.replace("- [ ] **Decision 1", "**Decision 1"),
     "pending decision without '- [ ]' checkbox"),
    (PENDING.replace("- [ ] **Decision 1: Test runner for the new component**",
                     "- [ ] Test runner: which one"), "pending decision not in"),
    ("### QA Decisions\n- [ ] **Decision 1: Use Vitest**\n  - a) Use Vitest\n"
     "  - b) Do not use Vitest\n", "Decision 1: options are one choice and its negation"),
    ("### QA Decisions\n- [ ] **Decision 1: Ship**\n  - a) yes\n  - b) no\n",
     "Decision 1: options are one choice and its negation"),
    ("### QA Decisions\n- [ ] **Decision 1: Ship**\n  - a) now\n  - b) now\n",
     "Decision 1: two options are the same"),
    ("### QA Decisions\n**All clear, no decisions to make**\n", "'All clear' line gives no reason"),
    ("### QA Decisions\n- [x] done without a description\n", "taken decision not in"),
])
def test_broken_blocks_name_the_broken_rule(text: str, reason: str):
    result = tron_format.validate(text)
    assert not result.passed
    assert any(r.startswith(reason) for r in result.reasons), result.reasons


# The team's PDCA.howto.decide.md "Standard Format": completed items above open decisions.
TAKEN_THEN_PENDING = """### **To TRON: QA Decisions required**
- [x] **Completed:** the loader reads scenarios on first use
- [x] **Measured:** start-up reads before and after
- [ ] **Decision 1: Cache lifetime**
  - a) Keep a scenario for the life of the process
  - b) Release it when its component is unloaded
"""


@pytest.mark.parametrize("text", [
    TAKEN_THEN_PENDING,
    TAKEN + ALL_CLEAR.split("\n", 1)[1],
    "### QA Decisions\n- [ ] **All clear, no decisions to make** - the rename is private\n",
    "### QA Decisions\n- [x] **Scope:** parser only\n"
    "- [ ] **All clear, no decisions to make** - scope agreed in the last PDCA\n",
    # Numbering goes on after this document's own decided "Decision 1a" …
    "### QA Decisions\n- [x] **Decision 1a Implemented:** lazy loading is in\n"
    "- [ ] **Decision 2: Cache lifetime**\n  - a) process\n  - b) component\n",
    # … or starts afresh after TRON's answer to the previous PDCA.
    "### QA Decisions\n- [x] **Decision 1b Selected:** a reference guide\n"
    "- [ ] **Decision 1: Guide format**\n  - a) checklist\n  - b) prose\n",
], ids=["taken-then-pending", "taken-and-all-clear", "all-clear-checkbox",
        "taken-and-all-clear-checkbox", "numbering-continues", "numbering-restarts"])
def test_team_practice_blocks_pass(text: str):
    assert tron_format.validate(text).reasons == []


def test_numbering_after_taken_items_must_still_be_consecutive():
    text = ("### QA Decisions\n- [x] **Decision 1a Implemented:** lazy loading is in\n"
            "- [ ] **Decision 3: Cache lifetime**\n  - a) process\n  - b) component\n")
    assert "decision numbering: expected Decision 2, found Decision 3" in \
        tron_format.validate(text).reasons


def test_the_document_title_is_not_the_decision_heading():
    title = "# 📋 **PDCA Cycle: QA Decision Format - Fix the TRON decision layout**\n\n"
    assert tron_format.validate(title + "Intro.\n\n" + PENDING).reasons == []
    assert tron_format.validate(title + "Intro, no block.\n").reasons == [
        "missing decision block heading (e.g. '### To TRON: QA Decisions required')"]


def test_a_malformed_decision_is_named_without_calling_the_block_empty():
    text = "### QA Decisions\n- [ ] Storage layout: which folder?\n"
    reasons = tron_format.validate(text).reasons
    assert reasons == ["pending decision not in '- [ ] **Decision N: <title>**' form: "
                       "'Storage layout: which folder?'"]


@pytest.mark.parametrize(("text", "reason"), [
    (PENDING, "missing TRON Feedback heading"),
    (FEEDBACK_ANSWER.replace("keep the indentation", "keep indentation"),
     "TRON feedback not quoted verbatim"),
    (FEEDBACK_ANSWER.replace("  keep the indentation", "keep the indentation"),
     "TRON feedback not quoted verbatim"),
    (FEEDBACK_ANSWER.replace("```quote", "```"), "TRON Feedback has no ```quote block"),
    (FEEDBACK_ANSWER.replace("### **My Answer**", "Answer below"),
     "missing My Answer block after TRON Feedback"),
    (FEEDBACK_ANSWER.replace("Both choices are listed above; I wait for your codes.\n", ""),
     "My Answer block empty"),
    (FEEDBACK_ANSWER.replace(" (2025-10-14-UTC-0912)", ""),
     "TRON Feedback heading has no UTC timestamp"),
])
def test_feedback_rules_apply_when_the_request_had_feedback(text: str, reason: str):
    assert tron_format.validate(text).passed  # the decision block itself is fine
    result = tron_format.validate(text, tron_feedback=FEEDBACK)
    assert any(r.startswith(reason) for r in result.reasons), result.reasons


def test_without_feedback_in_the_request_the_quote_is_not_required():
    assert tron_format.validate(PENDING, tron_feedback=None).passed
    assert tron_format.validate(PENDING, tron_feedback="   ").passed


def test_feedback_heading_is_not_mistaken_for_the_decision_block():
    text = "### **TRON Feedback (2025-10-14-UTC-0912)**\n```quote\ndecide\n```\n"
    assert "missing decision block heading" in tron_format.validate(text).summary()


@pytest.mark.parametrize("option", [
    "git reset --hard origin/main", "git push --force origin dev/x", "force-push the branch",
    "rm -rf dist", "git branch -D save/start", "delete the old scenarios",
    "overwrite save/start with this branch",
    # History rewriting loses published commits as surely as a delete.
    "squash the five fix-up commits into one", "git commit --amend and push again",
    "amend the last commit with the fixed message", "git rebase -i HEAD~4 to tidy up",
    "rewrite the branch history to drop the secret", "a history rewrite with git filter-repo",
    "git checkout -- src/ts/layer2", "git restore src/ts/layer2/DefaultUser.ts",
    "git stash clear", "git reflog expire --expire=now --all"])
def test_destructive_options_are_recognised(option: str):
    assert tron_format.is_destructive(option)


@pytest.mark.parametrize("option", ["git pull --no-edit", "run the Vitest suite",
                                    "push to origin dev/x", "keep both files",
                                    "git log --oneline to read the history",
                                    "commit the fix as a new commit on top",
                                    "git rebase --abort and keep the branch as it is",
                                    "git checkout dev/claude", "git revert the bad commit",
                                    "squash-merge the PR on GitHub",
                                    "git restore --staged notes.md"])
def test_safe_options_are_not_flagged(option: str):
    assert not tron_format.is_destructive(option)


# ---------------------------------------------------------------- property tests

_word = st.text(alphabet=string.ascii_lowercase, min_size=3, max_size=8).filter(
    lambda w: w not in {"not", "never", "dont", "yes", "all", "clear", "decision", "delete",
                        "drop", "wipe", "erase", "purge", "discard", "destroy"})
_phrase = st.lists(_word, min_size=2, max_size=6).map(" ".join)


@st.composite
def pending_decisions(draw) -> tuple[PendingDecision, ...]:
    count = draw(st.integers(1, 4))
    decisions = []
    for _ in range(count):
        options = draw(st.lists(_phrase, min_size=2, max_size=4, unique=True))
        decisions.append(PendingDecision(draw(_phrase), tuple(options)))
    return tuple(decisions)


_taken = st.lists(st.builds(TakenDecision, _phrase, _phrase), min_size=1, max_size=4) \
    .map(tuple)
_any_decisions = st.one_of(pending_decisions(), _taken, st.builds(AllClear, _phrase))


@st.composite
def decision_headings(draw) -> str:
    """Harmless variations of the heading: emoji, bold, case, text around the keyword."""
    core = draw(st.sampled_from(["To TRON: QA Decisions required", "QA Decisions",
                                 "QA Decisions required", "TRON decisions"]))
    core = draw(st.sampled_from([core, core.upper(), core.lower(), core.title()]))
    prefix = draw(st.sampled_from(["", "📋 ", "🚦 "]))
    suffix = draw(st.sampled_from(["", " (open)", " - please answer"]))
    label = f"{prefix}{core}{suffix}"
    return f"**{label}**" if draw(st.booleans()) else label


_feedback = st.lists(st.text(alphabet=string.ascii_letters + string.digits + " ,.!?-",
                             min_size=1, max_size=30).map(str.rstrip).filter(bool),
                     min_size=1, max_size=4).map("\n".join)


def _render(decisions, heading: str, level: int, feedback: str | None = None) -> str:
    text = examples.render_tron_answer(decisions, feedback=feedback, heading="H")
    return text.replace("### **H**", f"{'#' * level} {heading}", 1)


@PROPERTY
@given(_any_decisions, decision_headings(), st.integers(2, 4), st.one_of(st.none(), _feedback))
def test_valid_block_stays_valid_under_harmless_variations(decisions, heading, level, feedback):
    text = _render(decisions, heading, level, feedback)
    assert tron_format.validate(text, tron_feedback=feedback).reasons == []


@PROPERTY
@given(pending_decisions(), st.data())
def test_removing_an_option_below_two_fails(decisions, data):
    index = data.draw(st.integers(0, len(decisions) - 1))
    target = decisions[index]
    cut = PendingDecision(target.title, target.options[:1])
    broken = decisions[:index] + (cut,) + decisions[index + 1:]
    result = tron_format.validate(examples.render_tron_answer(broken))
    assert f"Decision {index + 1}: fewer than two options" in result.reasons


@PROPERTY
@given(pending_decisions().filter(lambda d: len(d) >= 2), st.data())
def test_misnumbered_decisions_fail(decisions, data):
    text = examples.render_tron_answer(decisions)
    first = data.draw(st.integers(1, len(decisions) - 1))
    text = text.replace(f"**Decision {first}:", "**Decision 99:")
    reasons = tron_format.validate(text).reasons
    assert f"decision numbering: expected Decision {first}, found Decision 99" in reasons


@PROPERTY
@given(pending_decisions())
def test_misordered_option_letters_fail(decisions):
    text = examples.render_tron_answer(decisions)
    # Swap the letters of the first two options of Decision 1.
    text = text.replace("  - a) ", "  - TMP) ", 1).replace("  - b) ", "  - a) ", 1) \
        .replace("  - TMP) ", "  - b) ", 1)
    reasons = tron_format.validate(text).reasons
    assert any(r.startswith("Decision 1: option lettering") for r in reasons), reasons


@PROPERTY
@given(_any_decisions, decision_headings())
def test_block_only_inside_a_code_block_never_counts(decisions, heading):
    text = "Here is the block:\n\n```markdown\n" + _render(decisions, heading, 3) + "```\n"
    assert not tron_format.validate(text).passed


@PROPERTY
@given(_any_decisions, _feedback, st.data())
def test_feedback_changed_by_one_character_fails(decisions, feedback, data):
    text = examples.render_tron_answer(decisions, feedback=feedback)
    position = data.draw(st.integers(0, len(feedback) - 1))
    replacement = "#" if feedback[position] != "#" else "%"
    changed = feedback[:position] + replacement + feedback[position + 1:]
    assert tron_format.validate(text, tron_feedback=feedback).passed
    reasons = tron_format.validate(text, tron_feedback=changed).reasons
    assert "TRON feedback not quoted verbatim" in reasons


@PROPERTY
@given(_any_decisions, _feedback)
def test_removing_the_answer_block_fails(decisions, feedback):
    text = examples.render_tron_answer(decisions, feedback=feedback)
    text = text.split("### **My Answer**")[0]
    reasons = tron_format.validate(text, tron_feedback=feedback).reasons
    assert "missing My Answer block after TRON Feedback" in reasons


@PROPERTY
@given(pending_decisions(), st.sampled_from(["git reset --hard HEAD~3", "rm -rf components",
                                             "git push --force origin main"]))
def test_builder_warns_destructive_options(decisions, destructive):
    first = decisions[0]
    decisions = (PendingDecision(first.title, (*first.options, destructive)),) + decisions[1:]
    text = examples.render_tron_answer(decisions)
    assert f"⚠️ {destructive}" in text
    assert tron_format.validate(text).passed
    unwarned = text.replace("⚠️ ", "")
    assert any("destructive action without ⚠️" in r
               for r in tron_format.validate(unwarned).reasons)


_taken_items = st.lists(st.builds(TakenDecision, _phrase, _phrase), min_size=1, max_size=3) \
    .map(tuple)


@PROPERTY
@given(_taken_items, pending_decisions(), decision_headings())
def test_taken_items_above_pending_decisions_pass(taken, pending, heading):
    assert tron_format.validate(_render(taken + pending, heading, 3)).reasons == []


@PROPERTY
@given(_taken_items, _phrase, st.booleans())
def test_taken_items_with_all_clear_pass(taken, reason, checkbox):
    text = examples.render_tron_answer(taken)
    clear = f"**All clear, no decisions to make** - {reason}"
    text += f"- [ ] {clear}\n" if checkbox else f"\n{clear}\n"
    assert tron_format.validate(text).reasons == []


@PROPERTY
@given(pending_decisions(), _phrase, st.booleans(), st.booleans())
def test_pending_decisions_with_all_clear_fail(pending, reason, checkbox, clear_first):
    block = examples.render_decision_block(pending)
    clear = f"{'- [ ] ' if checkbox else ''}**All clear, no decisions to make** - {reason}"
    body = f"{clear}\n\n{block}" if clear_first else f"{block}\n\n{clear}"
    reasons = tron_format.validate(f"### **QA Decisions**\n{body}\n").reasons
    assert "decision block mixes forms: pending and all clear" in reasons


@PROPERTY
@given(st.integers(1, 9), pending_decisions(), st.sampled_from(["Implemented", "Selected",
                                                                "done"]), st.integers(-1, 2))
def test_numbering_continues_after_a_numbered_taken_item(taken_number, pending, word, offset):
    start = taken_number + 1 + offset
    lines = [f"- [x] **Decision {taken_number}a {word}:** recorded"]
    for number, decision in enumerate(pending, start=start):
        lines.append(f"- [ ] **Decision {number}: {decision.title}**")
        lines += [f"  - {chr(ord('a') + i)}) {option}" for i, option in
                  enumerate(decision.options)]
    reasons = tron_format.validate("### QA Decisions\n" + "\n".join(lines) + "\n").reasons
    if start in (1, taken_number + 1):  # on from the taken item, or afresh from 1
        assert reasons == []
    else:
        assert f"decision numbering: expected Decision {taken_number + 1}, " \
               f"found Decision {start}" in reasons
