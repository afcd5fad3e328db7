"""``loragate train``: Step 1, train the LoRA adapter from the config's JSONL data.

Skips the work when the output folder already holds an adapter trained to the end of its plan
from the same inputs (config + data + base model), unless ``--force``; resumes a partly trained
one (a run stopped at ``--time-budget`` / ``training.time_budget``, or killed) from its last
checkpoint. Runs unchanged under ``torchrun``:
``python -m torch.distributed.run --nproc_per_node 2 -m loragate.training.cli --config ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from loragate.config import DEFAULT_CONFIG, ConfigError, load_config, time_budget_argument
from loragate.exit_codes import ExitCode

# loragate.exit_codes.COMMAND_STATUSES["loragate train"] says what each means.
EXIT_OK = ExitCode.CLEARED
EXIT_DATA = ExitCode.USAGE
EXIT_DIVERGED = ExitCode.BLOCKED
EXIT_SETUP = ExitCode.GATE_ERROR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="train from scratch even if an up-to-date adapter exists "
                             "(drops earlier checkpoints)")
    parser.add_argument("--output-dir", type=Path, default=None, metavar="DIR",
                        help="override the config's output_dir")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N",
                        help="plan N optimizer steps instead of the config's (the schedule "
                             "follows them; a quick check of the code path)")
    parser.add_argument("--check-data", action="store_true",
                        help="only load, validate and leak-check the data, then exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="load the config and the data, print the plan (samples, steps, "
                             "epochs, schedule, time budget, where a run would resume), then "
                             "exit without training")
    parser.add_argument("--time-budget", type=time_budget_argument, default=None,
                        metavar="DURATION",
                        help="stop this run at DURATION (e.g. 45m, 2h, 1h30m, 90s; 'none': no "
                             "limit) with a checkpoint; running again resumes it "
                             "(default: training.time_budget)")


# Builds the replay set (the base GGUF's own answers) when it is missing or stale. Injected by
# `loragate train` (loragate.pipeline), which owns the base GGUF; training never imports
# packaging, so without one (python -m loragate.training.cli, under torchrun) the set must
# exist already and a missing one is a data error naming the command that builds it.
ReplayBuilder = Callable[..., None]


def run(args: argparse.Namespace, build_replay: ReplayBuilder | None = None) -> int:
    # Heavy imports (torch, transformers) only once a run is really asked for.
    from loragate.base_model import BaseModelError, load_tokenizer, resolve_base_model
    from loragate.training.data import DataError
    from loragate.training.device import is_main_process
    from loragate.training.errors import TrainingDiverged, TrainingError
    from loragate.training.replay import replay_enabled
    from loragate.training.trainer import prepare_data, train

    config = load_config(args.config)
    _apply_overrides(config, args)
    try:
        if args.check_data or args.dry_run:
            data = prepare_data(config, load_tokenizer(resolve_base_model(config)),
                                replay_unbuilt_ok=True)
            if args.check_data:
                summary = data.train_report.summary()
                if data.replay is not None:
                    summary["replay"] = data.replay
                print(json.dumps(summary, indent=2))
            if args.dry_run:
                print_plan(config, data)
            return EXIT_OK
        # Under torchrun every process would build it at once; there it must exist already
        # (built by `loragate pipeline` or a single-process `loragate train`).
        if (build_replay is not None and replay_enabled(config)
                and int(os.environ.get("WORLD_SIZE", "1")) == 1):
            build_replay(config, force=args.force)
        outcome = train(config, force=args.force)
    except DataError as exc:
        print(f"loragate: data error: {exc}", file=sys.stderr)
        return EXIT_DATA
    except TrainingDiverged as exc:
        print(f"loragate: training diverged: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except (TrainingError, BaseModelError) as exc:
        print(f"loragate: {exc}", file=sys.stderr)
        return EXIT_SETUP
    if is_main_process():
        _print_summary(outcome)
    return EXIT_OK


def _apply_overrides(config, args: argparse.Namespace) -> None:
    if args.output_dir is not None:
        config.output_dir = args.output_dir.resolve()
    if args.max_steps is not None:
        config.training_args.max_steps = args.max_steps
    if getattr(args, "time_budget", None) is not None:
        config.training.time_budget = None if args.time_budget == "none" else args.time_budget


def print_plan(config, data) -> None:
    """What a run of this config would do, without training."""
    from loragate.training.trainer import plan_of

    for name, value in plan_of(config, data).items():
        print(f"  {name}: {value}")


def _print_summary(outcome) -> None:
    from loragate.training.stats import describe_progress

    stats = outcome.stats
    if outcome.skipped:
        print(f"loragate: adapter in {outcome.output_dir} is up to date "
              "(same config, data and base); use --force to train again")
        return
    for note in outcome.notes:
        print(f"loragate: note: {note}", file=sys.stderr)
    fields = {
        "steps": stats.global_step,
        "plan": describe_progress(stats) + ("" if stats.plan_complete else " (partly trained)"),
        "epochs": _round(stats.epochs),
        "train loss": _round(stats.train_loss),
        "eval loss": _round(stats.eval_loss),
        "base eval loss": _round(stats.base_eval_loss),
        "supervised tokens/s": _round(stats.supervised_tokens_per_second),
        "peak memory GB": _round(stats.peak_memory_gb),
        "runtime s": _round(stats.runtime_s),
    }
    print(f"loragate: adapter written to {outcome.output_dir}")
    for name, value in fields.items():
        print(f"  {name}: {value}")
    for warning in stats.warnings:
        print(f"  warning: {warning}")


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (``python -m loragate.training.cli``), e.g. under torchrun."""
    parser = argparse.ArgumentParser(prog="loragate train", description=__doc__)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), metavar="PATH")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"loragate: config error: {exc}", file=sys.stderr)
        return ExitCode.USAGE


if __name__ == "__main__":
    sys.exit(main())
