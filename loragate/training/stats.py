"""What a training run hands on: ``training_stats.json`` (:class:`TrainingStats`, written and read
by the same model) and the hash of the inputs it was trained from, by which a later call
reuses a finished adapter or resumes a partly trained one.

The Step 1 checks, ``loragate train``'s summary and the pipeline read the stats through
:meth:`TrainingStats.read`; nothing reads the file by key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from loragate.artifacts import (
    ADAPTER_WEIGHTS,
    files_digest,
    model_folder_fingerprint,
    write_json_durably,
)
from loragate.base_model import resolve_base_model
from loragate.training.replay import replay_enabled, replay_path

STATS_FILE = "training_stats.json"
INPUTS_FILE = "training_inputs.json"
# 2: complete, planned/completed steps and epochs, runs; "completed" now means this run ended
# without error and wrote an adapter, which a run stopped at its time budget does too.
STATS_VERSION = 2


class LossPoint(BaseModel):
    """One logged training step."""

    step: int
    epoch: float = 0.0
    loss: float
    grad_norm: float | None = None
    learning_rate: float | None = None


class EvalPoint(BaseModel):
    """One hold-out evaluation during training."""

    step: int
    loss: float


class GradNorms(BaseModel):
    """The gradient norms of the logged steps against the warning limit."""

    max: float | None = None
    mean: float | None = None
    last: float | None = None
    over_limit: int = 0
    # Where each one was: a spike at one step reads differently from a drift.
    over_limit_steps: list[int] = []
    limit: float | None = None


class RunRecord(BaseModel):
    """One of the runs that trained the adapter (a budgeted plan may take several)."""

    run: int
    from_step: int
    to_step: int
    steps: int
    seconds: float | None = None
    ended: str
    warnings: list[str] = []


class TrainingStats(BaseModel):
    """``training_stats.json``: what a run did, its losses, norms and memory, and how much of its
    plan is done. A run that diverged writes it too, with ``completed: false`` and the reason."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    stats_version: int = STATS_VERSION
    completed: bool = False
    complete: bool | None = None
    loragate_version: str | None = None
    inputs_hash: str | None = None
    config_hash: str | None = None
    data_hash: str | None = None
    base_model: str | None = None
    base_fingerprint: str | None = None
    model_name: str | None = None
    device: str | None = None
    precision: str | None = None
    precision_note: str | None = None
    world_size: int | None = None
    platform: str | None = None
    seed: int | None = None
    epochs: float | None = None
    num_train_epochs: float | None = None
    global_step: int | None = None
    max_steps: int | None = None
    resumed_from_step: int = 0
    runtime_s: float | None = None
    train_samples: int | None = None
    train_samples_per_second: float | None = None
    train_supervised_tokens_per_epoch: int | None = None
    train_tokens_per_epoch: int | None = None
    supervised_tokens_per_second: float | None = None
    train_loss: float | None = None
    final_train_loss: float | None = None
    eval_loss: float | None = None
    base_eval_loss: float | None = None
    loss_history: list[LossPoint] = []
    eval_history: list[EvalPoint] = []
    loss_range: tuple[float, float] | None = None
    nan_detected: bool = False
    stopped_at_step: int | None = None
    reason: str | None = None
    last_good_checkpoint: str | None = None
    grad_norm: GradNorms | None = None
    peak_memory_gb: float | None = None
    memory_measure: str | None = None
    memory_budget_gb: float | None = None
    warnings: list[str] = []
    trainable_params: int | None = None
    total_params: int | None = None
    data: dict[str, Any] | None = None
    lora: dict[str, Any] | None = None
    # How much of the plan is done, and by which runs.
    planned_steps: int | None = None
    completed_steps: int | None = None
    completed_fraction: float | None = None
    steps_per_epoch: int | None = None
    planned_epochs: float | None = None
    completed_epochs: float | None = None
    time_budget_s: float | None = None
    stopped_by: str | None = None
    runs: list[RunRecord] = []

    @property
    def plan_complete(self) -> bool:
        """Whether the adapter is trained to the end of its plan."""
        if self.complete is None:  # stats_version 1: no time budget existed
            return self.completed
        return self.complete

    def write(self, output_dir: str | Path) -> Path:
        return write_json_durably(Path(output_dir) / STATS_FILE, self.model_dump(mode="json"))

    @classmethod
    def read(cls, output_dir: str | Path) -> TrainingStats | None:
        """The stats in ``output_dir``; None when there are none or they cannot be read (then
        there is no finished run to reuse)."""
        path = Path(output_dir) / STATS_FILE
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValueError, ValidationError):
            return None


