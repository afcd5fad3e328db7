"""Train the LoRA adapter: data → formatted batches → peft model → HF Trainer → adapter folder.

The output folder (``config.output_dir``) ends up holding:

* ``adapter_model.safetensors`` + ``adapter_config.json`` (never a pickle) and the tokenizer;
* ``training_stats.json``: what the Step 1 checks and the pipeline read (see :func:`train`);
* ``training_inputs.json``: the hash of config + data + base this run was started for, so an
  interrupted run resumes only from checkpoints of the same inputs;
* ``checkpoint-N/`` folders (HF Trainer's, for resuming, each with ``loragate_runs.json``:
  the runs that made it) and ``runs/`` (tensorboard).

Training runs to a plan (``training_args.max_steps``, else ``num_train_epochs``) and may take
several runs: with ``training.time_budget`` a run saves a checkpoint and stops when the next
step would not fit the budget, and the next run with the same inputs resumes there with the
same data order and learning-rate schedule (both follow the plan, not the budget). Until the
plan is done the adapter is *partly trained*: it is written, packaged and gated like any other,
its ``training_stats.json`` says ``complete: false`` with the steps and epochs done, and it is
never reused as a finished adapter.

The same function runs under ``torchrun`` / ``accelerate launch``: the Trainer shards the
data across processes and only the main process writes the adapter and the stats.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loragate.packaging.files import give_files_the_umask_mode
from loragate.training.base_model import load_tokenizer, resolve_base_model
from loragate.training.data import (
    LoadReport,
    ProtectedPrompt,
    check_no_leaks,
    eval_prompts,
    files_hash,
    find_leaks,
    harness_prompts,
    load_samples,
    prompts_in_file,
)
from loragate.training.formatting import EncodedSet, build_dataset, make_collator
from loragate.training.replay import (
    check_replay_prompts,
    load_replay_prompts,
    mix_replay,
    replay_count,
    replay_enabled,
    replay_path,
    replay_samples,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, TrainerCallback

STATS_FILE = "training_stats.json"
INPUTS_FILE = "training_inputs.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
RUNS_FILE = "loragate_runs.json"
# 2: complete, planned/completed steps and epochs, runs; "completed" now means this run ended
# without error and wrote an adapter, which a run stopped at its time budget does too.
STATS_VERSION = 2
GIB = 1024**3


class TrainingError(RuntimeError):
    """Training cannot start or cannot finish; the message says why and what to do."""


class TrainingDiverged(TrainingError):
    """The loss or the weights became NaN/inf; the last good checkpoint is kept."""


# --------------------------------------------------------------------------- device, precision


def select_device(requested: str = "auto") -> str:
    """``cuda``, then ``mps``, then ``cpu`` for ``auto``; an explicit choice must be available."""
    import torch

    available = {
        "cuda": torch.cuda.is_available(),
        "mps": _mps_available(),
        "cpu": True,
    }
    if requested == "auto":
        return next(name for name in ("cuda", "mps", "cpu") if available[name])
    if requested not in available:
        raise TrainingError(f"training.device '{requested}' is not one of auto, cuda, mps, cpu")
    if not available[requested]:
        raise TrainingError(f"training.device is '{requested}' but no {requested} device is usable")
    return requested


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def supports_bf16(device: str) -> bool:
    """Whether bf16 training is native on the device (CPU bf16 autocast is slow: never)."""
    import torch

    if device == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device == "mps":
        # bf16 on MPS needs macOS 14.
        check = getattr(torch.backends.mps, "is_macos_or_newer", None)
        return bool(check is not None and check(14, 0))
    return False


@dataclass(frozen=True)
class Precision:
    name: str  # "bf16", "fp16" or "fp32"
    note: str | None = None

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    @property
    def fp16(self) -> bool:
        return self.name == "fp16"

    def torch_dtype(self) -> Any:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.name]


def choose_precision(device: str, want_bf16: bool, want_fp16: bool) -> Precision:
    """bf16 where the device supports it, fp16 on a CUDA device without bf16, else fp32."""
    if device == "cpu":
        if want_bf16 or want_fp16:
            return Precision("fp32", "half precision requested, but training on CPU runs in fp32")
        return Precision("fp32")
    if want_bf16 or want_fp16:
        if supports_bf16(device):
            return Precision("bf16")
        if device == "cuda":
            return Precision("fp16", "bf16 unsupported on this GPU: fp16 mixed precision instead")
        return Precision("fp32", f"bf16 unsupported on {device}: training in fp32")
    return Precision("fp32")


# --------------------------------------------------------------------------- input hashing


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
    return _sha256(json.dumps(sections, sort_keys=True, default=str))


def data_hash(config: Any) -> str:
    """Hash of the training and hold-out files, and of the replay answers when mixed in."""
    paths = [Path(p) for p in config.dataset_files] + [Path(config.eval_file)]
    if replay_enabled(config) and replay_path(config).is_file():
        paths.append(replay_path(config))
    return files_hash(paths)


def base_fingerprint(base_dir: Path) -> str:
    """Hash of the base model folder: its config and its weight files' names and sizes.

    Hashing the bytes of a 7B model would take minutes; a changed model changes its sizes or
    its config in practice.
    """
    base_dir = Path(base_dir)
    parts = [(base_dir / "config.json").read_text(encoding="utf-8")]
    for path in sorted(base_dir.glob("*.safetensors")) + sorted(base_dir.glob("*.bin")):
        parts.append(f"{path.name}:{path.stat().st_size}")
    return _sha256("\n".join(parts))


def inputs_hash(config_hash: str, data: str, base: str) -> str:
    return _sha256(f"config={config_hash}\ndata={data}\nbase={base}")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_stats(output_dir: Path) -> dict[str, Any] | None:
    path = Path(output_dir) / STATS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def plan_complete(stats: dict[str, Any]) -> bool:
    """Whether the stats are of an adapter trained to the end of its plan."""
    complete = stats.get("complete")
    if complete is None:  # stats_version 1: no time budget existed, completed meant complete
        complete = stats.get("completed")
    return bool(complete)


def completed_run_hash(output_dir: Path) -> str | None:
    """The inputs hash of a run in ``output_dir`` trained to the end of its plan whose adapter
    is there, else None (a partly trained adapter is resumed, never reused)."""
    stats = read_stats(output_dir)
    if not stats or not stats.get("completed") or not plan_complete(stats):
        return None
    if not (Path(output_dir) / ADAPTER_WEIGHTS).is_file():
        return None
    return stats.get("inputs_hash")


def current_inputs_hash(config: Any, base_dir: Path | None = None) -> str:
    base_dir = base_dir if base_dir is not None else resolve_base_model(config)
    return inputs_hash(training_config_hash(config), data_hash(config), base_fingerprint(base_dir))


def is_up_to_date(config: Any) -> bool:
    """Whether ``output_dir`` holds a finished adapter trained from exactly these inputs."""
    recorded = completed_run_hash(Path(config.output_dir))
    return recorded is not None and recorded == current_inputs_hash(config)


# --------------------------------------------------------------------------- data


@dataclass
class PreparedData:
    train: EncodedSet
    eval: EncodedSet | None
    train_report: LoadReport
    eval_report: LoadReport | None
    leaks: list[str]
    replay: dict[str, Any] | None = None


def gate_prompts(config: Any) -> list[ProtectedPrompt]:
    """The prompts that measure the model: the harness prompt sets, the canaries and the
    forgetting probe. Training on them would inflate what they measure."""
    canaries = getattr(config, "canaries", None)
    return (harness_prompts(getattr(getattr(config, "gates", None), "prompts_dir", None))
            + prompts_in_file(getattr(canaries, "file", None))
            + prompts_in_file(getattr(canaries, "forgetting_file", None)))


def protected_prompts(config: Any) -> list[ProtectedPrompt]:
    """Every prompt training must not see: the hold-out set's and :func:`gate_prompts`."""
    args = config.data_args
    protected: list[ProtectedPrompt] = []
    if config.eval_file is not None and Path(config.eval_file).is_file():
        held_out = load_samples([config.eval_file], skip_invalid=args.skip_invalid_lines,
                                dedupe=args.dedupe)
        protected += eval_prompts(held_out.samples)
    return protected + gate_prompts(config)


