"""``loragate gate`` and ``loragate pipeline``: the stages in order, then the verdicts.

The pipeline builds the untuned base's GGUF (the baseline, and with ``data_args.replay_ratio``
the model that answers the replay set), trains (reuses, or resumes a partly trained) adapter
within ``training.time_budget``, packages it (or reuses the package), then runs pytest twice
in a subprocess: the Step 1/2
checks, the six harnesses, the canaries and the smoke tests against the tuned model (verdict
``reports/verdict-tuned.json``, copied to ``reports/verdict.json`` with ``report.html``), and
the same gates against the untuned base (``reports/verdict-base.json``). Every stage reuses its
artifact when its inputs are unchanged, and the response cache makes a re-run re-score
without generating.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loragate.artifacts import InputsStamp, json_digest, model_folder_fingerprint, reusable
from loragate.config import DEFAULT_CONFIG, LoragateConfig, load_config, time_budget_argument
from loragate.exit_codes import ExitCode
from loragate.gating.report import (
    render_compare_html,
    render_comparison_markdown,
    render_text,
    render_timings_markdown,
)
from loragate.gating.starter import CONFIG_NAME as STARTER_CONFIG

if TYPE_CHECKING:
    from loragate.gating.document import VerdictDocument
    from loragate.packaging.pipeline import PackageResult
    from loragate.training.stats import TrainingStats

GATE_SUITES = ("gates", "canaries")
BASE_STAMP = "base.inputs.json"
GATE_SELECTION = "ship_gate or quality_gate or canary"


@dataclass
class StageTiming:
    stage: str
    seconds: float
    reused: bool = False
    detail: str = ""


@dataclass
class PipelineReport:
    timings: list[StageTiming] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)
    # How much of the training plan the adapter has had (training_stats.json's figures).
    training: dict[str, Any] | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[StageTiming]:
        timing = StageTiming(stage=name, seconds=0.0)
        print(f"loragate: stage {name} ...", flush=True)
        start = time.perf_counter()
        try:
            yield timing
        finally:
            timing.seconds = round(time.perf_counter() - start, 1)
            self.timings.append(timing)
            state = "reused" if timing.reused else "done"
            print(f"loragate: stage {name} {state} in {timing.seconds:.1f} s "
                  f"{timing.detail}".rstrip(), flush=True)


# ---------------------------------------------------------------------------------------------
# pytest runs


def pytest_command(config: LoragateConfig, *, model: str | Sequence[str], suites: Sequence[str],
                   markers: str,
                   verdict_json: Path, verdict_html: Path | None = None,
                   baseline: str | None = None, extra: Sequence[str] = ()) -> list[str]:
    # Options with '=': given as two words, a path value would make pytest take it for the
    # project to run (it reads its ini file before loragate's options are known).
    models = [model] if isinstance(model, str) else list(model)
    command = [sys.executable, "-m", "pytest", *suites, "-m", markers, "-q", "-rfE",
               "-p", "no:cacheprovider", *(f"--model={m}" for m in models),
               f"--verdict-json={verdict_json}"]
    if config.source_path is not None:
        command.append(f"--loragate-config={config.source_path}")
    if baseline:
        command.append(f"--baseline={baseline}")
    if verdict_html is not None:
        command.append(f"--verdict-html={verdict_html}")
    return command + list(extra)


def run_pytest(command: list[str], config: LoragateConfig) -> int:
    print("loragate: " + " ".join(command[1:]), flush=True)
    return run_child(command, cwd=config.root)


def run_child(command: list[str], cwd: Path | None = None) -> int:
    """Run ``command`` and return its status; a SIGTERM to loragate (``timeout 600 loragate
    gate``, a CI job cancelled) is passed on to it, and loragate then ends 128 + 15, so no gate
    run is left generating behind a command that has stopped. On any other way out the child
    is stopped too."""
    import signal
    import threading

    process = subprocess.Popen(command, cwd=cwd)
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        process.send_signal(signum)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, forward) if in_main else None
    try:
        status = process.wait()
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    return 128 + received[0] if received else status


def read_verdict(path: Path) -> VerdictDocument | None:
    """The verdict a pytest run wrote, read through its model; None when none was written."""
    from loragate.gating.document import VerdictDocument

    if not path.is_file():
        return None
    return VerdictDocument.read(path)


# ---------------------------------------------------------------------------------------------
# loragate gate


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    from loragate.backends.spec import spec_help

    parser.add_argument("--model", required=True, action="append", metavar="[NAME=]SPEC",
                        help=spec_help() + "; several: each candidate judged against the "
                        "baseline, one verdict each and a table (docs/verdict.md)")
    parser.add_argument("--baseline", default=None, metavar="SPEC",
                        help="baseline for the canaries (without it the canaries are skipped)")
    parser.add_argument("--verdict-json", type=Path, default=None,
                        help="default: <reports.dir>/verdict.json")
    parser.add_argument("--verdict-html", type=Path, default=None,
                        help="default: <reports.dir>/report.html")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER,
                        help="after --: more pytest options (e.g. -- --samples 20 -n 2)")


def gate_config_path(given: str) -> Path:
    """The config ``loragate gate`` uses: the one given, else (when the default does not exist
    here) the starter project's ``loragate.json`` in the current folder."""
    path = Path(given)
    if not path.is_file() and given == str(DEFAULT_CONFIG):
        starter = Path(STARTER_CONFIG)
        if starter.is_file():
            return starter
    return path


