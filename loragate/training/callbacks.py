"""The Trainer callbacks of a loragate run: the guard that stops at the first NaN, the monitor
that records loss, grad norms and memory with the plan's warning signs, and the ledger that
keeps the record of the runs and stops a run at its time budget.

Importing this module imports transformers; the trainer imports it when a run starts.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from loragate.artifacts import write_json_durably
from loragate.training.checkpoints import RUNS_FILE
from loragate.training.compat import steps_per_epoch
from loragate.training.device import agree_across_processes, peak_memory_gb


def _finite(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and math.isfinite(value))


class NonFiniteGuard(TrainerCallback):
    """Stops at the first NaN/inf weight or logged loss, before it is saved.

    The Trainer's logs hide NaN losses (``logging_nan_inf_filter``), so the check looks at the
    trainable weights after each optimizer step: a NaN loss makes NaN gradients and NaN LoRA
    weights. Stopping here also cancels this step's save, so the last checkpoint is good.
    """

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



def _first_nonfinite_parameter(model: Any) -> str | None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad and not torch.isfinite(param).all():
                return name
    return None


# The loss warnings read a moving mean: one logged loss is one batch. On a 2-epoch CUDA run
# of the bundled data, the 2-sample last batch of epoch 1 logged 2.32 between neighbours of
# 0.2-0.6, and step 23 logged 0.35 while its ten-step mean was 0.7; both tripped a warning.
LOSS_WINDOW = 10
MIN_LOSS_LOGS = 3


class HealthMonitor(TrainerCallback):
    """Records loss, grad norms and peak memory, and warns of the plan's warning signs."""

    def __init__(self, device: str, loss_range: Sequence[float], grad_norm_limit: float,
                 memory_budget_gb: float, announce: bool) -> None:
        self.device, self.announce = device, announce
        self.low, self.high = loss_range
        self.grad_norm_limit, self.memory_budget_gb = grad_norm_limit, memory_budget_gb
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
        if self.announce:
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
                                  if (h.get("grad_norm") or 0) > self.grad_norm_limit)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        used, self.memory_kind = peak_memory_gb(self.device)
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
            if epoch >= 1.0 and mean > self.high:
                self.warn("loss_high", f"training loss {mean:.3f} > {self.high} after epoch 1 "
                          f"{where}: the model is not learning the format")
            if mean < self.low:
                self.warn("loss_low", f"training loss {mean:.3f} < {self.low} {where}: "
                          "likely memorising the training set")
        if grad_norm is not None and grad_norm > self.grad_norm_limit:
            self.grad_norm_over += 1
            self.warn("grad_norm", f"gradient norm {grad_norm:.2f} > {self.grad_norm_limit} "
                      f"(step {state.global_step}): unstable; lower the learning rate")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        used, self.memory_kind = peak_memory_gb(self.device)
        self.peak_gb = max(self.peak_gb, used)
        if self.peak_gb > self.memory_budget_gb:
            self.warn("memory", f"peak memory {self.peak_gb:.2f} GB ({self.memory_kind}) "
                      f"is above the budget of {self.memory_budget_gb} GB")


def _history_entry(logs: dict[str, Any], step: int, epoch: float | None) -> dict[str, Any]:
    return {"step": step, "epoch": round(epoch or 0.0, 4), "loss": logs["loss"],
            "grad_norm": logs.get("grad_norm"), "learning_rate": logs.get("learning_rate")}


class RunLedger(TrainerCallback):
    """Keeps the record of the runs that trained this adapter and stops the run at its time
    budget.

    After each optimizer step it predicts whether one more step (at this run's mean step
    time) and the final evaluation would still end within ``budget_s`` of ``started``; when
    not, it asks the Trainer to save a checkpoint at this step and stop. Every checkpoint
    gets ``loragate_runs.json``: the runs so far, so the run that resumes from it continues
    the record (and reuses the base model's eval loss instead of computing it again).
    """

    def __init__(self, *, budget_s: float | None, clock: Callable[[], float],
                 started: float, prior: dict[str, Any], final_reserve_s: float,
                 monitor: HealthMonitor) -> None:
        self.budget_s, self.clock, self.started = budget_s, clock, started
        self.final_reserve_s, self.monitor = final_reserve_s, monitor
        self.prior_runs: list[dict[str, Any]] = list(prior.get("runs") or [])
        self.start_step = 0
        self.loop_started = self.started
        self.steps_per_epoch: int | None = None
        self.stopped_by_budget = False
        self.extra: dict[str, Any] = {k: v for k, v in prior.items() if k != "runs"}

    def on_train_begin(self, args: Any, state: Any, control: Any,
                       train_dataloader: Any = None, **kwargs: Any) -> None:
        self.start_step = state.global_step
        self.loop_started = self.clock()
        if train_dataloader is not None:
            self.steps_per_epoch = steps_per_epoch(len(train_dataloader),
                                                   args.gradient_accumulation_steps)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.budget_s is None or state.global_step >= state.max_steps:
            return
        now = self.clock()
        done = max(state.global_step - self.start_step, 1)
        per_step = (now - self.loop_started) / done
        late = (now - self.started) + per_step + self.final_reserve_s > self.budget_s
        over = agree_across_processes(late, args)
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
            write_json_durably(folder / RUNS_FILE, self.payload(state.global_step, ended))

    def this_run(self, step: int, ended: str) -> dict[str, Any]:
        return {"run": len(self.prior_runs) + 1, "from_step": self.start_step,
                "to_step": step, "steps": step - self.start_step,
                "seconds": round(self.clock() - self.started, 1), "ended": ended,
                "warnings": list(self.monitor.warnings)}

    def runs(self, step: int, ended: str) -> list[dict[str, Any]]:
        return [*self.prior_runs, self.this_run(step, ended)]

    def payload(self, step: int, ended: str) -> dict[str, Any]:
        return {**self.extra, "runs": self.runs(step, ended)}
