"""The checkpoints of a run: which one a run resumes from, what a checkpoint killed while it was
being saved lacks, and the record of the runs (``loragate_runs.json``) each one carries."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from loragate.artifacts import ADAPTER_CONFIG, ADAPTER_WEIGHTS, InputsStamp
from loragate.training.stats import INPUTS_FILE, STATS_FILE

RUNS_FILE = "loragate_runs.json"


def checkpoints_in(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.glob("checkpoint-*") if p.is_dir()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]) if
                  p.name.rsplit("-", 1)[-1].isdigit() else -1)


# What HF's Trainer needs to resume exactly. It writes a checkpoint in place, in this order:
# weights, optimizer.pt and scheduler.pt, then trainer_state.json; a run killed while saving
# leaves a folder that fails every resume (no weights, no or half a trainer_state.json) or,
# worse, resumes with a fresh optimizer, because the Trainer skips a missing optimizer.pt or
# scheduler.pt without a word.
CHECKPOINT_WEIGHTS = (ADAPTER_WEIGHTS, "adapter_model.bin")
CHECKPOINT_FILES = ("optimizer.pt", "scheduler.pt")
TRAINER_STATE = "trainer_state.json"


class IncompleteCheckpointWarning(UserWarning):
    """A checkpoint folder missing files (a run killed while saving it) was skipped."""


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from as saved, or None when it is whole."""
    checkpoint = Path(checkpoint)
    missing = [] if any((checkpoint / name).is_file() for name in CHECKPOINT_WEIGHTS) \
        else [ADAPTER_WEIGHTS]
    missing += [name for name in (*CHECKPOINT_FILES, TRAINER_STATE)
                if not (checkpoint / name).is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    state = read_json_object(checkpoint / TRAINER_STATE)
    if not isinstance(state.get("global_step"), int):
        return f"{TRAINER_STATE} is cut short or unreadable"
    return None


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint that can be resumed from."""
    whole = [p for p in checkpoints_in(Path(output_dir)) if checkpoint_problem(p) is None]
    return whole[-1] if whole else None


def clear_previous_run(output_dir: Path) -> None:
    for path in checkpoints_in(output_dir):
        shutil.rmtree(path, ignore_errors=True)
    for name in (STATS_FILE, ADAPTER_WEIGHTS, ADAPTER_CONFIG, INPUTS_FILE):
        (output_dir / name).unlink(missing_ok=True)


def resume_point(output_dir: Path, run_hash: str, force: bool
                  ) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The checkpoint to resume from: only one written for the same inputs, never with force;
    and the newer, incomplete checkpoints passed over on the way (with what each lacks)."""
    if force:
        return None, []
    stamp = InputsStamp.read(output_dir / INPUTS_FILE)
    if stamp is None or stamp.inputs_hash != run_hash:
        return None, []
    passed_over: list[tuple[Path, str]] = []
    for checkpoint in reversed(checkpoints_in(output_dir)):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint, passed_over
        passed_over.append((checkpoint, problem))
    return None, passed_over


def drop_incomplete(passed_over: list[tuple[Path, str]], resume_from: Path | None) -> list[str]:
    """Warn about and remove each incomplete checkpoint (the resumed run saves that step
    again); the messages, for the run's notes."""
    then = f"resuming from {resume_from.name}" if resume_from is not None \
        else "no whole checkpoint is left, so training starts over"
    messages = []
    for checkpoint, problem in passed_over:
        message = (f"{checkpoint} is incomplete ({problem}): the run was killed while saving "
                   f"it; removed it and skipped it, {then}")
        warnings.warn(IncompleteCheckpointWarning(message), stacklevel=3)
        shutil.rmtree(checkpoint, ignore_errors=True)
        messages.append(message)
    return messages


def prior_runs(checkpoint: Path | None) -> dict[str, Any]:
    """What the run that saved ``checkpoint`` recorded about the runs before it."""
    if checkpoint is None:
        return {}
    recorded = read_json_object(checkpoint / RUNS_FILE)
    if isinstance(recorded.get("runs"), list):
        return recorded
    step = checkpoint_step(checkpoint)
    # A checkpoint saved before run records existed: one run of unknown length made it.
    return {"runs": [{"run": 1, "from_step": 0, "to_step": step, "steps": step,
                      "seconds": None, "ended": "unknown", "warnings": []}]}


def checkpoint_step(checkpoint: Path | None) -> int:
    if checkpoint is None:
        return 0
    state = read_json_object(checkpoint / TRAINER_STATE)
    return int(state.get("global_step", 0))


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; an empty one when it is missing or unreadable (a killed save
    leaves such files, and they mean "not there")."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}

