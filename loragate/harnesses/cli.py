"""``loragate check HARNESS FILE…``: run one validator on text files (``-`` for stdin)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loragate.harnesses.registry import HARNESS_NAMES, score


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("harness", choices=HARNESS_NAMES, help="the validator to run")
    parser.add_argument("files", nargs="+", help="text files to check; '-' reads stdin")
    parser.add_argument("--expect", choices=("refuse", "comply"),
                        help="refusal: the label each answer should have")
    parser.add_argument("--tron-feedback", type=Path, default=None,
                        help="tron_format: a file with TRON's words the answer must quote")
    parser.add_argument("--expected-json", type=Path, default=None,
                        help="tool_success: the sample's expected dict as a JSON file")


def _context(args: argparse.Namespace) -> dict:
    record: dict = {}
    if args.harness == "refusal":
        if args.expect is None:
            raise SystemExit("loragate check: refusal needs --expect refuse|comply")
        record["expected"] = args.expect
    if args.harness == "tool_success":
        if args.expected_json is None:
            raise SystemExit("loragate check: tool_success needs --expected-json FILE")
        record["expected"] = json.loads(args.expected_json.read_text(encoding="utf-8"))
    if args.tron_feedback is not None:
        record["tron_feedback"] = args.tron_feedback.read_text(encoding="utf-8")
    return record


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    path = Path(name)
    if not path.is_file():
        raise SystemExit(f"loragate check: {name}: no such file")
    return path.read_text(encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    record = _context(args)
    failures = 0
    for name in args.files:
        result = score(args.harness, _read(name), record)
        label = f" (predicted: {result.predicted})" if result.predicted else ""
        print(f"{'PASS' if result.passed else 'FAIL'} {name}{label}")
        for reason in result.reasons:
            print(f"  - {reason}")
        failures += not result.passed
    print(f"{len(args.files) - failures} passed, {failures} failed")
    return 0 if failures == 0 else 1