def prepare_data(config: Any, tokenizer: PreTrainedTokenizerBase, *,
                 replay_unbuilt_ok: bool = False) -> PreparedData:
    """Load, validate, dedupe, mix in the replay set, leak-check and tokenize the training
    and hold-out sets.

    With ``replay_unbuilt_ok`` (a dry run) a replay set not built yet is left out, its
    prompts are still leak-checked and ``replay`` says how many samples it will add.
    """
    args = config.data_args
    train_report = load_samples(
        config.dataset_files, skip_invalid=args.skip_invalid_lines, dedupe=args.dedupe
    )
    eval_report = None
    protected: list[ProtectedPrompt] = []
    if config.eval_file is not None and Path(config.eval_file).is_file():
        eval_report = load_samples([config.eval_file], skip_invalid=args.skip_invalid_lines,
                                   dedupe=args.dedupe)
        protected += eval_prompts(eval_report.samples)
    protected += gate_prompts(config)
    domain = train_report.samples
    replay: dict[str, Any] | None = None
    if replay_enabled(config) and replay_unbuilt_ok and not replay_path(config).is_file():
        check_replay_prompts(load_replay_prompts(args.replay_prompts), protected)
        replay = {"ratio": args.replay_ratio, "built": False, "file": str(replay_path(config)),
                  "samples": replay_count(len(domain), args.replay_ratio)}
    elif replay_enabled(config):
        available = replay_samples(config)
        train_report.samples = mix_replay(domain, available, args.replay_ratio,
                                          config.training_args.seed)
        mixed = len(train_report.samples) - len(domain)
        replay = {"ratio": args.replay_ratio, "built": True, "samples": mixed,
                  "usable_answers": len(available), "file": str(replay_path(config))}
    # The replay samples go through the same check: none may be a held-out or gate prompt.
    if args.allow_eval_leak:
        leaks = find_leaks(train_report.samples, protected)
    else:
        check_no_leaks(train_report.samples, protected)
        leaks = []
    encode_args = {"system_prompt": args.system_prompt, "max_seq_length": args.max_seq_length}
    train = build_dataset(train_report.samples, tokenizer, **encode_args)
    if len(train.dataset) == 0:
        raise TrainingError("no training sample fits max_seq_length: " + "; ".join(train.dropped))
    held_out = build_dataset(eval_report.samples, tokenizer, **encode_args) \
        if eval_report else None
    return PreparedData(train, held_out, train_report, eval_report, leaks, replay)


# --------------------------------------------------------------------------- callbacks