def run_gate(args: argparse.Namespace) -> int:
    config = load_config(gate_config_path(args.config), check_paths=False, gating_only=True)
    reports = config.reports.dir
    verdict_json = args.verdict_json or reports / "verdict.json"
    verdict_html = args.verdict_html or reports / "report.html"
    extra = [a for a in args.pytest_args if a != "--"]
    # The project's own layout: its gate suites where it has them, else the plugin's items.
    suites = [name for name in GATE_SUITES if (config.root / name).is_dir()]
    command = pytest_command(config, model=args.model, baseline=args.baseline,
                             suites=suites, markers=GATE_SELECTION,
                             verdict_json=verdict_json, verdict_html=verdict_html, extra=extra)
    return run_pytest(command, config)


# ---------------------------------------------------------------------------------------------
# loragate train: the training stage's command, with the replay set built from the base GGUF
# here, where the stages meet (training itself never imports packaging).


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from loragate.training import cli as training_cli

    training_cli.add_arguments(parser)


def run_train(args: argparse.Namespace) -> int:
    from loragate.training import cli as training_cli

    return training_cli.run(args, build_replay=build_replay)


def build_replay(config: LoragateConfig, *, force: bool = False) -> None:
    """The replay set, answered by the base GGUF (built first when missing); reused when
    the base and the prompts are unchanged."""
    base_gguf = base_gguf_stage(config, force=force, timing=StageTiming("base-gguf", 0.0))
    timing = StageTiming("replay", 0.0)
    replay_stage(config, base_gguf, force=force, timing=timing)
    print(f"loragate: replay set {'reused' if timing.reused else 'built'} {timing.detail}",
          file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# loragate pipeline


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="rebuild every artifact even when its inputs are unchanged")
    parser.add_argument("--skip-base-verdict", action="store_true",
                        help="do not gate the untuned base model")
    parser.add_argument("--no-cache", action="store_true",
                        help="generate every answer again (ignore the response cache)")
    parser.add_argument("--time-budget", type=time_budget_argument, default=None,
                        metavar="DURATION",
                        help="stop training at DURATION (e.g. 45m, 2h; 'none': no limit) with "
                             "a checkpoint, then package and gate the partly trained adapter; "
                             "the next run resumes it (default: training.time_budget)")
    parser.add_argument("--record", metavar="NAME", default=None,
                        help="keep this run's verdicts, comparison, timings and training stats "
                             "under <reports.dir>/recorded/NAME/ (a run writes only "
                             "<reports.dir>/ otherwise, which git ignores)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER,
                        help="after --: more pytest options for the verdict runs")


