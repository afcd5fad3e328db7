"""``loragate check HARNESS FILE…``: run one harness's validator on text files (``-`` for
stdin). The harness is a built-in or, with ``--config`` (default ``./loragate.json`` when
there is one), one of the project's own, resolved through the same spec the gate uses.

Exit status: 0 when every file passes, 1 when one fails, 4 when the command cannot run (an
unknown harness, a missing option, a config that does not load, or an input file that is
missing, not UTF-8 or not the JSON it should be); then one line on stderr names the file
and the problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from loragate.exit_codes import ExitCode
from loragate.harnesses.registry import (
    BUILTINS,
    Harness,
    HarnessError,
    run_validator,
)
from loragate.textfiles import InputFileError, decode_utf8, parse_json, read_text

EXIT_USAGE = int(ExitCode.USAGE)
PROJECT_CONFIG = Path("loragate.json")


class UsageError(Exception):
    """The command cannot run as given; the message is the one line to print."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("harness", help="the harness whose validator runs (a built-in, or "
                        "the config's own; --list shows them)")
    parser.add_argument("files", nargs="+", help="text files to check; '-' reads stdin")
    parser.add_argument("--list", action=_ListHarnesses,
                        help="list the harnesses (built in, and the config's) and exit")
    parser.add_argument("--config", type=Path, default=None,
                        help="the project's loragate config, for its own harnesses "
                        f"(default: ./{PROJECT_CONFIG} when it exists)")
    parser.add_argument("--record", type=Path, default=None,
                        help="a JSON file with the prompt record's fields the validator "
                        "reads (a project's harness)")
    parser.add_argument("--expect", default=None,
                        help="a classifier harness (refusal: refuse|comply): the label each "
                        "answer should have")
    parser.add_argument("--tron-feedback", type=Path, default=None,
                        help="tron_format: a file with TRON's words the answer must quote")
    parser.add_argument("--expected-json", type=Path, default=None,
                        help="tool_success: the sample's expected dict as a JSON file")


class _ListHarnesses(argparse.Action):
    """``--list``: the harness and the files are then not needed. (Optional positionals
    instead would stop matching at the first option between them: `check refusal --expect
    refuse a.txt`.)"""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(nargs=0, default=False, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, True)
        for action in parser._actions:
            if action.dest in ("harness", "files"):
                action.required = False


def harness_specs(config: Path | None) -> tuple[dict[str, Harness], Any]:
    """The built-ins, then the config's harnesses over them (the config's settings win), and
    the config they come from (the built-in defaults without one)."""
    from loragate.config import ConfigError, LoragateConfig, load_config

    path = config if config is not None else (PROJECT_CONFIG if PROJECT_CONFIG.is_file()
                                              else None)
    specs: dict[str, Harness] = dict(BUILTINS)
    if path is None:
        return specs, LoragateConfig()
    try:
        settings = load_config(path, check_paths=False, gating_only=True)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    specs.update(settings.gates.specs())
    return specs, settings


def validator_for(spec: Harness, settings: Any) -> Any:
    """The harness's validator, or its judge model opened with the config's backend settings;
    a judge that cannot be opened is a usage error naming it."""
    from loragate.backends.faults import BackendError
    from loragate.backends.spec import SpecError
    from loragate.judges import validator_of

    if spec.judge is None:
        return validator_of(spec, settings)
    try:
        return validator_of(spec, settings)
    except (SpecError, OSError, BackendError) as exc:
        raise UsageError(f"{spec.name}: judge {spec.judge.model}: {exc}") from None


def _listing(specs: dict[str, Harness]) -> str:
    rows = []
    for name, spec in specs.items():
        rule = f"{spec.gate} gate, {spec.metric} >= {spec.threshold:g}"
        origin = "built in" if spec.builtin else spec.validator
        rows.append(f"{name:20} {rule:28} {origin}" + (f"\n  {spec.description}"
                                                       if spec.description else ""))
    return "\n".join(rows)


def _expected_tool_call(path: Path) -> dict:
    from loragate.harnesses.tool_success import check_expected

    expected = parse_json(read_text(path), str(path))
    try:
        check_expected(expected)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None
    return expected


def _context(args: argparse.Namespace, spec: Harness) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if args.record is not None:
        record = parse_json(read_text(args.record), str(args.record))
        if not isinstance(record, dict):
            raise UsageError(f"{args.record}: a record is a JSON object, not "
                             f"{type(record).__name__}")
    if spec.metric == "f1":
        if args.expect is None and "expected" not in record:
            raise UsageError(f"{spec.name} needs --expect {'|'.join(spec.labels)}")
        if args.expect is not None:
            if spec.labels and args.expect not in spec.labels:
                raise UsageError(f"--expect {args.expect!r}: {spec.name}'s labels are "
                                 f"{', '.join(spec.labels)}")
            record["expected"] = args.expect
    if spec.builtin and spec.name == "tool_success":
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


def _harness(args: argparse.Namespace, specs: dict[str, Harness]) -> Harness:
    if args.harness not in specs:
        raise UsageError(f"unknown harness {args.harness!r}; known: {', '.join(specs)} "
                         "(a project's own: --config)")
    return specs[args.harness]


def run(args: argparse.Namespace) -> int:
    try:
        specs, settings = harness_specs(args.config)
        if args.list:
            print(_listing(specs))
            return 0
        spec = _harness(args, specs)
        validator = validator_for(spec, settings)
        record = _context(args, spec)
        # Every input is read before any verdict is printed: a bad last file stops the
        # command with nothing half-reported.
        answers = [(name, _read(name)) for name in args.files]
    except (UsageError, InputFileError, HarnessError) as exc:
        print(f"loragate check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    failures = 0
    for name, text in answers:
        result = run_validator(validator, text, record)
        label = f" (predicted: {result.predicted})" if result.predicted else ""
        print(f"{'PASS' if result.passed else 'FAIL'} {name}{label}")
        for reason in result.reasons:
            print(f"  - {reason}")
        failures += not result.passed
    print(f"{len(args.files) - failures} passed, {failures} failed")
    return 0 if failures == 0 else 1
