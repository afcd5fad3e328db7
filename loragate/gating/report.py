"""Render a verdict document: a terminal table, a gate table for pytest-html, a standalone page.

The standalone page puts the gate table first (what a reviewer looks at, with what each gate's
sample count can decide), then per harness its samples, failing first and open, each with the
model's answer and the validator's reasons, filterable by harness and outcome; then the model,
canaries, checks and metrics. The page is one file: its style and script are inline and it
loads nothing, so it opens the same from a CI artifact, a mail or a file share.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from loragate.gating.formatting import (
    document_summary_line,
    failed_ids,
    format_p,
    harness_cell,
    probe_line,
)
from loragate.gating.outcomes import SampleOutcome

# Failing samples first: they are what a reviewer has to read.
OUTCOME_ORDER = {"fail": 0, "error": 1, "skipped": 2, "pass": 3}


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("loragate", "templates"),
        autoescape=select_autoescape(["html", "html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.1f}%"
    env.filters["num"] = lambda v, d=3: "—" if v is None else f"{v:.{d}f}"
    env.filters["judge_line"] = judge_line
    env.filters["probe_line"] = probe_line
    return env


def render_gate_table_html(document: dict[str, Any]) -> str:
    return environment().get_template("gate_table.html.j2").render(doc=document)


def render_html(document: dict[str, Any]) -> str:
    env = environment()
    table = env.get_template("gate_table.html.j2").render(doc=document)
    return env.get_template("report.html.j2").render(doc=document, gate_table=table,
                                                     sections=harness_sections(document))


def render_sample_html(sample: dict[str, Any], flaky: bool = False) -> str:
    """One sample as a ``<details>`` block (open when it failed): its answer, escaped, and the
    validator's reasons. For pytest-html's per-item extras."""
    return environment().get_template("sample.html.j2").render(sample=sample_view(sample),
                                                                flaky=flaky)


def render_compare_html(comparison: dict[str, Any]) -> str:
    """A comparison from :func:`loragate.gating.compare.compare_verdicts` as a page."""
    return environment().get_template("compare.html.j2").render(cmp=comparison)


def outcome_of(sample: dict[str, Any]) -> str:
    if sample.get("passed"):
        return "pass"
    if sample.get("skipped"):
        return "skipped"
    return "error" if sample.get("error") else "fail"


def sample_view(sample: dict[str, Any]) -> dict[str, Any]:
    """A recorded sample with every field present (older verdicts lack the evidence fields)."""
    defaults = {f.name: f.default for f in fields(SampleOutcome) if f.default is not MISSING}
    view = {"nodeid": "", "harness": "", "passed": False, **defaults, **sample}
    view["outcome"] = outcome_of(view)
    return view


def harness_sections(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Per harness (in the gate table's order) its samples, failing first, and flaky prompts."""
    by_harness: dict[str, list[dict[str, Any]]] = {name: [] for name in document["harnesses"]}
    for sample in document.get("samples") or []:
        by_harness.setdefault(sample["harness"], []).append(sample_view(sample))
    sections = []
    for name, samples in by_harness.items():
        summary = document["harnesses"].get(name)
        flaky = (summary or {}).get("flaky") or []
        flaky_ids = {f["sample_id"] for f in flaky}
        for view in samples:
            view["flaky"] = (view["sample_id"] or view["nodeid"]) in flaky_ids
        samples.sort(key=lambda v: (OUTCOME_ORDER[v["outcome"]], v["sample_id"] or v["nodeid"],
                                    v["repeat"] or 0))
        counts = {k: sum(v["outcome"] == k for v in samples) for k in OUTCOME_ORDER}
        sections.append({"name": name, "summary": summary, "samples": samples,
                         "flaky": flaky, "counts": counts})
    return sections


def gate_rows(document: dict[str, Any]) -> list[dict[str, str]]:
    """One row per harness with the figures a reviewer reads first."""
    rows = []
    for name, h in document["harnesses"].items():
        if h["metric"] == "f1":
            # No sample judged (every one an error): F1 has no value, the gate is undecided.
            score = "F1 —" if h.get("f1") is None else f"F1 {h['f1']:.3f}"
            interval = f"[{h['f1_low']:.3f}, —]" if h.get("f1_low") is not None else ""
        else:
            score = f"{h['passed']}/{h['n']} = {100 * h['pass_rate']:.1f}%"
            interval = f"[{100 * h['wilson_low']:.1f}, {100 * h['wilson_high']:.1f}]"
        rows.append({
            "harness": name,
            "gate": h["gate"],
            "score": score,
            "interval": interval,
            "threshold": f"{h['threshold']:.2f}",
            "result": "PASS" if h["gate_passed"] else "FAIL",
            "power": h.get("power", ""),
            "can_pass": h.get("can_pass", True),
        })
    return rows


