"""Two verdicts item by item: what changed per gate, which prompts flipped, and whether the
flips are more than chance.

Prompts are matched by harness + ``sample_id`` (a sample without one by its node id). A prompt
is compared only when both runs judged it: samples skipped after the gate was decided
(``--fail-fast-gates``) or that could not be judged (errors) are counted, not compared. With
repeats a prompt's outcome is the majority of its judged repeats (more than half passed; a tie
is a fail), and each flip carries both pass fractions.

The test on the flips is exact McNemar: under "no change", the discordant prompts
(pass→fail and fail→pass) split 50/50, so the two-sided p-value is a binomial test of one count
out of their sum (scipy's ``binomtest``). Canaries are compared the same way by ``canary_id``
on the model's outcome (``model_passed``) in each run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loragate.gating.formatting import format_p, harness_cell, run_summary, summary_line
from loragate.gating.statistics import mcnemar_exact

MATCHING = ("prompts matched by harness + sample_id and compared when both runs judged them "
            "(a prompt a run skipped after its gate was decided, or could not judge, is 'not "
            "compared'); with repeats a prompt passes when more than half of its judged "
            "repeats pass")


def label_for(path: Path) -> str:
    """``reports/verdict-base.json`` -> ``base``: the name a reader knows the run by."""
    stem = path.stem
    return stem.removeprefix("verdict-") if stem != "verdict" else stem


def prompt_outcomes(samples: Iterable[dict[str, Any]], aliases: dict[str, str] | None = None
                    ) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (harness, prompt): judged repeats, passes, pass fraction, majority outcome, the
    first failing reason; and the samples that were not judged (skipped or errors).

    ``aliases`` maps node ids to sample ids, for samples recorded without one (an item skipped
    after its gate was decided) whose node id the other run recorded with its sample id.
    """
    aliases = aliases or {}
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for sample in samples:
        prompt = sample.get("sample_id") or aliases.get(sample["nodeid"], sample["nodeid"])
        key = (sample["harness"], prompt)
        entry = table.setdefault(key, {"runs": 0, "passed": 0, "unjudged": 0, "reason": ""})
        if sample.get("skipped") or sample.get("error"):
            entry["unjudged"] += 1
            continue
        entry["runs"] += 1
        entry["passed"] += bool(sample["passed"])
        if not sample["passed"] and not entry["reason"]:
            entry["reason"] = sample.get("reason") or ""
    for entry in table.values():
        if entry["runs"]:
            entry["pass_fraction"] = entry["passed"] / entry["runs"]
            entry["majority"] = entry["passed"] * 2 > entry["runs"]
    return table


def compare_verdicts(old: dict[str, Any], new: dict[str, Any], *, old_label: str = "old",
                     new_label: str = "new") -> dict[str, Any]:
    """The comparison of two verdict documents (``loragate.verdict/1``) as a plain dict."""
    aliases = {s["nodeid"]: s["sample_id"] for doc in (old, new)
               for s in doc.get("samples") or [] if s.get("sample_id")}
    before = prompt_outcomes(old.get("samples") or [], aliases)
    after = prompt_outcomes(new.get("samples") or [], aliases)
    names = list(dict.fromkeys([*old["harnesses"], *new["harnesses"]]))
    notes = []
    if old.get("inputs_hash") and old.get("inputs_hash") != new.get("inputs_hash"):
        notes.append("the runs were judged with different data or rules (inputs_hash differs)")
    if old.get("gate_confidence") != new.get("gate_confidence"):
        notes.append(f"gate confidence differs: {old.get('gate_confidence')} vs "
                     f"{new.get('gate_confidence')}")
    return {
        "labels": {"old": old_label, "new": new_label},
        "runs": {"old": run_summary(old), "new": run_summary(new)},
        "matching": MATCHING,
        "notes": notes,
        "harnesses": [compare_harness(name, old["harnesses"].get(name),
                                      new["harnesses"].get(name), before, after)
                      for name in names],
        "canaries": compare_canaries(old.get("canaries"), new.get("canaries")),
    }


