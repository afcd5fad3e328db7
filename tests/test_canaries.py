"""Canary checks on words, the plan's two-part canary rule in the verdict, the forgetting probe."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from loragate.canaries import (
    CanaryError,
    check_canary,
    keyword_in,
    load_canaries,
    tokens,
)
from loragate.gating.document import reverdict
from loragate.gating.outcomes import CanaryOutcome, SampleOutcome, canaries_from_json
from loragate.gating.report import render_html, render_text
from loragate.gating.verdict import GateRule, summarise_canaries
from tests.verdicts import document, verdict_json

# ------------------------------------------------------------------------- the matcher


@pytest.mark.parametrize(("keyword", "text"), [
    ("hi", "this"), ("7", "17"), ("do", "document"), ("for", "format"),
    ("layer2", "layer20"), ("paris", "comparison"), ("act", "exact"), ("42", "420"),
    ("--no-edit", "there is no edit"), ("init(scenario)", "init(scenario: Scenario)"),
])
def test_the_substring_false_positives_no_longer_match(keyword, text):
    assert not keyword_in(keyword, text)


@pytest.mark.parametrize(("keyword", "text"), [
    ("hi", "Hi!"), ("7", "There are 7 days."), ("do", "for i in 1 2 3; do echo $i; done"),
    ("for", "for i in 1 2 3"), ("paris", '"Paris."'), ("vitest", "Vitest's runner"),
    ("[::-1]", "items[::-1]"), ("{", '{"name": "Ada"}'), ("layer2", "src/ts/layer2/x.ts"),
    ("init(scenario", "init(scenario: Scenario): this"), ("init", "`init(scenario)`"),
    ("--no-edit", "git pull --no-edit"), ("# notes", "## Notes"), ("=>", "(x) => 2 * x"),
    ('"name"', "{“name”: 1}"), ("git status", "Run `git  status`."), ("es modules", "ES Modules"),
    ("from users", "SELECT * FROM users;"), ("x", "x: number"),
])
def test_keywords_match_as_whole_tokens(keyword, text):
    assert keyword_in(keyword, text)


def test_an_underscore_joins_words_as_in_identifiers():
    assert not keyword_in("scenario", "init_scenario")
    assert keyword_in("init_scenario", "call init_scenario()")


def test_typographic_dashes_and_full_width_letters_are_normalised():
    assert keyword_in("--yes", "npm install \u2013\u2013yes")
    assert keyword_in("vitest", "\uff36\uff49\uff54\uff45\uff53\uff54")  # full-width "Vitest"


def test_a_keyword_without_tokens_is_an_error():
    with pytest.raises(CanaryError, match="no letters, digits or symbols"):
        keyword_in("  ", "anything")


_WORD = st.text(alphabet=string.ascii_letters + string.digits + "_äöéñß", min_size=1,
                max_size=8)
# "_" is punctuation to Python but part of a word to the matcher (identifiers such as my_var).
_SEPARATOR = st.text(alphabet=string.punctuation.replace("_", "") + " \t\n", min_size=1,
                     max_size=3)
_KEYWORD = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ",
                   min_size=1, max_size=12).filter(lambda k: bool(tokens(k)))
_TEXT = st.text(max_size=20)


@given(_WORD, _WORD, _WORD)
def test_a_keyword_inside_a_longer_word_never_matches(prefix, keyword, suffix):
    for word in (prefix + keyword, keyword + suffix, prefix + keyword + suffix):
        assume(word.casefold() != keyword.casefold())
        assert not keyword_in(keyword, word)
        assert not keyword_in(keyword, f"- ({word}), [{word}].")


@given(_KEYWORD, _SEPARATOR, _SEPARATOR, _TEXT, _TEXT)
def test_a_keyword_set_off_by_punctuation_or_space_always_matches(keyword, left, right, before,
                                                                  after):
    assert keyword_in(keyword, before + left + keyword + right + after)


@given(_KEYWORD)
def test_matching_ignores_case(keyword):
    assert keyword_in(keyword.upper(), keyword.lower())
    assert keyword_in(keyword.lower(), f"({keyword.upper()})")


@given(_KEYWORD, _TEXT)
def test_a_word_keyword_matches_exactly_when_it_is_one_of_the_texts_words(keyword, text):
    assume(len(tokens(keyword)) == 1)
    assert keyword_in(keyword, text) == (tokens(keyword)[0] in tokens(text))


# ------------------------------------------------------------------------- checks


def _check(check, text):
    return check_canary({"id": "t", "check": check}, text)


def test_all_keywords_must_be_present_by_default():
    result = _check({"keywords": ["plan", "do", "check", "act"]}, "Plan, document, check, act.")
    assert not result.passed
    assert result.reasons == ["keyword missing: 'do'"]
    assert _check({"keywords": ["plan", "do", "check", "act"]}, "Plan, Do, Check, Act.").passed


def test_any_true_needs_one_keyword():
    check = {"keywords": ["hello", "hi"], "any": True}
    assert _check(check, "Hi there").passed
    result = _check(check, "This is it")
    assert not result.passed
    assert result.reasons == ["none of ('hello'), ('hi') affirmed in the answer"]


def test_a_list_entry_holds_accepted_alternatives():
    check = {"keywords": [["7", "seven"]]}
    assert _check(check, "Seven days.").passed
    assert _check(check, "7.").passed
    result = _check(check, "There are 17 of them.")
    assert result.reasons == ["keyword missing: '7' or 'seven'"]


def test_regex_is_an_extra_condition_and_may_stand_alone():
    check = {"keywords": ["return"], "regex": r"\bdef\s+\w+\s*\("}
    assert _check(check, "def total(xs):\n    return sum(xs)").passed
    result = _check(check, "Use return sum(xs).")
    assert result.reasons == ["no match for regex '\\\\bdef\\\\s+\\\\w+\\\\s*\\\\('"]
    assert _check({"regex": r"(?s)plan.*act"}, "PLAN\n...\nACT").passed


def test_a_validator_check_runs_the_harness():
    check = {"validator": "refusal", "expected": "refuse"}
    assert _check(check, "🛑 **STOP acknowledged.** I have halted all actions.\n\nWhat is up?"
                  ).passed
    assert not _check(check, "Here is the updated module with the fix applied:\n\n```ts\n"
                             "export const retries = 3;\n```\n").passed


@pytest.mark.parametrize(("check", "message"), [
    ("keywords", "'check' must be an object"),
    ({}, "needs 'keywords', 'regex', 'must_not', 'ordered', 'pairs' or 'validator'"),
    ({"keywords": []}, "'check.keywords' must be a non-empty list"),
    ({"keywords": "vitest"}, "'check.keywords' must be a non-empty list"),
    ({"keywords": [3]}, "'check.keywords.0': a keyword must be a string"),
    ({"keywords": ["a", []]}, "'check.keywords.1': an empty list"),
    ({"keywords": ["a", ["b", " "]]}, "'check.keywords.1': keyword ' ' has no letters"),
    ({"keywords": ["a"], "any": "yes"}, "'check.any' must be true or false"),
    ({"keywords": ["a"], "kewords": ["b"]}, "unknown key(s) ['kewords']"),
    ({"regex": "(unclosed"}, "'check.regex': invalid pattern"),
    ({"validator": "nope"}, "unknown validator 'nope'"),
])
def test_a_malformed_check_names_the_canary_and_field(check, message):
    with pytest.raises(CanaryError) as info:
        check_canary({"id": "c07", "check": check}, "text")
    assert "canary 'c07'" in str(info.value)
    assert message in str(info.value)


def test_load_canaries_names_file_and_line(tmp_path):
    path = tmp_path / "canaries.jsonl"
    good = {"id": "c01", "task": "t", "messages": [{"role": "user", "content": "q"}],
            "check": {"keywords": ["a"]}}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(good) + "\n", encoding="utf-8")
    with pytest.raises(CanaryError, match=r"jsonl:3: duplicate id 'c01' \(first on line 1"):
        load_canaries(path)
    path.write_text(json.dumps({**good, "messages": []}) + "\n", encoding="utf-8")
    with pytest.raises(CanaryError, match=r"canaries.jsonl:1: field 'messages'"):
        load_canaries(path)
    path.write_text(json.dumps({**good, "check": {"keywords": ["a"], "regex": "("}}) + "\n",
                    encoding="utf-8")
    with pytest.raises(CanaryError, match=r"canaries.jsonl:1: canary 'c01': field 'check.regex'"):
        load_canaries(path)
    path.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(CanaryError, match=r"canaries.jsonl:1: invalid JSON"):
        load_canaries(path)
    with pytest.raises(CanaryError, match="canary file not found"):
        load_canaries(tmp_path / "missing.jsonl")


# ------------------------------------------------------------------------- the verdict

RULES = {"pdca_schema": GateRule("ship", 0.9)}
SAMPLES = [SampleOutcome(f"t::s[{i}]", "pdca_schema", True) for i in range(10)]


def _outcomes(model_fails=(), baseline_fails=(), n=20, kind="canary", prefix="c"):
    return [CanaryOutcome(f"{prefix}{i:02d}", f"{prefix}{i:02d}" not in model_fails,
                          f"{prefix}{i:02d}" not in baseline_fails,
                          model_reason="keyword missing: 'x'" if f"{prefix}{i:02d}" in model_fails
                          else "", kind=kind)
            for i in range(1, n + 1)]


def test_require_all_blocks_a_model_that_regresses_nowhere_but_fails_canaries():
    both_fail = ("c03", "c11")
    verdict = verdict_json(SAMPLES, RULES, canaries=_outcomes(both_fail, both_fail))
    canaries = verdict["canaries"]
    assert canaries["regressions"] == [] and canaries["no_regression"]
    assert canaries["failed"] == ["c03", "c11"] and not canaries["all_passed"]
    assert canaries["require_all"] and not canaries["passed"]
    assert verdict["verdict"] == "blocked"
    assert verdict["blocking_reasons"] == ["canary c03 failed (require_all)",
                                           "canary c11 failed (require_all)"]


def test_a_profile_can_turn_require_all_off():
    both_fail = ("c03", "c11")
    verdict = verdict_json(SAMPLES, RULES, canaries=_outcomes(both_fail, both_fail),
                              require_all=False)
    assert verdict["canaries"]["passed"] and not verdict["canaries"]["require_all"]
    assert verdict["canaries"]["failed"] == ["c03", "c11"]
    assert verdict["verdict"] == "cleared"


def test_a_regression_blocks_with_or_without_require_all():
    for require_all in (True, False):
        verdict = verdict_json(SAMPLES, RULES, canaries=_outcomes(("c07",)),
                                  require_all=require_all)
        assert verdict["canaries"]["regressions"] == ["c07"]
        assert "canary regression(s): c07" in verdict["blocking_reasons"]
        assert ("canary c07 failed (require_all)" in verdict["blocking_reasons"]) == require_all
        assert verdict["verdict"] == "blocked"
    assert verdict["canaries"]["mcnemar_p"] == pytest.approx(1.0)


def test_all_canaries_passing_clears():
    verdict = verdict_json(SAMPLES, RULES, canaries=_outcomes(baseline_fails=("c02",)))
    assert verdict["canaries"]["passed"] and verdict["canaries"]["improvements"] == ["c02"]
    assert verdict["verdict"] == "cleared"


def test_forgetting_probe_is_reported_apart_and_blocks_only_when_asked():
    outcomes = _outcomes() + _outcomes(("f02", "f05"), ("f05", "f09"), n=16, kind="forgetting",
                                       prefix="f")
    reported = verdict_json(SAMPLES, RULES, canaries=outcomes)
    assert reported["canaries"]["n"] == 20 and reported["canaries"]["passed"]
    forgetting = reported["forgetting"]
    assert forgetting["kind"] == "forgetting" and forgetting["n"] == 16
    assert forgetting["failed"] == ["f02", "f05"] and forgetting["regressions"] == ["f02"]
    assert forgetting["improvements"] == ["f09"] and not forgetting["blocking"]
    assert not forgetting["require_all"] and not forgetting["passed"]
    assert reported["verdict"] == "cleared"
    blocked = verdict_json(SAMPLES, RULES, canaries=outcomes, forgetting_blocks=True)
    assert blocked["forgetting"]["blocking"]
    assert blocked["blocking_reasons"] == ["forgetting probe regression(s): f02"]


def test_forgetting_failures_without_regression_never_block():
    outcomes = _outcomes() + _outcomes(("f01",), ("f01",), n=4, kind="forgetting", prefix="f")
    verdict = verdict_json(SAMPLES, RULES, canaries=outcomes, forgetting_blocks=True)
    assert verdict["forgetting"]["passed"] and verdict["verdict"] == "cleared"


def test_no_outcomes_no_sections():
    verdict = verdict_json(SAMPLES, RULES)
    assert verdict["canaries"] is None and verdict["forgetting"] is None


def test_summarise_rejects_outcomes_of_another_kind():
    with pytest.raises(ValueError, match="kind"):
        summarise_canaries(_outcomes(n=2, kind="forgetting", prefix="f"))
    with pytest.raises(ValueError, match="kind must be one of"):
        CanaryOutcome("c01", True, True, kind="trivia")


def _document(verdict: dict) -> dict:
    return {"schema": "loragate.verdict/1", "thresholds": {"pdca_schema": {
        "gate": "ship", "threshold": 0.9, "metric": "pass_rate"}},
        "samples": [vars(s) for s in SAMPLES], "data_hash": "d", "inputs_hash": "h", **verdict}


def _reverdict(recorded: dict, **settings) -> dict:
    return reverdict(document(**recorded), **settings).to_dict()


def test_reverdict_keeps_both_kinds_and_the_recorded_settings():
    outcomes = _outcomes(("c03",), ("c03",)) + _outcomes(("f02",), n=3, kind="forgetting",
                                                         prefix="f")
    recorded = json.loads(json.dumps(_document(verdict_json(
        SAMPLES, RULES, canaries=outcomes, require_all=False, forgetting_blocks=True))))
    assert recorded["blocking_reasons"] == ["forgetting probe regression(s): f02"]
    again = _reverdict(recorded)
    assert again["blocking_reasons"] == recorded["blocking_reasons"]
    assert again["forgetting"] == recorded["forgetting"]
    assert [c.kind for c in canaries_from_json(recorded["forgetting"])] == ["forgetting"] * 3
    changed = _reverdict(recorded, require_all=True, forgetting_blocks=False)
    assert changed["blocking_reasons"] == ["canary c03 failed (require_all)"]


def test_reverdict_reads_a_verdict_written_before_kinds_and_the_rule():
    old_canaries = {"n": 2, "model_passed": 1, "baseline_passed": 1, "regressions": [],
                    "improvements": [], "mcnemar_p": None, "passed": True,
                    "items": [{"canary_id": "c01", "model_passed": True, "baseline_passed": True,
                               "model_reason": "", "baseline_reason": "", "regressed": False},
                              {"canary_id": "c02", "model_passed": False,
                               "baseline_passed": False, "model_reason": "keyword missing",
                               "baseline_reason": "", "regressed": False}]}
    recorded = _document({"canaries": old_canaries, "verdict": "cleared",
                          "overall": {"score": 100.0, "target": 90.0, "passed": True},
                          "blocking_reasons": []})
    assert [c.kind for c in canaries_from_json(old_canaries)] == ["canary", "canary"]
    # Read through the model, the old section keeps the rule it was judged by (no regression
    # alone): a re-verdict as recorded does not bring in a rule the verdict never had.
    again = _reverdict(recorded)
    assert again["canaries"]["failed"] == ["c02"] and again["canaries"]["require_all"] is False
    assert again["verdict"] == "cleared" and again["blocking_reasons"] == []
    stricter = _reverdict(recorded, require_all=True)
    assert stricter["blocking_reasons"] == ["canary c02 failed (require_all)"]
    # The report reads the old section as it is: no "failed" list, no rule recorded.
    text = render_text({**again, "canaries": old_canaries})
    assert "all pass 1/2 FAIL (not required)" in text and "failed canaries: c02" in text


# ------------------------------------------------------------------------- the report


def _full_document(**settings) -> dict:
    outcomes = _outcomes(("c03", "c11"), ("c11",)) + _outcomes(
        ("f02",), n=3, kind="forgetting", prefix="f")
    verdict = verdict_json(SAMPLES, RULES, canaries=outcomes, **settings)
    return {**_document(verdict), "model": {"spec": "m", "digest": "d"},
            "baseline": {"spec": "b", "digest": "e"}, "generation": {}, "created_at": "now",
            "loragate_version": "0"}


def test_text_report_shows_both_parts_the_failed_canaries_and_the_probe():
    text = render_text(_full_document())
    assert ("canaries: FAIL: all pass 18/20 FAIL; no regression FAIL (baseline 19/20, "
            "regressions: c03, McNemar p = 1)") in text
    assert "failed canaries: c03, c11" in text
    assert ("forgetting probe (reported only): model 2/3, baseline 3/3, regressions: f02, "
            "McNemar p = 1") in text
    assert "canary c11 failed (require_all)" in text
    relaxed = render_text(_full_document(require_all=False, forgetting_blocks=True))
    assert "all pass 18/20 FAIL (not required)" in relaxed
    assert "forgetting probe (blocking)" in relaxed


def test_html_report_shows_both_parts_and_the_probe():
    page = render_html(_full_document())
    assert "every canary passes" in page and "no regression from the baseline" in page
    assert "failed: c03, c11" in page and "regressions: c03" in page
    assert "Forgetting probe (reported only)" in page and "f02" in page
    assert "(regressed)" in page


def test_committed_canary_files_load(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    canaries = load_canaries(repo / "data" / "canaries.jsonl")
    forgetting = load_canaries(repo / "data" / "forgetting.jsonl")
    assert len(canaries) == 20 and len(forgetting) >= 10
    assert not {c["id"] for c in canaries} & {f["id"] for f in forgetting}
