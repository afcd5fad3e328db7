"""``loragate init DIR``: a starter project that gates a model on a harness of its own.

The project is a config (``loragate.json``), a validator module, a prompt file, a canary
file and a ``pytest.ini`` naming the config; no test file is needed, the plugin makes one gate
item per prompt (and, given ``--baseline``, one per canary). ``cd DIR && pytest --model SPEC``
gates with it as it stands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loragate.exit_codes import ExitCode

HARNESS = "json_keys"
CONFIG_NAME = "loragate.json"
VALIDATOR_MODULE = "my_harnesses"

CONFIG = {
    "gates": {
        "harnesses": {
            HARNESS: {
                "gate": "ship",
                "threshold": 0.8,
                "samples": 5,
                "metric": "pass_rate",
                "validator": f"{VALIDATOR_MODULE}:{HARNESS}",
                "prompts": f"prompts/{HARNESS}.jsonl",
            }
        },
        "overall_target": 80,
    },
    "backend": {"max_tokens": 256},
    # Judged only when a baseline is given (--baseline SPEC or "baseline" here).
    "canaries": {"file": "canaries.jsonl"},
    "reports": {"dir": "reports"},
}

# Must-not-regress tasks: every one must pass on the model, and none may fail where the
# baseline passes. Keywords match whole words, case-insensitively; a list is alternatives.
CANARIES = [
    ("c01", "json basics", "What does the abbreviation JSON stand for?",
     {"keywords": ["javascript", "object", "notation"]}),
    ("c02", "python function", "Write a Python function named add that returns the sum of "
     "two numbers.", {"keywords": ["def", "add", "return"]}),
    ("c03", "http create", "Which HTTP method creates a new resource in a REST API?",
     {"keywords": ["post"]}),
]

VALIDATOR = '''"""The project's own harnesses: functions (text, record) -> HarnessResult | bool.

A harness is declared in loragate.json under gates.harnesses.<name> with
"validator": "my_harnesses:<function>"; the record is the prompt's line of the prompt file,
so it can carry what the validator needs (here: "expected_keys").
"""

import json

from loragate.harnesses.base import HarnessResult


def json_objects(text):
    """Every JSON object in the text, read where each one starts (an answer may hold several,
    or prose with braces around them)."""
    decoder = json.JSONDecoder()
    found, start = [], text.find("{")
    while start >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        start = text.find("{", end)
    return found


def json_keys(text, record):
    """The answer holds a JSON object with every key the prompt asked for."""
    objects = json_objects(text)
    if not objects:
        return HarnessResult(passed=False, reasons=["no valid JSON object in the answer"])
    wanted = record.get("expected_keys", [])
    best = max(objects, key=lambda value: sum(key in value for key in wanted))
    missing = [key for key in wanted if key not in best]
    return HarnessResult.from_reasons([f"key missing: {key!r}" for key in missing])
'''

PROMPTS = [
    ("user-1", "Return a JSON object describing a user with the keys name and email.",
     ["name", "email"]),
    ("point-1", "Give a JSON object for a 2D point with keys x and y.", ["x", "y"]),
    ("book-1", "Describe a book as a JSON object with keys title, author and year.",
     ["title", "author", "year"]),
    ("config-1", "Write a JSON object with keys host and port for a server config.",
     ["host", "port"]),
    ("task-1", "Output a JSON object for a to-do item with keys id, text and done.",
     ["id", "text", "done"]),
]

PYTEST_INI = f"""[pytest]
# The loragate plugin reads its config from here; `pytest --model SPEC` gates with it.
loragate_config = {CONFIG_NAME}
"""

README = f"""# Gating a model with loragate

This project gates a model on one harness of its own, `{HARNESS}`: every answer must hold a
JSON object with the keys its prompt asks for.

    pytest --model gguf:PATH/TO/model.gguf        # or ollama:NAME, openai:URL#MODEL, hf:PATH

The exit status is the verdict: 0 cleared, 1 blocked, 6 the gate could not run (a model that
cannot be reached), 4 a usage error. The verdict is written to `reports/verdict.json` and
`reports/report.html`.

- `{CONFIG_NAME}`: the harnesses with their gate (`ship` blocks, `quality` lowers the
  score), threshold, sample count, metric and validator; the overall target.
- `{VALIDATOR_MODULE}.py`: the validators, `(text, record) -> HarnessResult | bool`.
- `prompts/{HARNESS}.jsonl`: one JSON record per line, `id` and `messages` (ending with a
  user message) plus whatever the validator reads from the record.

Add a harness: write its validator, its prompt file and an entry under `gates.harnesses`.
The six Web4 harnesses (`pdca_schema`, `refusal`, …) are built in and need only a name.

`canaries.jsonl` holds must-not-regress tasks, judged against a baseline model:

    pytest --model gguf:tuned.gguf --baseline gguf:base.gguf

Every canary must pass on the model (`canaries.require_all`) and none may fail where the
baseline passes; without a baseline they are not run, and the verdict says so.
"""


def starter_files() -> dict[str, str]:
    prompts = "".join(
        json.dumps({"id": pid, "messages": [{"role": "user", "content": text}],
                    "expected_keys": keys}) + "\n"
        for pid, text, keys in PROMPTS)
    canaries = "".join(
        json.dumps({"id": cid, "task": task, "messages": [{"role": "user", "content": text}],
                    "check": check}) + "\n"
        for cid, task, text, check in CANARIES)
    return {
        CONFIG_NAME: json.dumps(CONFIG, indent=2) + "\n",
        "canaries.jsonl": canaries,
        f"{VALIDATOR_MODULE}.py": VALIDATOR,
        f"prompts/{HARNESS}.jsonl": prompts,
        "pytest.ini": PYTEST_INI,
        "README.md": README,
    }


def write_starter(folder: Path, *, force: bool = False) -> list[Path]:
    """Write the starter project into ``folder``; a file that exists already is an error
    unless ``force``."""
    files = starter_files()
    existing = [folder / name for name in files if (folder / name).exists()]
    if existing and not force:
        raise FileExistsError("would overwrite " + ", ".join(str(p) for p in existing)
                              + " (use --force)")
    written = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="the project folder (created if missing)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")


def run(args: argparse.Namespace) -> int:
    try:
        written = write_starter(args.dir, force=args.force)
    except FileExistsError as exc:
        print(f"loragate init: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    for path in written:
        print(f"wrote {path}")
    print(f"next: cd {args.dir} && pytest --model gguf:PATH/TO/model.gguf")
    return 0