def compare_harness(name: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
                    before: dict[tuple[str, str], dict[str, Any]],
                    after: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    first = old or new or {}
    ids = sorted({k[1] for k in before if k[0] == name} | {k[1] for k in after if k[0] == name})
    pass_to_fail, fail_to_pass = [], []
    both_pass = both_fail = not_compared = 0
    for sample_id in ids:
        a, b = before.get((name, sample_id)), after.get((name, sample_id))
        if not a or not b or not a["runs"] or not b["runs"]:
            not_compared += 1
            continue
        if a["majority"] == b["majority"]:
            both_pass += a["majority"]
            both_fail += not a["majority"]
            continue
        flip = {"sample_id": sample_id, "old_pass_fraction": a["pass_fraction"],
                "new_pass_fraction": b["pass_fraction"],
                "reason": b["reason"] if a["majority"] else a["reason"]}
        (pass_to_fail if a["majority"] else fail_to_pass).append(flip)
    delta = None
    if old and new and old.get("evaluated", True) and new.get("evaluated", True):
        delta = new["score"] - old["score"]
    return {
        "harness": name, "gate": first.get("gate"), "metric": first.get("metric"),
        "threshold": first.get("threshold"),
        "old": _figures(old), "new": _figures(new), "delta": delta,
        "compared": both_pass + both_fail + len(pass_to_fail) + len(fail_to_pass),
        "both_pass": both_pass, "both_fail": both_fail, "not_compared": not_compared,
        "pass_to_fail": pass_to_fail, "fail_to_pass": fail_to_pass,
        "mcnemar_p": mcnemar_exact(len(pass_to_fail), len(fail_to_pass)),
    }


def _figures(harness: dict[str, Any] | None) -> dict[str, Any] | None:
    if harness is None:
        return None
    return {"score": harness["score"], "gate_passed": harness["gate_passed"],
            "cell": harness_cell(harness)}


def compare_canaries(old: dict[str, Any] | None,
                     new: dict[str, Any] | None) -> dict[str, Any] | None:
    """The canaries' flips between the runs, on the model's outcome in each."""
    if not old or not new:
        return None
    before = {c["canary_id"]: c for c in old.get("items") or []}
    after = {c["canary_id"]: c for c in new.get("items") or []}
    shared = sorted(set(before) & set(after))
    regressions = [c for c in shared
                   if before[c]["model_passed"] and not after[c]["model_passed"]]
    improvements = [c for c in shared
                    if not before[c]["model_passed"] and after[c]["model_passed"]]
    return {
        "shared": len(shared),
        "old_passed": sum(before[c]["model_passed"] for c in shared),
        "new_passed": sum(after[c]["model_passed"] for c in shared),
        "regressions": regressions,
        "improvements": improvements,
        "reasons": {c: after[c].get("model_reason", "") for c in regressions},
        "only_old": sorted(set(before) - set(after)),
        "only_new": sorted(set(after) - set(before)),
        "mcnemar_p": mcnemar_exact(len(regressions), len(improvements)),
    }


# -- Markdown --------------------------------------------------------------------------------


def _ids(flips: list[dict[str, Any]], repeated: bool) -> str:
    if not flips:
        return "none"
    if not repeated:
        return ", ".join(f"`{f['sample_id']}`" for f in flips)
    return ", ".join(f"`{f['sample_id']}` ({f['old_pass_fraction']:.2f}→"
                     f"{f['new_pass_fraction']:.2f})" for f in flips)


def _repeated(flips: list[dict[str, Any]]) -> bool:
    return any(f["old_pass_fraction"] not in (0.0, 1.0) or f["new_pass_fraction"] not in (0.0, 1.0)
               for f in flips)


def render_markdown(comparison: dict[str, Any]) -> str:
    """The comparison as Markdown: the gate table with flips and McNemar p, the flipped
    prompts per harness, the canaries, one summary line per run."""
    old, new = comparison["labels"]["old"], comparison["labels"]["new"]
    out = [f"| harness | gate | threshold | {old} | {new} | change | pass→fail | fail→pass "
           "| same | not compared | McNemar p |",
           "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for h in comparison["harnesses"]:
        cells = [h[side]["cell"] if h[side] else "—" for side in ("old", "new")]
        delta = "—" if h["delta"] is None else f"{h['delta']:+.1f}"
        threshold = "—" if h["threshold"] is None else f"{h['threshold']:.2f}"
        out.append(f"| {h['harness']} | {h['gate']} | {threshold} | {cells[0]} | {cells[1]} "
                   f"| {delta} | {len(h['pass_to_fail'])} | {len(h['fail_to_pass'])} "
                   f"| {h['both_pass'] + h['both_fail']} | {h['not_compared']} "
                   f"| {format_p(h['mcnemar_p'])} |")
    out += ["", f"Change: score points, {new} − {old}. Flips go from {old} to {new}; "
            f"{comparison['matching']}. McNemar p: exact two-sided test on the flipped prompts."]
    out += [f"Note: {note}." for note in comparison["notes"]]
    flipped = [h for h in comparison["harnesses"] if h["pass_to_fail"] or h["fail_to_pass"]]
    if flipped:
        out += ["", "Flipped prompts:", ""]
        for h in flipped:
            repeated = _repeated(h["pass_to_fail"] + h["fail_to_pass"])
            out.append(f"- **{h['harness']}**: pass→fail {_ids(h['pass_to_fail'], repeated)}; "
                       f"fail→pass {_ids(h['fail_to_pass'], repeated)}")
    canaries = comparison["canaries"]
    if canaries:
        out += ["", f"Canaries ({canaries['shared']} in both runs): {old} "
                f"{canaries['old_passed']}/{canaries['shared']}, {new} "
                f"{canaries['new_passed']}/{canaries['shared']}; pass→fail: "
                f"{', '.join(canaries['regressions']) or 'none'}; fail→pass: "
                f"{', '.join(canaries['improvements']) or 'none'}; McNemar p = "
                f"{format_p(canaries['mcnemar_p'])}"]
    for side in ("old", "new"):
        out += ["", summary_line(comparison["labels"][side], comparison["runs"][side])]
    return "\n".join(out) + "\n"