def render_text(document: dict[str, Any]) -> str:
    """The one-screen terminal summary."""
    rows = gate_rows(document)
    header = {"harness": "harness", "gate": "gate", "score": "score",
              "interval": "95% interval", "threshold": "threshold", "result": "result"}
    widths = {k: max(len(header[k]), *(len(r[k]) for r in rows)) if rows else len(header[k])
              for k in header}
    line = "  ".join(f"{{{k}:<{widths[k]}}}" for k in header)
    out = [line.format(**header), line.format(**{k: "-" * widths[k] for k in header})]
    out += [line.format(**row) for row in rows]
    # The gates no run of this size could pass: a reviewer should not read them as the model's.
    out += [f"  {row['harness']}: {row['power']}" for row in rows if not row["can_pass"]]
    overall = document["overall"]
    out.append("")
    out.append(f"overall score: {overall['score']:.1f} (target {overall['target']:.1f}) "
               f"{'PASS' if overall['passed'] else 'FAIL'}")
    out += canary_lines(document)
    latency = document.get("metrics", {}).get("latency")
    if latency:
        out.append("latency: " + ", ".join(f"{k} {v}" for k, v in latency.items()
                                           if not isinstance(v, dict)))
    checks = document.get("checks") or []
    if checks:
        failed = [c for c in checks if c["outcome"] in ("failed", "error")]
        out.append(f"checks: {len(checks) - len(failed)}/{len(checks)} passed")
    out += judge_lines(document)
    out.append("")
    if document.get("reverdicted_from"):
        out.append(f"(recomputed from the recorded verdict {document['reverdicted_from'][:12]}: "
                   "its thresholds or judges were changed afterwards, nothing was generated)")
    out.append(f"VERDICT: {document['verdict'].upper()}")
    out += [f"  - {reason}" for reason in document["blocking_reasons"]]
    if document["verdict"] == "error":
        out += [f"  - {reason}" for reason in document.get("undecided_reasons") or []]
        out += [f"  - {reason}" for reason in document.get("gate_errors") or []
                if reason not in (document.get("undecided_reasons") or [])]
    return "\n".join(out)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def judge_line(name: str, judge: dict[str, Any]) -> str:
    """One judge's calibration figures, as the text and HTML reports show them."""
    kappa = "n/a" if judge.get("kappa") is None else f"{judge['kappa']:.2f}"
    positive = judge.get("positive", "pass")
    what = "right answers accepted" if positive == "pass" else f"{positive} recognised"
    other = "wrong answers rejected" if positive == "pass" else "others recognised"
    return (f"{name}: n={judge['n']}, accuracy {_percent(judge['accuracy'])}, {what} "
            f"{_percent(judge.get('recall'))}, {other} {_percent(judge.get('specificity'))}, "
            f"kappa {kappa}")


def judge_lines(document: dict[str, Any]) -> list[str]:
    judges = document.get("judges") or {}
    if not judges:
        return []
    return ["judges (measured on labelled answers they were not tuned on):"] + [
        "  " + judge_line(name, judge) for name, judge in sorted(judges.items())]


def canary_lines(document: dict[str, Any]) -> list[str]:
    """The canary rule part by part (all pass, no regression) and the forgetting probe."""
    out: list[str] = []
    canaries = document.get("canaries")
    if canaries:
        n, failed = canaries["n"], failed_ids(canaries)
        require_all = canaries.get("require_all", False)
        all_part = ("PASS" if not failed else "FAIL") + ("" if require_all else " (not required)")
        regress = ", ".join(canaries["regressions"]) or "none"
        out.append(f"canaries: {'PASS' if canaries['passed'] else 'FAIL'}: all pass "
                   f"{canaries['model_passed']}/{n} {all_part}; no regression "
                   f"{'PASS' if not canaries['regressions'] else 'FAIL'} (baseline "
                   f"{canaries['baseline_passed']}/{n}, regressions: {regress}, "
                   f"McNemar p = {format_p(canaries.get('mcnemar_p'))})")
        if failed:
            out.append(f"  failed canaries: {', '.join(failed)}")
        probes = probe_line(canaries.get("probes"))
        if probes:
            out.append(f"  {probes}")
    forgetting = document.get("forgetting")
    if forgetting:
        n = forgetting["n"]
        regress = ", ".join(forgetting["regressions"]) or "none"
        role = "blocking" if forgetting.get("blocking") else "reported only"
        out.append(f"forgetting probe ({role}): model {forgetting['model_passed']}/{n}, "
                   f"baseline {forgetting['baseline_passed']}/{n}, regressions: {regress}, "
                   f"McNemar p = {format_p(forgetting.get('mcnemar_p'))}")
    return out


def render_timings_markdown(timings: dict[str, Any]) -> str:
    """The pipeline's ``timings.json`` as a table of each stage's wall time."""
    out = ["| stage | wall time | |", "|---|---:|---|"]
    for stage in timings["stages"]:
        note = "reused" if stage.get("reused") else stage.get("detail") or ""
        out.append(f"| {stage['stage']} | {stage['seconds']:.0f} s | {note} |")
    out += [f"| total | {timings['total_s']:.0f} s | |", ""]
    return "\n".join(out) + "\n"


def render_comparison_markdown(documents: dict[str, dict[str, Any]],
                               timings: dict[str, Any] | None = None) -> str:
    """Verdicts side by side (e.g. ``{"base": …, "tuned": …}``) as Markdown, for a README.

    ``timings`` is the pipeline's ``timings.json``: a table of the wall time of each stage.
    """
    labels = list(documents)
    names = list(dict.fromkeys(n for d in documents.values() for n in d["harnesses"]))
    out: list[str] = render_timings_markdown(timings).splitlines() if timings else []
    out.append("| harness | gate | threshold | " + " | ".join(labels) + " |")
    out.append("|---|---|---:|" + "---|" * len(labels))
    for name in names:
        first = next(d["harnesses"][name] for d in documents.values() if name in d["harnesses"])
        cells = [harness_cell(documents[label]["harnesses"].get(name)) for label in labels]
        out.append(f"| {name} | {first['gate']} | {first['threshold']:.2f} | "
                   + " | ".join(cells) + " |")
    for label in labels:
        out += ["", document_summary_line(label, documents[label])]
    return "\n".join(out) + "\n"