def _callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


def _finite(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value))


def make_nonfinite_guard() -> Any:
    """A callback that stops at the first NaN/inf weight or logged loss, before it is saved.

    The Trainer's logs hide NaN losses (``logging_nan_inf_filter``), so the check looks at the
    trainable weights after each optimizer step: a NaN loss makes NaN gradients and NaN LoRA
    weights. Stopping here also cancels this step's save, so the last checkpoint is good.
    """

    class NonFiniteGuard(_callback_base()):
        def __init__(self) -> None:
            self.tripped_at: int | None = None
            self.reason = ""

        def _trip(self, state: Any, control: Any, reason: str) -> None:
            if self.tripped_at is None:
                self.tripped_at = state.global_step
                self.reason = reason
            control.should_training_stop = True
            control.should_save = False
            control.should_evaluate = False

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None,
                        **kwargs: Any) -> None:
            bad = _first_nonfinite_parameter(model) if model is not None else None
            if bad is not None:
                self._trip(state, control, f"non-finite values in weight '{bad}'")

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
                   **kwargs: Any) -> None:
            for key in ("loss", "grad_norm"):
                value = (logs or {}).get(key)
                if not _finite(value):
                    self._trip(state, control, f"{key} is {value}")

    return NonFiniteGuard()


def _first_nonfinite_parameter(model: Any) -> str | None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad and not torch.isfinite(param).all():
                return name
    return None


def peak_memory_gb(device: str) -> tuple[float, str]:
    """Current peak memory of this process on the device, and what was measured."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / GIB, "cuda max allocated"
    if device == "mps":
        return torch.mps.driver_allocated_memory() / GIB, "mps driver allocated"
    import psutil

    return psutil.Process().memory_info().rss / GIB, "cpu rss"


# The loss warnings read a moving mean: one logged loss is one batch. On a 2-epoch CUDA run
# of the bundled data, the 2-sample last batch of epoch 1 logged 2.32 between neighbours of
# 0.2-0.6, and step 23 logged 0.35 while its ten-step mean was 0.7; both tripped a warning.
LOSS_WINDOW = 10
MIN_LOSS_LOGS = 3


def make_health_monitor(device: str, loss_range: Sequence[float], grad_norm_limit: float,
                        memory_budget_gb: float, announce: bool) -> Any:
    """A callback recording loss, grad norms and peak memory, and the plan's warning signs."""
    low, high = loss_range

    class HealthMonitor(_callback_base()):
        def __init__(self) -> None:
            self.history: list[dict[str, float]] = []
            self.eval_history: list[dict[str, float]] = []
            self.warnings: list[str] = []
            self._warned: set[str] = set()
            self.grad_norm_over = 0
            self.peak_gb = 0.0
            self.memory_kind = ""

        def warn(self, key: str, message: str) -> None:
            if key in self._warned:
                return
            self._warned.add(key)
            self.warnings.append(message)
            if announce:
                from tqdm.auto import tqdm

                tqdm.write(f"loragate: warning: {message}", file=sys.stderr)

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            # A resumed run starts with the checkpoint's log: the history covers the whole
            # plan, so the Step 1 checks read one curve however many runs made it.
            for logs in state.log_history:
                if "loss" in logs:
                    self.history.append(_history_entry(logs, logs.get("step", 0),
                                                       logs.get("epoch")))
                elif "eval_loss" in logs:
                    self.eval_history.append({"step": logs.get("step", 0),
                                              "loss": logs["eval_loss"]})
            self.grad_norm_over = sum(1 for h in self.history
                                      if (h.get("grad_norm") or 0) > grad_norm_limit)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            used, self.memory_kind = peak_memory_gb(device)
            self.peak_gb = max(self.peak_gb, used)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
                   **kwargs: Any) -> None:
            logs = logs or {}
            if "eval_loss" in logs:
                self.eval_history.append({"step": state.global_step, "loss": logs["eval_loss"]})
            if "loss" not in logs:
                return
            grad_norm = logs.get("grad_norm")
            epoch = state.epoch or 0.0
            self.history.append(_history_entry(logs, state.global_step, epoch))
            recent = [entry["loss"] for entry in self.history[-LOSS_WINDOW:]]
            if len(recent) >= MIN_LOSS_LOGS:
                mean = sum(recent) / len(recent)
                where = f"(mean of the last {len(recent)} logged losses, step {state.global_step})"
                if epoch >= 1.0 and mean > high:
                    self.warn("loss_high", f"training loss {mean:.3f} > {high} after epoch 1 "
                              f"{where}: the model is not learning the format")
                if mean < low:
                    self.warn("loss_low", f"training loss {mean:.3f} < {low} {where}: "
                              "likely memorising the training set")
            if grad_norm is not None and grad_norm > grad_norm_limit:
                self.grad_norm_over += 1
                self.warn("grad_norm", f"gradient norm {grad_norm:.2f} > {grad_norm_limit} "
                          f"(step {state.global_step}): unstable; lower the learning rate")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            used, self.memory_kind = peak_memory_gb(device)
            self.peak_gb = max(self.peak_gb, used)
            if self.peak_gb > memory_budget_gb:
                self.warn("memory", f"peak memory {self.peak_gb:.2f} GB ({self.memory_kind}) "
                          f"is above the budget of {memory_budget_gb} GB")

    return HealthMonitor()


