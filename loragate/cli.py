"""The ``loragate`` command: one subcommand per stage, each in its stage's module.

Each stage module exposes ``add_arguments(parser)`` and ``run(args) -> int``; this file only
wires them, so ``loragate --help`` stays fast (stage modules are imported when their
subcommand's help or run is asked for, not at start-up).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from loragate import __version__
from loragate.config import DEFAULT_CONFIG, ConfigError
from loragate.exit_codes import ExitCode, status_summary

# subcommand -> (module, one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "train": ("loragate.pipeline", "Step 1: train the LoRA adapter from the JSONL data"),
    "package": ("loragate.packaging.cli",
                "Step 2: merge, convert to GGUF, quantize, write the Modelfile"),
    "gate": ("loragate.pipeline", "Step 3: run the ship and quality gates against --model"),
    "pipeline": ("loragate.pipeline",
                 "all stages in order, each reusing an up-to-date artifact"),
    "report": ("loragate.gating.report_cli",
               "re-render a verdict JSON as HTML, re-verdict it with other thresholds, or "
               "compare two verdicts prompt by prompt (--compare OLD NEW)"),
    "init": ("loragate.gating.starter",
             "write a starter project that gates a model on a harness of its own"),
    "check": ("loragate.harnesses.cli", "run one harness validator on text files or stdin"),
    "judges": ("loragate.judges", "measure each judge (refusal classifier, canary check, a "
               "project's validators) on labelled answers it was not tuned on"),
    "data": ("loragate.data.cli", "generate the bundled Web4 training and prompt data"),
    "rag": ("loragate.rag.index", "fill the RAG stores (ChromaDB, SQLite, Redis) from data/"),
    "serve": ("loragate.backends.serve",
              "serve a GGUF on an OpenAI-compatible endpoint (without one: say whether an "
              "Ollama server answers)"),
}
# The commands that read a starter project's loragate.json when the default profile is absent
# (pipeline.gate_config_path, judges.project_config).
PROJECT_CONFIG_FALLBACK = frozenset({"gate", "judges"})
# The subcommands that read a loragate config; the others take no --config (it would be
# accepted and ignored).
TAKES_CONFIG = frozenset({"train", "package", "gate", "pipeline", "report", "judges", "rag",
                          "serve"})


class StageNotBuilt(RuntimeError):
    pass


def _load_stage(name: str):
    module_name = STAGES[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise StageNotBuilt(
                f"'loragate {name}' is not built yet in this version ({module_name} is missing)"
            ) from None
        raise
    if name in ("train", "gate", "pipeline"):
        return _Namespaced(module, name)
    return module


class _Namespaced:
    """A module that serves several subcommands through ``add_<name>_arguments``/``run_<name>``."""

    def __init__(self, module, name: str) -> None:
        self.add_arguments = getattr(module, f"add_{name}_arguments")
        self.run = getattr(module, f"run_{name}")


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors ending in loragate's usage status (4) instead of 2,
    which pytest, and so a gate session, uses for "interrupted"."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {message}\n")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="loragate",
        description="From JSONL instruction data to a deployment verdict.",
        epilog=status_summary(),
    )
    parser.add_argument("--version", action="version", version=f"loragate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = argv[0] if argv and argv[0] in STAGES else None
    for name, (_, help_text) in STAGES.items():
        stage_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name in TAKES_CONFIG:
            default = (f"{DEFAULT_CONFIG} where it exists, else the project's loragate.json "
                       "in this folder" if name in PROJECT_CONFIG_FALLBACK else DEFAULT_CONFIG)
            stage_parser.add_argument(
                "--config", default=str(DEFAULT_CONFIG), metavar="PATH",
                help=f"run profile (default: {default})",
            )
        # Only the chosen stage's module is imported: the others may need heavy libraries.
        if name == wanted:
            try:
                stage = _load_stage(name)
            except StageNotBuilt as exc:
                stage_parser.set_defaults(_not_built=str(exc))
                continue
            stage.add_arguments(stage_parser)
            stage_parser.set_defaults(_run=stage.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        hint = ""
        if getattr(args, "pytest_args", None) is not None:
            # `loragate gate` hands pytest what follows `--`; the plugin's options go there.
            tail = argv[argv.index(unknown[0]):]
            hint = (f"; pytest and gate options go after --: loragate {args.command} "
                    f"... -- {' '.join(tail)}")
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    if getattr(args, "_not_built", None):
        print(f"loragate: {args._not_built}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        return int(args._run(args) or 0)
    except ConfigError as exc:
        print(f"loragate: config error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print("loragate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
