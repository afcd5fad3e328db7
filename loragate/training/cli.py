"""``loragate train``: Step 1, train the LoRA adapter from the config's JSONL data.

Skips the work when the output folder already holds an adapter trained from the same inputs
(config + data + base model), unless ``--force``. Runs unchanged under ``torchrun``:
``python -m torch.distributed.run --nproc_per_node 2 -m loragate.training.cli --config ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from loragate.config import DEFAULT_CONFIG, ConfigError, load_config

EXIT_OK = 0
EXIT_DATA = 3
EXIT_DIVERGED = 4
EXIT_SETUP = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="train from scratch even if an up-to-date adapter exists "
                             "(drops earlier checkpoints)")
    parser.add_argument("--output-dir", type=Path, default=None, metavar="DIR",
                        help="override the config's output_dir")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N",
                        help="stop after N optimizer steps (a quick check of the code path)")
    parser.add_argument("--check-data", action="store_true",
                        help="only load, validate and leak-check the data, then exit")


def run(args: argparse.Namespace) -> int:
    # Heavy imports (torch, transformers) only once a run is really asked for.
    from loragate.training.base_model import BaseModelError, load_tokenizer, resolve_base_model
    from loragate.training.data import DataError
    from loragate.training.trainer import (
        TrainingDiverged,
        TrainingError,
        is_main_process,
        prepare_data,
        train,
    )

    config = load_config(args.config)
    _apply_overrides(config, args)
    try:
        if args.check_data:
            data = prepare_data(config, load_tokenizer(resolve_base_model(config)))
            print(json.dumps(data.train_report.summary(), indent=2))
            return EXIT_OK
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


def _print_summary(outcome) -> None:
    stats = outcome.stats
    if outcome.skipped:
        print(f"loragate: adapter in {outcome.output_dir} is up to date "
              "(same config, data and base); use --force to train again")
        return
    for note in outcome.notes:
        print(f"loragate: note: {note}", file=sys.stderr)
    fields = {
        "steps": stats.get("global_step"),
        "epochs": _round(stats.get("epochs")),
        "train loss": _round(stats.get("train_loss")),
        "eval loss": _round(stats.get("eval_loss")),
        "base eval loss": _round(stats.get("base_eval_loss")),
        "supervised tokens/s": _round(stats.get("supervised_tokens_per_second")),
        "peak memory GB": _round(stats.get("peak_memory_gb")),
        "runtime s": _round(stats.get("runtime_s")),
    }
    print(f"loragate: adapter written to {outcome.output_dir}")
    for name, value in fields.items():
        print(f"  {name}: {value}")
    for warning in stats.get("warnings", []):
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
        return 2


if __name__ == "__main__":
    sys.exit(main())
