"""The verdict's figures as text, one rule each: p-values, a gate's cell, the likelihood
probes, a run's summary line. Shared by the terminal report, the HTML page (as Jinja filters)
and the Markdown comparisons, so the same figure reads the same everywhere."""

from __future__ import annotations

from typing import Any


def format_p(value: float | None) -> str:
    """A p-value in three significant figures; ``—`` where there was nothing to test."""
    return "—" if value is None else f"{value:.3g}"


def harness_cell(harness: dict[str, Any] | None) -> str:
    """``7/10 FAIL`` or ``F1 0.70 pass``: one run's figure for a gate; ``—`` where the run
    has no such gate, ``F1 —`` where nothing was judged."""
    if harness is None:
        return "—"
    if harness["metric"] == "f1":
        figure = "F1 —" if harness.get("f1") is None else f"F1 {harness['f1']:.2f}"
    else:
        figure = f"{harness['passed']}/{harness['n']}"
    return f"{figure} {'pass' if harness['gate_passed'] else 'FAIL'}"


def probe_line(probes: dict[str, Any] | None) -> str:
    """The likelihood probes, model against baseline, in one line."""
    if not probes:
        return ""
    if not probes.get("run"):
        return f"likelihood probes: {probes.get('note') or 'not run'}"
    n = probes["n"]
    return (f"likelihood probes: model ranks {probes['model_right']}/{n} pairs right (mean "
            f"margin {probes['mean_margin_model']:+.2f}), baseline {probes['baseline_right']}/"
            f"{n} ({probes['mean_margin_baseline']:+.2f}); paired shift "
            f"{probes['mean_shift']:+.2f}, Wilcoxon p = {format_p(probes.get('wilcoxon_p'))}")


def failed_ids(section: dict[str, Any]) -> list[str]:
    """The canaries the model failed; verdicts written before the canary rule had two parts
    carry no "failed" list, so it is read off their items."""
    if "failed" in section:
        return section["failed"]
    return sorted(i["canary_id"] for i in section.get("items", []) if not i["model_passed"])


def run_summary(document: dict[str, Any]) -> dict[str, Any]:
    latency = (document.get("metrics") or {}).get("latency") or {}
    return {
        "verdict": document["verdict"],
        "overall": document["overall"]["score"],
        "target": document["overall"]["target"],
        "model": (document.get("model") or {}).get("spec"),
        "inputs_hash": document.get("inputs_hash"),
        "canaries": _canary_summary(document.get("canaries")),
        "forgetting": _canary_summary(document.get("forgetting")),
        "latency": {k: v for k, v in latency.items() if not isinstance(v, dict)},
    }


def _canary_summary(section: dict[str, Any] | None) -> dict[str, Any] | None:
    if not section:
        return None
    return {"n": section["n"], "model_passed": section["model_passed"],
            "baseline_passed": section["baseline_passed"], "failed": failed_ids(section),
            "regressions": section["regressions"], "probes": section.get("probes")}


def summary_line(label: str, run: dict[str, Any]) -> str:
    """One run in one line: verdict, overall score, canaries (failed and regressed, the two
    parts of the plan's rule), the forgetting probe, latency."""
    line = f"**{label}**: {run['verdict'].upper()}, overall {run['overall']:.1f}"
    canaries = run["canaries"]
    if canaries:
        line += (f"; canaries {canaries['model_passed']}/{canaries['n']} "
                 f"(baseline {canaries['baseline_passed']}/{canaries['n']}, "
                 f"failed: {', '.join(canaries['failed']) or 'none'}, "
                 f"regressions: {', '.join(canaries['regressions']) or 'none'})")
        if canaries.get("probes"):
            line += f"; {probe_line(canaries['probes'])}"
    forgetting = run.get("forgetting")
    if forgetting:
        line += (f"; forgetting probe {forgetting['model_passed']}/{forgetting['n']} "
                 f"(baseline {forgetting['baseline_passed']}/{forgetting['n']}, "
                 f"regressions: {', '.join(forgetting['regressions']) or 'none'})")
    if run["latency"]:
        line += "; latency " + ", ".join(f"{k} {v}" for k, v in run["latency"].items())
    return line


def document_summary_line(label: str, document: dict[str, Any]) -> str:
    """:func:`summary_line` of a whole verdict document."""
    return summary_line(label, run_summary(document))
