"""``loragate report``: re-render a verdict, or re-verdict it with other thresholds.

Works from the verdict JSON alone: no model is loaded and nothing is generated again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from loragate.gating.report import render_html, render_text
from loragate.gating.verdict import SCHEMA, reverdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verdict", type=Path, help="a verdict JSON written by the plugin")
    parser.add_argument("--html", type=Path, default=None,
                        help="write the HTML report here (default: beside the JSON, .html)")
    parser.add_argument("--threshold", action="append", default=[], metavar="HARNESS=VALUE",
                        help="re-verdict with this gate threshold (repeatable)")
    parser.add_argument("--overall-target", type=float, default=None,
                        help="re-verdict with this overall score target")
    parser.add_argument("--gate-confidence", choices=("point", "lower"), default=None)
    parser.add_argument("--output", type=Path, default=None,
                        help="write the re-verdicted JSON here (the input is never overwritten)")


def parse_thresholds(values: list[str]) -> dict[str, float]:
    thresholds = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            if not sep:
                raise ValueError
            thresholds[name.strip()] = float(number)
        except ValueError:
            raise SystemExit(
                f"loragate report: --threshold wants HARNESS=VALUE, got {value!r}"
            ) from None
    return thresholds


def load_verdict(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"loragate report: {path}: no such verdict file")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SystemExit(f"loragate report: {path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if document.get("schema") != SCHEMA:
        raise SystemExit(f"loragate report: {path}: field 'schema' is "
                         f"{document.get('schema')!r}, expected {SCHEMA!r}")
    return document


def run(args: argparse.Namespace) -> int:
    document = load_verdict(args.verdict)
    thresholds = parse_thresholds(args.threshold)
    if thresholds or args.overall_target is not None or args.gate_confidence:
        try:
            document = reverdict(document, thresholds=thresholds,
                                 overall_target=args.overall_target,
                                 confidence=args.gate_confidence)
        except KeyError as exc:
            raise SystemExit(f"loragate report: {exc.args[0]}") from None
        if args.output:
            args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    html_path = args.html or args.verdict.with_suffix(".html")
    html_path.write_text(render_html(document), encoding="utf-8")
    print(render_text(document))
    print(f"\nHTML report: {html_path}")
    return 0 if document["verdict"] == "cleared" else 1
