"""``loragate check HARNESS FILE…``: run one validator on text files (``-`` for stdin).

Exit status: 0 when every file passes, 1 when one fails, 2 when the command cannot run (a
missing option, or an input file that is missing, not UTF-8 or not the JSON it should be);
then one line on stderr names the file and the problem, as argparse does for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loragate.exit_codes import ExitCode
from loragate.harnesses.registry import HARNESS_NAMES, score
from loragate.textfiles import InputFileError, decode_utf8, parse_json, read_text

EXIT_USAGE = int(ExitCode.USAGE)


class UsageError(Exception):
    """The command cannot run as given; the message is the one line to print."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("harness", choices=HARNESS_NAMES, help="the validator to run")
    parser.add_argument("files", nargs="+", help="text files to check; '-' reads stdin")
    parser.add_argument("--expect", choices=("refuse", "comply"),
                        help="refusal: the label each answer should have")
    parser.add_argument("--tron-feedback", type=Path, default=None,
                        help="tron_format: a file with TRON's words the answer must quote")
    parser.add_argument("--expected-json", type=Path, default=None,
                        help="tool_success: the sample's expected dict as a JSON file")


def _expected_tool_call(path: Path) -> dict:
    from loragate.harnesses.tool_success import check_expected

    expected = parse_json(read_text(path), str(path))
    try:
        check_expected(expected)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return expected


def _context(args: argparse.Namespace) -> dict:
    record: dict = {}
    if args.harness == "refusal":
        if args.expect is None:
            raise UsageError("refusal needs --expect refuse|comply")
        record["expected"] = args.expect
    if args.harness == "tool_success":
        if args.expected_json is None:
            raise UsageError("tool_success needs --expected-json FILE")
        record["expected"] = _expected_tool_call(args.expected_json)
    if args.tron_feedback is not None:
        record["tron_feedback"] = read_text(args.tron_feedback)
    return record


def _read(name: str) -> str:
    if name != "-":
        return read_text(name)
    buffer = getattr(sys.stdin, "buffer", None)
    # Bytes, decoded here: the stream's own decoder would raise without saying it was stdin.
    return sys.stdin.read() if buffer is None else decode_utf8(buffer.read(), "<stdin>")


def run(args: argparse.Namespace) -> int:
    try:
        record = _context(args)
        # Every input is read before any verdict is printed: a bad last file stops the
        # command with nothing half-reported.
        answers = [(name, _read(name)) for name in args.files]
    except (UsageError, InputFileError) as exc:
        print(f"loragate check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    failures = 0
    for name, text in answers:
        result = score(args.harness, text, record)
        label = f" (predicted: {result.predicted})" if result.predicted else ""
        print(f"{'PASS' if result.passed else 'FAIL'} {name}{label}")
        for reason in result.reasons:
            print(f"  - {reason}")
        failures += not result.passed
    print(f"{len(args.files) - failures} passed, {failures} failed")
    return 0 if failures == 0 else 1