RECORDED_FILES = ("verdict-tuned.json", "verdict-base.json", "comparison.md", "comparison.html",
                  "timings.json")


def record_run(reports: Path, name: str, training_stats: Path | None) -> Path:
    """Copy the run's outputs into ``reports/recorded/NAME/``: a recording is made on
    purpose, never by an ordinary run."""
    target = reports / "recorded" / name
    target.mkdir(parents=True, exist_ok=True)
    for file_name in RECORDED_FILES:
        if (reports / file_name).is_file():
            shutil.copyfile(reports / file_name, target / file_name)
    if training_stats is not None and training_stats.is_file():
        shutil.copyfile(training_stats, target / "training_stats.json")
    return target


def verdict_exit_status(tuned: VerdictDocument | None, pytest_status: int) -> int:
    """The pipeline's status: the tuned verdict's (0/1/6); with none written, pytest's own
    usage (4) or nothing-collected (5) status, else "the gate could not run" (6)."""
    if tuned is not None:
        return tuned.exit_status
    if pytest_status in (ExitCode.USAGE, ExitCode.NOTHING_TO_GATE):
        return int(pytest_status)
    return int(ExitCode.GATE_ERROR)


def run_pipeline(args: argparse.Namespace) -> int:
    from loragate.packaging.pipeline import check_modelfile_system
    from loragate.training.replay import replay_enabled

    config = load_config(args.config)
    check_modelfile_system(config)  # before training: packaging would refuse it hours later
    if getattr(args, "time_budget", None) is not None:
        config.training.time_budget = None if args.time_budget == "none" else args.time_budget
    report = PipelineReport()
    reports = config.reports.dir
    reports.mkdir(parents=True, exist_ok=True)
    extra = [a for a in args.pytest_args if a != "--"]
    if args.no_cache:
        extra.append("--no-cache")

    # The base GGUF comes first: it answers the replay set that training mixes in.
    with report.stage("base-gguf") as timing:
        base_gguf = base_gguf_stage(config, force=args.force, timing=timing)
    if replay_enabled(config):
        with report.stage("replay") as timing:
            replay_stage(config, base_gguf, force=args.force, timing=timing)
    with report.stage("train") as timing:
        adapter_dir = train_stage(config, force=args.force, timing=timing, report=report)
    with report.stage("package") as timing:
        package = package_stage(config, adapter_dir, force=args.force, timing=timing)

    # The Step 1/2 suites find the adapter and the package through the config that every
    # pytest run below is given (--loragate-config).
    tuned_spec, base_spec = f"gguf:{package.primary_gguf}", f"gguf:{base_gguf}"
    tuned_json = reports / "verdict-tuned.json"
    # An earlier run's verdicts must never stand in for this run's.
    for stale in ("verdict-tuned.json", "verdict-base.json", "verdict.json"):
        (reports / stale).unlink(missing_ok=True)
    with report.stage("verdict-tuned") as timing:
        command = pytest_command(
            config, model=tuned_spec, baseline=base_spec,
            suites=("training", "packaging", *GATE_SUITES, "smoke"),
            markers=f"stage or smoke or {GATE_SELECTION}",
            verdict_json=tuned_json, verdict_html=reports / "report.html", extra=extra)
        tuned_status = run_pytest(command, config)
        timing.detail = _verdict_word(tuned_json)
    if not args.skip_base_verdict:
        with report.stage("verdict-base") as timing:
            # Every prompt is judged (no --fail-fast-gates) so the base-versus-tuned comparison
            # can match each one and count its flips.
            command = pytest_command(
                config, model=base_spec, baseline=base_spec,
                suites=(*GATE_SUITES, "smoke"), markers=f"smoke or {GATE_SELECTION}",
                verdict_json=reports / "verdict-base.json",
                verdict_html=reports / "report-base.html", extra=extra)
            run_pytest(command, config)
            timing.detail = _verdict_word(reports / "verdict-base.json")

    tuned = read_verdict(tuned_json)
    if tuned is not None:
        shutil.copyfile(tuned_json, reports / "verdict.json")
    write_timings(reports / "timings.json", report)
    base = read_verdict(reports / "verdict-base.json")
    write_comparison(reports / "comparison.md", base, tuned, timings_payload(report))
    print_summary(report, tuned, base)
    if getattr(args, "record", None):
        kept = record_run(reports, args.record, config.output_dir / "training_stats.json"
                          if config.output_dir else None)
        print(f"loragate: recorded this run in {kept}")
    if tuned is None:
        print(f"loragate: the tuned model's verdict was not written (pytest exit status "
              f"{tuned_status})", file=sys.stderr)
    return verdict_exit_status(tuned, tuned_status)


