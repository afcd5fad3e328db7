"""``loragate report``: re-render a verdict, re-verdict it with other thresholds, compare
two verdicts prompt by prompt (``--compare OLD NEW``), or chart many over time
(``--history V1 V2 …``).

Works from the verdict JSON alone: no model is loaded and nothing is generated again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loragate.exit_codes import ExitCode
from loragate.gating.document import VerdictDocument, VerdictFileError, reverdict
from loragate.gating.report import render_compare_html, render_html, render_text

EXIT_USAGE = int(ExitCode.USAGE)


class ReportInputError(SystemExit):
    """A verdict file or an option that cannot be used: one line on stderr, the usage status
    (4; the verdict's own statuses, 0/1/6, stay for the verdict)."""

    def __init__(self, message: str) -> None:
        print(message, file=sys.stderr)
        super().__init__(EXIT_USAGE)
        self.message = message

    def __str__(self) -> str:
        return self.message


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verdict", type=Path, nargs="?", default=None,
                        help="a verdict JSON written by the plugin")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("OLD", "NEW"), default=None,
                        help="compare two verdicts: per gate the change, the prompts that "
                             "flipped and an exact McNemar test; Markdown on stdout")
    parser.add_argument("--history", type=Path, nargs="+", metavar="VERDICT", default=None,
                        help="chart two or more verdicts over time (overall score, canaries, "
                             "each harness against its threshold): a table on stdout and an "
                             "HTML page with the charts (--html, default history.html beside "
                             "the newest verdict)")
    parser.add_argument("--inspect-log", type=Path, default=None, metavar="DIR",
                        help="also write the verdict as Inspect eval logs, one "
                             "DIR/<harness>.json per harness (`inspect view --log-dir DIR`; "
                             "needs loragate[inspect])")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="with --compare: write the Markdown here instead of stdout")
    parser.add_argument("--html", type=Path, default=None,
                        help="write the HTML report here (default: beside the JSON, .html; "
                             "with --compare only when given)")
    parser.add_argument("--threshold", action="append", default=[], metavar="HARNESS=VALUE",
                        help="re-verdict with this gate threshold (repeatable)")
    parser.add_argument("--overall-target", type=float, default=None,
                        help="re-verdict with this overall score target")
    parser.add_argument("--gate-confidence", choices=("point", "lower"), default=None)
    parser.add_argument("--output", type=Path, default=None,
                        help="write the re-verdicted JSON here (the input is never overwritten)")
    parser.add_argument("--rejudge", action="store_true",
                        help="re-judge the verdict's recorded answers with today's judges "
                             "(validators, canary checks) from --config's prompt and canary "
                             "files; no model is loaded, nothing is generated")


def parse_thresholds(values: list[str]) -> dict[str, float]:
    thresholds = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            if not sep:
                raise ValueError
            thresholds[name.strip()] = float(number)
            if not 0 <= thresholds[name.strip()] <= 1:
                raise ReportInputError(f"loragate report: --threshold {value!r}: a threshold "
                                       "is a pass rate or F1 between 0 and 1")
        except ValueError:
            raise ReportInputError(
                f"loragate report: --threshold wants HARNESS=VALUE, got {value!r}"
            ) from None
    return thresholds


def load_verdict(path: Path) -> VerdictDocument:
    """The verdict in ``path``, read through :class:`VerdictDocument` (fields a verdict written
    by an earlier loragate lacks get their defaults)."""
    try:
        return VerdictDocument.read(path)
    except VerdictFileError as exc:
        raise ReportInputError(f"loragate report: {exc}") from None


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return run_compare(args)
    if args.history:
        return run_history(args)
    if args.verdict is None:
        raise ReportInputError("loragate report: give a verdict JSON, or --compare OLD NEW")
    if args.markdown:
        raise ReportInputError("loragate report: --markdown goes with --compare")
    document = load_verdict(args.verdict)
    if args.output is not None and args.output.resolve() == args.verdict.resolve():
        raise ReportInputError("loragate report: --output names the input verdict; it is "
                               "never overwritten, give another path")
    if args.rejudge:
        document = rejudge_verdict(document, args)
    thresholds = parse_thresholds(args.threshold)
    if thresholds or args.overall_target is not None or args.gate_confidence:
        try:
            document = reverdict(document, thresholds=thresholds,
                                 overall_target=args.overall_target,
                                 confidence=args.gate_confidence)
        except KeyError as exc:
            raise ReportInputError(f"loragate report: {exc.args[0]}") from None
    changed = bool(thresholds or args.overall_target is not None or args.gate_confidence
                   or args.rejudge)
    if args.output and changed:
        write_report_file(args.output, document.to_json())
    # A new verdict's page goes beside it, never beside (and over) the recorded one's.
    beside = args.output if args.output and changed else args.verdict
    html_path = args.html or beside.with_suffix(".html")
    write_report_file(html_path, render_html(document.to_dict()))
    print(render_text(document.to_dict()))
    print(f"\nHTML report: {html_path}")
    if args.inspect_log is not None:
        write_inspect(document, args.inspect_log)
    return document.exit_status