# -- the inputs of a run ------------------------------------------------------------------------

# Settings that do not change the adapter: how long one run may take (a budgeted run resumes
# into the same adapter), and where the replay prompts are (the replay set, prompts and
# answers, is in data_hash).
NOT_HASHED_TRAINING = {"time_budget"}
REPLAY_FIELDS = {"replay_ratio", "replay_prompts", "replay_max_tokens"}


def training_config_hash(config: Any) -> str:
    """Hash of the config sections that change the adapter (not gates, packaging, paths,
    the time budget...)."""
    # Without replay its fields change nothing: leaving them out keeps the hash (and so the
    # reuse of an adapter) of configs written before the fields existed.
    replay_out = {"replay_prompts"} if replay_enabled(config) else REPLAY_FIELDS
    sections = {
        "model_name": config.model_name,
        "training_args": config.training_args.model_dump(mode="json"),
        "lora_config": config.lora_config.model_dump(mode="json", exclude_none=True),
        "data_args": config.data_args.model_dump(mode="json", exclude=replay_out),
        "base": config.base.model_dump(mode="json"),
        "training": config.training.model_dump(mode="json", exclude=NOT_HASHED_TRAINING),
    }
    return _legacy_json_digest(sections)


def _legacy_json_digest(value: Any) -> str:
    # The spacing of the hashes recorded by earlier runs; json_digest's canonical form would
    # make every existing adapter look stale.
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def data_hash(config: Any) -> str:
    """Hash of the training and hold-out files, and of the replay answers when mixed in."""
    paths = [Path(p) for p in config.dataset_files] + [Path(config.eval_file)]
    if replay_enabled(config) and replay_path(config).is_file():
        paths.append(replay_path(config))
    return files_digest(paths)


def inputs_hash(config_hash: str, data: str, base: str) -> str:
    return hashlib.sha256(f"config={config_hash}\ndata={data}\nbase={base}".encode()).hexdigest()


def completed_run_hash(output_dir: Path) -> str | None:
    """The inputs hash of a run in ``output_dir`` trained to the end of its plan whose adapter
    is there, else None (a partly trained adapter is resumed, never reused)."""
    stats = TrainingStats.read(output_dir)
    if stats is None or not stats.completed or not stats.plan_complete:
        return None
    if not (Path(output_dir) / ADAPTER_WEIGHTS).is_file():
        return None
    return stats.inputs_hash


def current_inputs_hash(config: Any, base_dir: Path | None = None) -> str:
    base_dir = base_dir if base_dir is not None else resolve_base_model(config)
    return inputs_hash(training_config_hash(config), data_hash(config),
                       model_folder_fingerprint(base_dir))


def is_up_to_date(config: Any) -> bool:
    """Whether ``output_dir`` holds a finished adapter trained from exactly these inputs."""
    recorded = completed_run_hash(Path(config.output_dir))
    return recorded is not None and recorded == current_inputs_hash(config)


# -- how a run is described ---------------------------------------------------------------------


def describe_progress(stats: TrainingStats) -> str:
    """'110 of 686 steps (16%), 0.32 of 2 epochs, 1 run' for logs and summaries."""
    planned, done = stats.planned_steps, stats.completed_steps
    if not planned or done is None:
        return f"{stats.global_step if stats.global_step is not None else '?'} steps"
    runs = len(stats.runs) or 1
    epochs = ""
    if stats.planned_epochs is not None and stats.completed_epochs is not None:
        epochs = f", {stats.completed_epochs:.2f} of {stats.planned_epochs:g} epochs"
    return (f"{done} of {planned} steps ({100.0 * done / planned:.0f}%){epochs}, "
            f"{runs} run{'s' if runs != 1 else ''}")


def partial_note(stats: TrainingStats) -> str:
    """The sentence a partly trained adapter is announced with."""
    why = "at the time budget" if stats.stopped_by == "time budget" else "early"
    return (f"training stopped {why} after {describe_progress(stats)}: the adapter is partly "
            "trained; run again with the same inputs to resume")