def _verdict_word(path: Path) -> str:
    document = read_verdict(path)
    return f"({document.verdict})" if document else "(no verdict written)"


def replay_stage(config: LoragateConfig, base_gguf: Path, *, force: bool,
                 timing: StageTiming) -> Path:
    """The replay set: the base GGUF's own answers to the replay prompts, rebuilt only when
    the base's digest, the prompts, the system prompt or the answer cap changed."""
    from loragate.training.replay import build_replay_set
    from loragate.training.trainer import protected_prompts

    built = build_replay_set(config, base_gguf, protected_prompts(config), force=force)
    timing.reused = built.reused
    timing.detail = (f"({built.usable} of {built.answers} answers usable, "
                     f"base {built.base_digest[:12]})")
    return built.path


def train_stage(config: LoragateConfig, *, force: bool, timing: StageTiming,
                report: PipelineReport | None = None) -> Path:
    from loragate.training.stats import describe_progress, partial_note
    from loragate.training.trainer import train

    outcome = train(config, force=force)
    stats = outcome.stats
    timing.reused = outcome.skipped
    loss, base_loss = stats.eval_loss, stats.base_eval_loss
    parts = [describe_progress(stats)] if stats.planned_steps else []
    if loss is not None and base_loss is not None:
        parts.append(f"eval loss {base_loss:.3f} -> {loss:.3f}")
    complete = stats.plan_complete
    if not complete:
        parts.append("partly trained")
    timing.detail = f"({', '.join(parts)})" if parts else ""
    if report is not None:
        report.training = training_progress(stats)
    if not complete:
        # Allowed on purpose: the verdict of a partly trained adapter shows how far the plan
        # has got; its Step 1 check test_run_completed blocks it until the plan is done.
        print(f"loragate: {partial_note(stats)}", flush=True)
        print("loragate: packaging and gating the partly trained adapter anyway; its verdict "
              "stays blocked by training/test_step1_checks.py::test_run_completed until the "
              "plan is done", flush=True)
    return adapter_dir_of(outcome.output_dir)


def training_progress(stats: TrainingStats) -> dict[str, Any]:
    """The plan figures of training_stats.json that the summary shows."""
    from loragate.training.stats import describe_progress

    return {"complete": stats.plan_complete, "text": describe_progress(stats),
            "completed_fraction": stats.completed_fraction,
            "time_budget_s": stats.time_budget_s}


def adapter_dir_of(output_dir: Path) -> Path:
    """The folder holding ``adapter_config.json``: the output dir or its ``adapter/``."""
    for candidate in (output_dir / "adapter", output_dir):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise FileNotFoundError(f"{output_dir}: no adapter_config.json (training did not finish?)")


def package_stage(config: LoragateConfig, adapter_dir: Path, *, force: bool,
                  timing: StageTiming) -> PackageResult:
    from loragate.packaging.pipeline import package

    result = package(config, adapter_dir, force=force, ollama=True)
    timing.reused = result.reused
    gguf = result.primary_gguf
    timing.detail = f"({gguf.name}, {gguf.stat().st_size / 2**20:.0f} MiB)"
    if result.ollama_message:
        print(f"loragate: {result.ollama_message}")
    return result