def write_inspect(document: VerdictDocument, folder: Path) -> None:
    from loragate.gating.inspect_log import InspectUnavailable, write_inspect_logs

    try:
        written = write_inspect_logs(document, folder)
    except InspectUnavailable as exc:
        raise ReportInputError(f"loragate report --inspect-log: {exc}") from None
    except OSError as exc:
        raise ReportInputError(f"loragate report --inspect-log: cannot write {folder}: "
                               f"{exc.strerror or exc}") from None
    print(f"Inspect logs: {len(written)} in {folder} (inspect view --log-dir {folder})")


def rejudge_verdict(document: VerdictDocument, args: argparse.Namespace) -> VerdictDocument:
    from loragate.config import ConfigError, load_config
    from loragate.gating.rejudge import rejudge
    from loragate.harnesses.refusal_model import JudgeUnavailable

    try:
        settings = load_config(args.config, check_paths=False, gating_only=True)
        updated, report = rejudge(document, settings)
    except (ConfigError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        raise ReportInputError(f"loragate report --rejudge: {message}") from None
    except JudgeUnavailable as exc:
        # A judge that cannot run here decides nothing: the gate-error status, as in a session.
        print(f"loragate report --rejudge: a judge cannot run: {exc}", file=sys.stderr)
        raise SystemExit(int(ExitCode.GATE_ERROR)) from None
    print(f"loragate report: {report.summary()}")
    for flip in report.flips:
        print(f"  {flip}")
    return updated


def write_report_file(path: Path, text: str) -> None:
    """Write one output file whole (temp file + rename); a folder that is missing or cannot be
    written is a usage error naming it."""
    from loragate.artifacts import write_text_durably

    if not path.parent.is_dir():
        raise ReportInputError(f"loragate report: cannot write {path}: folder "
                               f"{path.parent} does not exist")
    try:
        write_text_durably(path, text)
    except OSError as exc:
        raise ReportInputError(f"loragate report: cannot write {path}: "
                               f"{exc.strerror or exc}") from None


def run_compare(args: argparse.Namespace) -> int:
    """Compare two verdicts; the exit status is 0 whatever changed (it is a report)."""
    from loragate.gating.compare import compare_verdicts, label_for, render_markdown

    if args.verdict is not None:
        raise ReportInputError(
            "loragate report: give either a verdict or --compare OLD NEW, not both")
    ignored = [flag for flag, given in (("--threshold", args.threshold),
                                        ("--overall-target", args.overall_target is not None),
                                        ("--gate-confidence", args.gate_confidence),
                                        ("--output", args.output)) if given]
    if ignored:
        raise ReportInputError(f"loragate report: {', '.join(ignored)} cannot go with --compare "
                         "(re-verdict each file first, with --output)")
    old_path, new_path = args.compare
    old_label, new_label = label_for(old_path), label_for(new_path)
    if old_label == new_label:
        old_label, new_label = str(old_path), str(new_path)
    comparison = compare_verdicts(load_verdict(old_path).to_dict(),
                                  load_verdict(new_path).to_dict(),
                                  old_label=old_label, new_label=new_label)
    markdown = render_markdown(comparison)
    if args.markdown:
        args.markdown.write_text(markdown, encoding="utf-8")
        print(f"comparison (Markdown): {args.markdown}")
    else:
        print(markdown, end="")
    if args.html:
        args.html.write_text(render_compare_html(comparison), encoding="utf-8")
        print(f"comparison (HTML): {args.html}")
    return 0


def run_history(args: argparse.Namespace) -> int:
    from loragate.gating.history import (
        history_points,
        render_history_html,
        render_history_text,
        verdict_label,
    )

    if args.verdict is not None:
        raise ReportInputError("loragate report: --history takes the verdicts itself; give "
                               "them after it, not before")
    if len(args.history) < 2:
        raise ReportInputError("loragate report --history: give two verdicts or more")
    taken: set[str] = set()
    paths = {verdict_label(path, taken): path for path in args.history}
    points = history_points([(label, load_verdict(path)) for label, path in paths.items()])
    html_path = args.html or paths[points[-1].label].parent / "history.html"
    write_report_file(html_path, render_history_html(points))
    print(render_history_text(points))
    print(f"\nHTML history: {html_path}")
    return 0