def _history_entry(logs: dict[str, Any], step: int, epoch: float | None) -> dict[str, Any]:
    return {"step": step, "epoch": round(epoch or 0.0, 4), "loss": logs["loss"],
            "grad_norm": logs.get("grad_norm"), "learning_rate": logs.get("learning_rate")}


# --------------------------------------------------------------------------- runs and budget


def trainer_class() -> type:
    """HF's Trainer, with a length-grouped shuffle drawn from (seed, epoch) alone.

    The installed Trainer draws the length-grouped order of each epoch from the global
    generator, whose state at epoch 2 depends on everything run since the seed; a run
    resumed inside epoch 2 would then skip the batches of an order the first run never used.
    Plain shuffling needs no help: accelerate's seedable sampler already seeds each epoch.
    """
    import torch
    from transformers import Trainer
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
        def __init__(self, grouped: LengthGroupedSampler, seed: int) -> None:
            super().__init__(grouped.batch_size, lengths=grouped.lengths)
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self) -> Any:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            return iter(get_length_grouped_indices(self.lengths, self.batch_size,
                                                   generator=generator))

    class LoragateTrainer(Trainer):
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> Any:
            sampler = super()._get_train_sampler(*args, **kwargs)
            if type(sampler) is LengthGroupedSampler:
                return EpochSeededLengthGroupedSampler(sampler, self.args.seed)
            return sampler

    return LoragateTrainer


def steps_per_epoch(batches_per_epoch: int, gradient_accumulation_steps: int) -> int:
    """Optimizer steps in one epoch, counted as the installed Trainer counts them."""
    return max(math.ceil(batches_per_epoch / max(gradient_accumulation_steps, 1)), 1)


def _agree(flag: bool, args: Any) -> bool:
    """The flag of any process, on every process: under DDP one process stopping alone would
    leave the others waiting for it forever."""
    import torch

    dist = getattr(torch, "distributed", None)
    if dist is None or not dist.is_available() or not dist.is_initialized() \
            or dist.get_world_size() < 2:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=args.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def make_run_ledger(*, budget_s: float | None, clock: Callable[[], float], started: float,
                    prior: dict[str, Any], final_reserve_s: float, monitor: Any) -> Any:
    """A callback that keeps the record of the runs that trained this adapter and stops the
    run at its time budget.

    After each optimizer step it predicts whether one more step (at this run's mean step
    time) and the final evaluation would still end within ``budget_s`` of ``started``; when
    not, it asks the Trainer to save a checkpoint at this step and stop. Every checkpoint
    gets ``loragate_runs.json``: the runs so far, so the run that resumes from it continues
    the record (and reuses the base model's eval loss instead of computing it again).
    """

    class RunLedger(_callback_base()):
        def __init__(self) -> None:
            self.prior_runs: list[dict[str, Any]] = list(prior.get("runs") or [])
            self.start_step = 0
            self.loop_started = started
            self.steps_per_epoch: int | None = None
            self.stopped_by_budget = False
            self.extra: dict[str, Any] = {k: v for k, v in prior.items() if k != "runs"}

        def on_train_begin(self, args: Any, state: Any, control: Any,
                           train_dataloader: Any = None, **kwargs: Any) -> None:
            self.start_step = state.global_step
            self.loop_started = clock()
            if train_dataloader is not None:
                self.steps_per_epoch = steps_per_epoch(len(train_dataloader),
                                                       args.gradient_accumulation_steps)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if budget_s is None or state.global_step >= state.max_steps:
                return
            now = clock()
            done = max(state.global_step - self.start_step, 1)
            per_step = (now - self.loop_started) / done
            over = _agree((now - started) + per_step + final_reserve_s > budget_s, args)
            if over and not control.should_training_stop:
                self.stopped_by_budget = True
                control.should_save = True
                control.should_training_stop = True

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                # Should the next run resume from here, this run ended here: at the budget,
                # or killed before its next checkpoint.
                ended = "time budget" if self.stopped_by_budget else "interrupted"
                _write_json(folder / RUNS_FILE, self.payload(state.global_step, ended))

        def this_run(self, step: int, ended: str) -> dict[str, Any]:
            return {"run": len(self.prior_runs) + 1, "from_step": self.start_step,
                    "to_step": step, "steps": step - self.start_step,
                    "seconds": round(clock() - started, 1), "ended": ended,
                    "warnings": list(monitor.warnings)}

        def runs(self, step: int, ended: str) -> list[dict[str, Any]]:
            return [*self.prior_runs, self.this_run(step, ended)]

        def payload(self, step: int, ended: str) -> dict[str, Any]:
            return {**self.extra, "runs": self.runs(step, ended)}

    return RunLedger()


def _prior_runs(checkpoint: Path | None) -> dict[str, Any]:
    """What the run that saved ``checkpoint`` recorded about the runs before it."""
    if checkpoint is None:
        return {}
    recorded = _read_json(checkpoint / RUNS_FILE)
    if isinstance(recorded.get("runs"), list):
        return recorded
    step = _checkpoint_step(checkpoint)
    # A checkpoint saved before run records existed: one run of unknown length made it.
    return {"runs": [{"run": 1, "from_step": 0, "to_step": step, "steps": step,
                      "seconds": None, "ended": "unknown", "warnings": []}]}


