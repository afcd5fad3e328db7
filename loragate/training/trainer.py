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

import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loragate.artifacts import InputsStamp, give_files_the_umask_mode, model_folder_fingerprint
from loragate.base_model import load_tokenizer, resolve_base_model
from loragate.training.checkpoints import (
    checkpoint_step,
    clear_previous_run,
    drop_incomplete,
    last_checkpoint,
    prior_runs,
    resume_point,
)
from loragate.training.compat import for_installed_transformers, steps_per_epoch, trainer_class
from loragate.training.data import (
    LoadReport,
    ProtectedPrompt,
    check_no_leaks,
    eval_prompts,
    find_leaks,
    harness_prompts,
    load_samples,
    prompts_in_file,
)
from loragate.training.device import (
    Precision,
    apply_mps_settings,
    choose_precision,
    local_rank,
    select_device,
)
from loragate.training.errors import TrainingDiverged, TrainingError
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
from loragate.training.stats import (
    INPUTS_FILE,
    STATS_VERSION,
    TrainingStats,
    completed_run_hash,
    current_inputs_hash,
    data_hash,
    partial_note,
    training_config_hash,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, TrainerCallback


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


def load_peft_model(config: Any, base_dir: Path, device: str, precision: Precision) -> Any:
    """The base model with LoRA adapters from ``lora_config``; QLoRA when asked (CUDA only)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": precision.torch_dtype()}
    if config.training.qlora:
        kwargs["quantization_config"] = _qlora_quantization(device, precision)
        kwargs["device_map"] = {"": local_rank()}
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


@dataclass
class TrainingOutcome:
    output_dir: Path
    stats: TrainingStats
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
        return TrainingOutcome(output_dir, TrainingStats.read(output_dir) or TrainingStats(),
                               skipped=True)

    apply_mps_settings(config, device)
    tokenizer = load_tokenizer(base_dir)
    data = prepare_data(config, tokenizer)
    ta = config.training_args
    precision = choose_precision(device, bool(ta.bf16), bool(ta.fp16))
    has_eval = data.eval is not None and len(data.eval.dataset) > 0
    args = build_training_arguments(config, device, precision, has_eval)

    resume_from, passed_over = resume_point(output_dir, run_hash, force)
    notes: list[str] = []
    with args.main_process_first(desc="prepare output folder"):
        if args.process_index == 0:
            notes += drop_incomplete(passed_over, resume_from)
            if resume_from is None:
                clear_previous_run(output_dir)
            output_dir.mkdir(parents=True, exist_ok=True)
            InputsStamp(inputs_hash=run_hash).write(output_dir / INPUTS_FILE)

    from transformers import set_seed

    from loragate.training.callbacks import HealthMonitor, NonFiniteGuard, RunLedger

    set_seed(ta.seed)
    model = load_peft_model(config, base_dir, device, precision)
    guard = NonFiniteGuard()
    monitor = HealthMonitor(
        device, config.training.loss_range, config.training.grad_norm_warning,
        config.training.memory_budget_gb, announce=args.process_index == 0,
    )
    prior = prior_runs(resume_from)
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
    ledger = RunLedger(
        budget_s=config.training.time_budget, clock=clock, started=started,
        prior={**prior, "base_eval_loss": base_eval_loss, "eval_seconds": eval_seconds},
        final_reserve_s=float(eval_seconds or 0.0), monitor=monitor)
    trainer.add_callback(ledger)
    resumed_step = checkpoint_step(resume_from)
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
            TrainingStats(
                completed=False, complete=False, nan_detected=True,
                stopped_at_step=guard.tripped_at, reason=guard.reason,
                planned_steps=trainer.state.max_steps,
                completed_steps=trainer.state.global_step,
                last_good_checkpoint=str(kept) if kept else None, inputs_hash=run_hash,
                warnings=monitor.warnings,
                runs=ledger.runs(trainer.state.global_step, "diverged"),
            ).write(output_dir)
        raise TrainingDiverged(
            f"training stopped at step {guard.tripped_at}: {guard.reason}. "
            f"Last good checkpoint: {kept if kept else 'none (no checkpoint was saved yet)'}. "
            "Lower training_args.learning_rate (a changed config trains afresh) or fix the "
            "data; running again unchanged resumes from that checkpoint."
        )
    eval_loss = _final_eval_loss(trainer, monitor) if has_eval else None

    described = _collect_stats(
        config=config, trainer=trainer, result=result, data=data, device=device,
        precision=precision, monitor=monitor, base_dir=base_dir, run_hash=run_hash,
        resumed_step=resumed_step, per_epoch=ledger.steps_per_epoch or 1,
        base_eval_loss=base_eval_loss, eval_loss=eval_loss,
    )
    # The progress comes last: its warnings are those of every run, not this run's alone.
    stats = TrainingStats(**{**described, **_progress(config, trainer.state, ledger)})
    if trainer.is_world_process_zero():
        # The PeftModel saves only the adapter, as safetensors; trainer.save_model would also
        # pickle the training arguments next to it.
        model.save_pretrained(output_dir, safe_serialization=True)
        tokenizer.save_pretrained(output_dir)
        give_files_the_umask_mode(output_dir)
        stats.write(output_dir)
    # No rank returns (and maybe starts packaging) before the adapter is on disk.
    wait_for_everyone = getattr(trainer.accelerator, "wait_for_everyone", None)
    if wait_for_everyone is not None:
        wait_for_everyone()
    notes += [precision.note] if precision.note else []
    if not stats.complete:
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
    resume_from, _ = resume_point(output_dir, run_hash, force=False)
    if resume_from is None:
        return "starts at step 0"
    runs = len(prior_runs(resume_from).get("runs") or [])
    return f"resumes from {resume_from} (run {runs + 1})"


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


def _collect_stats(*, config: Any, trainer: Any, result: Any, data: PreparedData, device: str,
                   precision: Precision, monitor: Any, base_dir: Path, run_hash: str,
                   resumed_step: int, per_epoch: int, base_eval_loss: float | None,
                   eval_loss: float | None) -> dict[str, Any]:
    """The fields of :class:`TrainingStats` that describe the run (not its progress)."""
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
        "base_fingerprint": model_folder_fingerprint(base_dir),
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

