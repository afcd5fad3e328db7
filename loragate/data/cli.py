"""``loragate data generate``: write the bundled Web4 data (or check it is up to date)."""

from __future__ import annotations

import argparse
import filecmp
import tempfile
from pathlib import Path

from loragate.data.generate import SCALES, generate_all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("generate",), help="what to do")
    parser.add_argument("--out", type=Path, default=Path("data"), help="output folder")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale", choices=sorted(SCALES), default="tiny",
                        help="tiny: ~1,400 training samples for the CPU profile; "
                             "plan: the plan's ~37K")
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary folder and fail if --out differs")


def stale_files(out: Path, seed: int, scale: str) -> list[str]:
    """The generated files (relative to ``out``) that are missing or differ there."""
    with tempfile.TemporaryDirectory() as tmp:
        counts = generate_all(Path(tmp), seed, scale)
        return [name for name in counts
                if not (out / name).is_file()
                or not filecmp.cmp(Path(tmp) / name, out / name, shallow=False)]


def run(args: argparse.Namespace) -> int:
    if not args.check:
        counts = generate_all(args.out, args.seed, args.scale)
        for name, count in counts.items():
            print(f"{count:6d}  {args.out / name}")
        print(f"{sum(counts.values())} records in {len(counts)} files")
        return 0
    stale = stale_files(args.out, args.seed, args.scale)
    for name in stale:
        print(f"out of date: {args.out / name}")
    print("data is up to date" if not stale else
          f"{len(stale)} file(s) differ: run `loragate data generate`")
    return 1 if stale else 0
