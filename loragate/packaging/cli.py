"""``loragate package``: turn the trained adapter into GGUF files and a Modelfile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loragate.config import load_config
from loragate.exit_codes import ExitCode
from loragate.packaging.llamacpp import ConverterError
from loragate.packaging.merge import AdapterMismatchError, AdapterNotFoundError
from loragate.packaging.modelfile import ModelfileError, UnsupportedChatTemplate
from loragate.packaging.quantize import InvalidGGUFError, QuantizeError

# What was given is missing or does not fit (4) vs a tool that failed on it (6):
# loragate.exit_codes.COMMAND_STATUSES["loragate package"].
_INPUT_ERRORS = (AdapterNotFoundError, AdapterMismatchError, UnsupportedChatTemplate)
_TOOL_ERRORS = (ConverterError, QuantizeError, InvalidGGUFError, ModelfileError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", type=Path, metavar="DIR",
                        help="peft adapter folder (default: the config's output_dir)")
    parser.add_argument("--base", type=Path, metavar="DIR",
                        help="base model HF folder (default: the config's base section)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even when the recorded inputs are unchanged")
    parser.add_argument("--ollama", action="store_true",
                        help="import into Ollama as packaging.ollama_name when a server answers "
                             "at OLLAMA_HOST (else print the command to run)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from loragate.base_model import BaseModelError
    from loragate.packaging.pipeline import package

    config = load_config(args.config, check_paths=False)
    try:
        result = package(
            config, args.adapter, base_dir=args.base, force=args.force,
            progress=not args.no_progress, ollama=args.ollama,
        )
    except (*_INPUT_ERRORS, BaseModelError) as exc:
        print(f"loragate package: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except _TOOL_ERRORS as exc:
        print(f"loragate package: {exc}", file=sys.stderr)
        return ExitCode.GATE_ERROR
    state = "up to date, reused" if result.reused else "built"
    print(f"package {state}: {result.package_dir}")
    for quant_type, path in result.quantized.items():
        print(f"  {quant_type:7s} {path}  ({path.stat().st_size / 2**20:.1f} MiB)")
    if result.adapter_gguf:
        print(f"  adapter {result.adapter_gguf}")
    print(f"  Modelfile {result.modelfile}")
    if not result.reused:
        steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.timings_s.items())
        print(f"  timings: {steps}")
    if args.ollama and not config.packaging.ollama_name:
        print("  --ollama: set packaging.ollama_name in the config to name the Ollama model")
    if result.ollama_message:
        print(f"  {result.ollama_message}")
    return 0