def describe_progress(stats: dict[str, Any]) -> str:
    """'110 of 686 steps (16%), 0.32 of 2 epochs, 1 run' for logs and summaries."""
    planned, done = stats.get("planned_steps"), stats.get("completed_steps")
    if not planned or done is None:
        return f"{stats.get('global_step', '?')} steps"
    runs = len(stats.get("runs") or []) or 1
    epochs = ""
    if stats.get("planned_epochs") is not None and stats.get("completed_epochs") is not None:
        epochs = f", {stats['completed_epochs']:.2f} of {stats['planned_epochs']:g} epochs"
    return (f"{done} of {planned} steps ({100.0 * done / planned:.0f}%){epochs}, "
            f"{runs} run{'s' if runs != 1 else ''}")


# --------------------------------------------------------------------------- model


def load_peft_model(config: Any, base_dir: Path, device: str, precision: Precision) -> Any:
    """The base model with LoRA adapters from ``lora_config``; QLoRA when asked (CUDA only)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": precision.torch_dtype()}
    if config.training.qlora:
        kwargs["quantization_config"] = _qlora_quantization(device, precision)
        kwargs["device_map"] = {"": _local_rank()}
    model = AutoModelForCausalLM.from_pretrained(base_dir, **kwargs)
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    gradient_checkpointing = bool(config.training_args.gradient_checkpointing)
    if config.training.qlora:
        # Casts norms to fp32 and enables input grads: needed only for a 4/8-bit base.
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing
        )
    elif gradient_checkpointing:
        # With a frozen base, checkpointed blocks would see inputs without grad otherwise.
        model.enable_input_require_grads()
    lora = LoraConfig(**config.lora_config.model_dump())
    return get_peft_model(model, lora)


def _qlora_quantization(device: str, precision: Precision) -> Any:
    if device != "cuda":
        raise TrainingError(
            f"training.qlora needs a CUDA device (bitsandbytes); device is {device}"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise TrainingError(
            "training.qlora needs the bitsandbytes package: pip install bitsandbytes"
        ) from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=precision.torch_dtype() if precision.name != "fp32" else None,
    )


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# --------------------------------------------------------------------------- training arguments


def build_training_arguments(config: Any, device: str, precision: Precision,
                             has_eval: bool) -> Any:
    """HF ``TrainingArguments`` from the config's ``training_args``, adapted to the device."""
    from transformers import TrainingArguments

    kwargs = config.training_args.to_kwargs()
    kwargs.update(
        output_dir=str(config.output_dir),
        bf16=precision.bf16,
        fp16=precision.fp16,
        use_cpu=device == "cpu",
        label_names=["labels"],
        # Every LoRA weight gets a gradient each step; searching for unused ones costs time.
        ddp_find_unused_parameters=False,
    )
    if kwargs.get("gradient_checkpointing") and not kwargs.get("gradient_checkpointing_kwargs"):
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if not has_eval:
        kwargs["eval_strategy"] = "no"
    if wants_length_grouping(config):
        kwargs.setdefault("train_sampling_strategy", "group_by_length")
    return TrainingArguments(**for_installed_transformers(kwargs))


def wants_length_grouping(config: Any) -> bool:
    """Group by length only where it saves padding: batches of more than one unpacked sample.

    HF's grouping sorts mega-batches of 50 optimizer steps longest first, so with one sample
    per device it buys nothing and trains on a length-ordered curriculum instead of a shuffle:
    on the bundled data the first ~10 steps were all ~1,000-token PDCAs, the guardrail samples
    came last.
    """
    return (config.data_args.group_by_length and not config.data_args.packing
            and config.training_args.per_device_train_batch_size > 1)