def base_gguf_stage(config: LoragateConfig, *, force: bool, timing: StageTiming) -> Path:
    """The untuned base as a GGUF of the same quant type: the baseline and the control.

    Rebuilt only when the base model folder changed (its fingerprint is stored beside it).
    """
    from loragate.base_model import resolve_base_model
    from loragate.packaging.llamacpp import convert_hf_to_gguf
    from loragate.packaging.quantize import quantize_gguf

    base_dir = resolve_base_model(config)
    quant = config.packaging.quant_types[0]
    out_dir = Path(config.output_dir) / "base-gguf"
    target = out_dir / f"base.{quant}.gguf"
    stamp_path = out_dir / BASE_STAMP
    fingerprint = json_digest({"base": model_folder_fingerprint(base_dir), "quant": quant,
                               "outtype": config.packaging.outtype})
    stamp = InputsStamp.read(stamp_path)
    if not force and reusable(stamp and stamp.inputs_hash, fingerprint, [target]):
        timing.reused = True
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    f16 = convert_hf_to_gguf(base_dir, out_dir / f"base.{config.packaging.outtype}.gguf",
                             config.packaging.outtype)
    if quant != config.packaging.outtype:
        quantize_gguf(f16, target, quant)
        f16.unlink()
    InputsStamp(inputs_hash=fingerprint).write(stamp_path)
    return target if target.is_file() else f16


def timings_payload(report: PipelineReport) -> dict[str, Any]:
    payload: dict[str, Any] = {"stages": [asdict(t) for t in report.timings],
                               "total_s": round(sum(t.seconds for t in report.timings), 1)}
    if report.training is not None:
        payload["training"] = report.training
    return payload


def write_timings(path: Path, report: PipelineReport) -> None:
    path.write_text(json.dumps(timings_payload(report), indent=2) + "\n", encoding="utf-8")


def write_comparison(path: Path, base: VerdictDocument | None, tuned: VerdictDocument | None,
                     timings: dict[str, Any]) -> None:
    """The README's comparison: the stage times, then base against tuned prompt by prompt
    (the flips and McNemar p per gate; :mod:`loragate.gating.compare`), also as HTML beside
    it. With one verdict only, its gate table."""
    from loragate.gating.compare import compare_verdicts, render_markdown

    documents = {label: doc.to_dict() for label, doc in (("base", base), ("tuned", tuned))
                 if doc}
    if not documents:
        return
    if len(documents) < 2:
        path.write_text(render_comparison_markdown(documents, timings), encoding="utf-8")
        return
    comparison = compare_verdicts(documents["base"], documents["tuned"], old_label="base",
                                  new_label="tuned")
    path.write_text(render_timings_markdown(timings) + render_markdown(comparison),
                    encoding="utf-8")
    path.with_suffix(".html").write_text(render_compare_html(comparison), encoding="utf-8")


def print_summary(report: PipelineReport, tuned: VerdictDocument | None,
                  base: VerdictDocument | None,
                  out: Callable[[str], None] = print) -> None:
    out("")
    out("=" * 78)
    out("loragate pipeline summary")
    for timing in report.timings:
        reused = " (reused)" if timing.reused else ""
        out(f"  {timing.stage:<15} {timing.seconds:>8.1f} s{reused}")
    if report.training is not None:
        progress = report.training
        state = "complete" if progress["complete"] else \
            "PARTLY TRAINED: run the pipeline again to resume"
        out(f"training plan: {progress['text']} ({state})")
    if base is not None:
        out("")
        out(f"untuned base: {base.verdict.upper()} (overall {base.overall.score:.1f})")
    if tuned is not None:
        out("")
        out("tuned model:")
        out(render_text(tuned.to_dict()))
    out("=" * 78)