def for_installed_transformers(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Map the plan's argument names onto the installed ``TrainingArguments``.

    transformers 5 folded ``warmup_ratio`` into ``warmup_steps`` (a float below 1 is a ratio)
    and ``group_by_length`` into ``train_sampling_strategy``, and renamed
    ``gradient_checkpointing`` to ``activation_checkpointing``; older versions have the old names.
    """
    import dataclasses

    from transformers import TrainingArguments

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    kwargs = dict(kwargs)
    if "warmup_ratio" not in known:
        ratio = kwargs.pop("warmup_ratio", 0.0) or 0.0
        if ratio and not kwargs.get("warmup_steps"):
            kwargs["warmup_steps"] = float(ratio)
    if "group_by_length" not in known and kwargs.pop("group_by_length", False):
        kwargs.setdefault("train_sampling_strategy", "group_by_length")
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
        if new in known and old in kwargs:
            value = kwargs.pop(old)
            kwargs.setdefault(new, value)
    if "train_sampling_strategy" not in known:
        strategy = kwargs.pop("train_sampling_strategy", None)
        if strategy == "group_by_length":
            kwargs["group_by_length"] = True
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TrainingError(
            f"training_args {unknown} are not arguments of the installed transformers "
            "TrainingArguments"
        )
    return kwargs


def _apply_mps_settings(config: Any, device: str) -> None:
    if device != "mps":
        return
    ratio = (config.mps_optimization or {}).get("high_watermark_ratio")
    if ratio is not None:
        # Read by PyTorch when the MPS allocator starts; this run's process only.
        os.environ.setdefault("PYTORCH_MPS_HIGH_WATERMARK_RATIO", str(ratio))


# --------------------------------------------------------------------------- checkpoints


def _checkpoints(output_dir: Path) -> list[Path]:
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
    state = _read_json(checkpoint / TRAINER_STATE)
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return f"{TRAINER_STATE} is cut short or unreadable"
    return None


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint that can be resumed from."""
    whole = [p for p in _checkpoints(Path(output_dir)) if checkpoint_problem(p) is None]
    return whole[-1] if whole else None


def _clear_previous_run(output_dir: Path) -> None:
    for path in _checkpoints(output_dir):
        shutil.rmtree(path, ignore_errors=True)
    for name in (STATS_FILE, ADAPTER_WEIGHTS, ADAPTER_CONFIG, INPUTS_FILE):
        (output_dir / name).unlink(missing_ok=True)


def _resume_point(output_dir: Path, run_hash: str, force: bool
                  ) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The checkpoint to resume from: only one written for the same inputs, never with force;
    and the newer, incomplete checkpoints passed over on the way (with what each lacks)."""
    if force:
        return None, []
    recorded = _read_json(output_dir / INPUTS_FILE).get("inputs_hash")
    if recorded != run_hash:
        return None, []
    passed_over: list[tuple[Path, str]] = []
    for checkpoint in reversed(_checkpoints(output_dir)):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint, passed_over
        passed_over.append((checkpoint, problem))
    return None, passed_over


def _drop_incomplete(passed_over: list[tuple[Path, str]], resume_from: Path | None) -> list[str]:
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the run


@dataclass
class TrainingOutcome:
    output_dir: Path
    stats: dict[str, Any]
    skipped: bool = False
    notes: list[str] = field(default_factory=list)


def train(config: Any, *, force: bool = False, callbacks: Sequence[TrainerCallback] = (),
          clock: Callable[[], float] = time.monotonic) -> TrainingOutcome:
    """Train the adapter for ``config``; reuse a finished one trained from the same inputs,
    resume a partly trained one.

    With ``training.time_budget`` the run stops (checkpoint saved, adapter written, stats
    ``complete: false``) when the next step would not fit the budget, counted from this call;
    ``clock`` is the time source of that budget (tests pass one that counts steps). Returns
    the outcome with the stats written to ``training_stats.json``. Raises
    :class:`TrainingDiverged` on NaN/inf (the last good checkpoint stays in ``output_dir``),
    :class:`~loragate.training.data.DataError` on bad data.
    """
    started = clock()
    output_dir = Path(config.output_dir)
    device = select_device(config.training.device)
    base_dir = resolve_base_model(config)
    run_hash = current_inputs_hash(config, base_dir)
    if not force and completed_run_hash(output_dir) == run_hash:
        return TrainingOutcome(output_dir, read_stats(output_dir) or {}, skipped=True)

    _apply_mps_settings(config, device)
    tokenizer = load_tokenizer(base_dir)
    data = prepare_data(config, tokenizer)
    ta = config.training_args
    precision = choose_precision(device, bool(ta.bf16), bool(ta.fp16))
    has_eval = data.eval is not None and len(data.eval.dataset) > 0
    args = build_training_arguments(config, device, precision, has_eval)

    resume_from, passed_over = _resume_point(output_dir, run_hash, force)
    notes: list[str] = []
    with args.main_process_first(desc="prepare output folder"):
        if args.process_index == 0:
            notes += _drop_incomplete(passed_over, resume_from)
            if resume_from is None:
                _clear_previous_run(output_dir)
            output_dir.mkdir(parents=True, exist_ok=True)
            _write_json(output_dir / INPUTS_FILE, {"inputs_hash": run_hash})

    from transformers import set_seed

    set_seed(ta.seed)
    model = load_peft_model(config, base_dir, device, precision)
    guard = make_nonfinite_guard()
    monitor = make_health_monitor(
        device, config.training.loss_range, config.training.grad_norm_warning,
        config.training.memory_budget_gb, announce=args.process_index == 0,
    )
    prior = _prior_runs(resume_from)
    trainer = trainer_class()(
        model=model,
        args=args,
        train_dataset=data.train.dataset,
        eval_dataset=data.eval.dataset if has_eval else None,
        data_collator=make_collator(tokenizer, packing=config.data_args.packing,
                                    pad_to_multiple_of=8 if device == "cuda" else None),
        processing_class=tokenizer,
        callbacks=[guard, monitor, *callbacks],
    )
    _log_tensorboard_under(trainer, output_dir / "runs")
    base_eval_loss, eval_seconds = prior.get("base_eval_loss"), prior.get("eval_seconds", 0.0)
    if has_eval and base_eval_loss is None:
        # The same inputs give the same base loss: an earlier run's is reused on resume.
        before = clock()
        base_eval_loss = _base_eval_loss(trainer, model)
        eval_seconds = clock() - before
    ledger = make_run_ledger(
        budget_s=config.training.time_budget, clock=clock, started=started,
        prior={**prior, "base_eval_loss": base_eval_loss, "eval_seconds": eval_seconds},
        final_reserve_s=float(eval_seconds or 0.0), monitor=monitor)
    trainer.add_callback(ledger)
    resumed_step = _checkpoint_step(resume_from)
    if resume_from is not None:
        notes.append(f"resumed from {resume_from.name} (run {len(ledger.prior_runs) + 1})")
    # The shuffle of the first epoch is drawn from the global generator when the loop starts:
    # seeded here, the work before it (the base eval that a resumed run skips) cannot move it,
    # and a resumed run skips exactly the batches the first run trained on.
    set_seed(ta.seed)
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if guard.tripped_at is not None:
        kept = last_checkpoint(output_dir)
        if trainer.is_world_process_zero():
            # Not "completed": never reused as an adapter, but the Step 1 checks can say why.
            _write_json(output_dir / STATS_FILE, {
                "stats_version": STATS_VERSION, "completed": False, "complete": False,
                "nan_detected": True, "stopped_at_step": guard.tripped_at,
                "reason": guard.reason, "planned_steps": trainer.state.max_steps,
                "completed_steps": trainer.state.global_step,
                "last_good_checkpoint": str(kept) if kept else None, "inputs_hash": run_hash,
                "warnings": monitor.warnings,
                "runs": ledger.runs(trainer.state.global_step, "diverged"),
            })
        raise TrainingDiverged(
            f"training stopped at step {guard.tripped_at}: {guard.reason}. "
            f"Last good checkpoint: {kept if kept else 'none (no checkpoint was saved yet)'}. "
            "Lower training_args.learning_rate (a changed config trains afresh) or fix the "
            "data; running again unchanged resumes from that checkpoint."
        )
    eval_loss = _final_eval_loss(trainer, monitor) if has_eval else None

    stats = _collect_stats(
        config=config, trainer=trainer, result=result, data=data, device=device,
        precision=precision, monitor=monitor, base_dir=base_dir, run_hash=run_hash,
        resumed_step=resumed_step, per_epoch=ledger.steps_per_epoch or 1,
        base_eval_loss=base_eval_loss, eval_loss=eval_loss,
    )
    stats.update(_progress(config, trainer.state, ledger))
    if trainer.is_world_process_zero():
        # The PeftModel saves only the adapter, as safetensors; trainer.save_model would also
        # pickle the training arguments next to it.
        model.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)
        give_files_the_umask_mode(output_dir)
        _write_json(output_dir / STATS_FILE, stats)
    # No rank returns (and maybe starts packaging) before the adapter is on disk.
    wait_for_everyone = getattr(trainer.accelerator, "wait_for_everyone", None)
    if wait_for_everyone is not None:
        wait_for_everyone()
    notes += [precision.note] if precision.note else []
    if not stats["complete"]:
        notes.append(partial_note(stats))
    return TrainingOutcome(output_dir, stats, skipped=False, notes=notes)


def _progress(config: Any, state: Any, ledger: Any) -> dict[str, Any]:
    """How much of the plan is done, and by which runs."""
    planned, done = int(state.max_steps), int(state.global_step)
    per_epoch = ledger.steps_per_epoch or max(
        math.ceil(planned / max(float(state.num_train_epochs or 1), 1e-9)), 1)
    ta = config.training_args
    planned_epochs = float(ta.num_train_epochs) if ta.max_steps <= 0 else planned / per_epoch
    complete = done >= planned
    ended = "plan complete" if complete else (
        "time budget" if ledger.stopped_by_budget else "stopped early")
    runs = ledger.runs(done, ended)
    warnings_seen: list[str] = []
    for run in runs:
        warnings_seen += [w for w in run.get("warnings", []) if w not in warnings_seen]
    return {
        "complete": complete,
        "planned_steps": planned,
        "completed_steps": done,
        "completed_fraction": round(done / planned, 4) if planned else 0.0,
        "steps_per_epoch": per_epoch,
        "planned_epochs": round(planned_epochs, 4),
        "completed_epochs": round(done / per_epoch, 4),
        "time_budget_s": config.training.time_budget,
        "stopped_by": ended,
        "runs": runs,
        "warnings": warnings_seen,
    }


def plan_of(config: Any, data: PreparedData, world_size: int = 1) -> dict[str, Any]:
    """The plan a run of ``config`` on ``data`` follows, and where it would start: what
    ``loragate train --dry-run`` prints. Counts steps as the installed Trainer does."""
    ta = config.training_args
    samples = len(data.train.dataset)
    replay = data.replay or {}
    pending = int(replay.get("samples", 0)) if replay.get("built") is False else 0
    total = samples + pending
    per_device = ta.per_device_train_batch_size * world_size
    drop_last = bool((ta.model_extra or {}).get("dataloader_drop_last", False))
    batches = total // per_device if drop_last else math.ceil(total / per_device)
    per_epoch = steps_per_epoch(batches, ta.gradient_accumulation_steps)
    planned = ta.max_steps if ta.max_steps > 0 else math.ceil(ta.num_train_epochs * per_epoch)
    warmup = ta.warmup_steps or math.ceil(ta.warmup_ratio * planned)
    budget = config.training.time_budget
    plan = {
        "training samples": f"{samples}" + (f" (+{pending} replay samples once the replay "
                                             "set is built)" if pending else ""),
        "replay": (f"{replay.get('samples')} samples, ratio {replay.get('ratio')}"
                   if replay else "off"),
        "held-out samples": len(data.eval.dataset) if data.eval else 0,
        "steps per epoch": per_epoch,
        "planned steps": planned,
        "planned epochs": round(planned / per_epoch, 4) if ta.max_steps > 0
        else ta.num_train_epochs,
        "schedule": f"{ta.lr_scheduler_type}, peak learning rate {ta.learning_rate:g}, "
                    f"{warmup} warm-up steps, gradient clipping at {ta.max_grad_norm:g}",
        "time budget": f"{budget:g} s per run" if budget else "none",
        "next run": _next_run(config),
    }
    return plan


def _next_run(config: Any) -> str:
    output_dir = Path(config.output_dir)
    try:
        run_hash = current_inputs_hash(config)
    except (OSError, ValueError) as exc:
        return f"unknown ({exc})"
    if completed_run_hash(output_dir) == run_hash:
        return f"reuses the finished adapter in {output_dir}"
    resume_from, _ = _resume_point(output_dir, run_hash, force=False)
    if resume_from is None:
        return "starts at step 0"
    runs = len(_prior_runs(resume_from).get("runs") or [])
    return f"resumes from {resume_from} (run {runs + 1})"


def partial_note(stats: dict[str, Any]) -> str:
    """The sentence a partly trained adapter is announced with."""
    why = "at the time budget" if stats.get("stopped_by") == "time budget" else "early"
    return (f"training stopped {why} after {describe_progress(stats)}: the adapter is partly "
            "trained; run again with the same inputs to resume")


def _log_tensorboard_under(trainer: Any, folder: Path) -> None:
    """Pin tensorboard's folder: the base-model eval logs before training starts, and the
    callback would otherwise open its writer under the current directory."""
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "TensorBoardCallback" and not callback.logging_dir:
            callback.logging_dir = str(folder)


def _base_eval_loss(trainer: Any, model: Any) -> float:
    """Hold-out loss of the base model alone (the adapter switched off)."""
    with model.disable_adapter():
        metrics = trainer.evaluate(metric_key_prefix="base")
    return float(metrics["base_loss"])


def _final_eval_loss(trainer: Any, monitor: Any) -> float:
    """Hold-out loss of the trained adapter; reuses the Trainer's own eval at the last step."""
    last = monitor.eval_history[-1] if monitor.eval_history else None
    if last is not None and last["step"] == trainer.state.global_step:
        return float(last["loss"])
    return float(trainer.evaluate()["eval_loss"])


def _checkpoint_step(checkpoint: Path | None) -> int:
    if checkpoint is None:
        return 0
    state = _read_json(checkpoint / TRAINER_STATE)
    return int(state.get("global_step", 0))


def _collect_stats(*, config: Any, trainer: Any, result: Any, data: PreparedData, device: str,
                   precision: Precision, monitor: Any, base_dir: Path, run_hash: str,
                   resumed_step: int, per_epoch: int, base_eval_loss: float | None,
                   eval_loss: float | None) -> dict[str, Any]:
    from loragate import __version__

    state = trainer.state
    metrics = result.metrics
    runtime = float(metrics.get("train_runtime", 0.0))
    epochs_this_run = (state.global_step - resumed_step) / max(per_epoch, 1)
    supervised = data.train.supervised_tokens * epochs_this_run
    grad_norms = [h["grad_norm"] for h in monitor.history if h.get("grad_norm") is not None]
    limit = config.training.grad_norm_warning
    trainable, total = _parameter_counts(trainer.model)
    data_summary = data.train_report.summary()
    data_summary.update(
        truncated=data.train.truncated,
        dropped_too_long=data.train.dropped[:20],
        eval_samples=len(data.eval.dataset) if data.eval else 0,
        leaks_allowed=data.leaks[:20],
        replay=data.replay,
    )
    return {
        "stats_version": STATS_VERSION,
        "completed": True,
        "loragate_version": __version__,
        "inputs_hash": run_hash,
        "config_hash": training_config_hash(config),
        "data_hash": data_hash(config),
        "base_model": str(base_dir),
        "base_fingerprint": base_fingerprint(base_dir),
        "model_name": config.model_name,
        "device": device,
        "precision": precision.name,
        "precision_note": precision.note,
        "world_size": trainer.args.world_size,
        "platform": platform.platform(),
        "seed": config.training_args.seed,
        "epochs": state.epoch,
        "num_train_epochs": state.num_train_epochs,
        "global_step": state.global_step,
        "max_steps": state.max_steps,
        "resumed_from_step": resumed_step,
        "runtime_s": runtime,
        "train_samples": len(data.train.dataset),
        "train_samples_per_second": metrics.get("train_samples_per_second"),
        "train_supervised_tokens_per_epoch": data.train.supervised_tokens,
        "train_tokens_per_epoch": data.train.total_tokens,
        "supervised_tokens_per_second": supervised / runtime if runtime > 0 else None,
        "train_loss": metrics.get("train_loss"),
        "final_train_loss": monitor.history[-1]["loss"] if monitor.history else None,
        "eval_loss": eval_loss,
        "base_eval_loss": base_eval_loss,
        "loss_history": monitor.history,
        "eval_history": monitor.eval_history,
        "loss_range": list(config.training.loss_range),
        "nan_detected": False,
        "grad_norm": {
            "max": max(grad_norms) if grad_norms else None,
            "mean": sum(grad_norms) / len(grad_norms) if grad_norms else None,
            "last": grad_norms[-1] if grad_norms else None,
            "over_limit": monitor.grad_norm_over,
            # Where each one was: a spike at one step reads differently from a drift.
            "over_limit_steps": [h["step"] for h in monitor.history
                                 if (h.get("grad_norm") or 0) > limit][:50],
            "limit": limit,
        },
        "peak_memory_gb": monitor.peak_gb,
        "memory_measure": monitor.memory_kind,
        "memory_budget_gb": config.training.memory_budget_gb,
        "warnings": monitor.warnings,
        "trainable_params": trainable,
        "total_params": total,
        "data": data_summary,
        "lora": config.lora_config.model_dump(mode="json"),
    }


def _parameter_counts(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
