"""Step 1 checks: the plan's validation list, read from a finished training run.

The run folder is the adapter folder under the session config's ``output_dir``
(``--loragate-config``, else the ini's ``loragate_config``); its ``training_stats.json`` is
read through :class:`~loragate.training.stats.TrainingStats`. Without a run every check is
skipped with the reason; train with ``loragate train`` first. A run stopped at its time budget
wrote a partly trained adapter: the checks read it like any other, and ``test_run_completed``
fails saying how much of the plan is done (also recorded in the verdict as
``metrics.training.completed_fraction``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from loragate.artifacts import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from loragate.training.stats import STATS_FILE, TrainingStats

pytestmark = pytest.mark.stage


@pytest.fixture(scope="module")
def run_dir(loragate_settings) -> Path:
    folder = Path(loragate_settings.output_dir)
    if not (folder / STATS_FILE).is_file():
        pytest.skip(f"no finished training run in {folder} (no {STATS_FILE}); "
                    "run `loragate train` first, or pass --loragate-config with its config")
    return folder


@pytest.fixture(scope="module")
def stats(run_dir: Path) -> TrainingStats:
    stats = TrainingStats.read(run_dir)
    if stats is None:
        pytest.fail(f"{run_dir / STATS_FILE}: not readable as training stats")
    return stats


def _finished(stats: TrainingStats) -> TrainingStats:
    """The stats of a run that completed; a stopped run fails the check with its reason."""
    if not stats.completed:
        pytest.fail(f"the training run did not complete: {stats.reason or 'unknown reason'}"
                    f" (stopped at step {stats.stopped_at_step})")
    return stats


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _plan(stats: TrainingStats) -> tuple[int, int]:
    """(steps done, steps planned); stats written before plans were recorded have only the
    Trainer's own counts."""
    done = stats.completed_steps if stats.completed_steps is not None else stats.global_step
    planned = stats.planned_steps if stats.planned_steps is not None else stats.max_steps
    return int(done or 0), int(planned or 0)


def test_run_completed(stats: TrainingStats, verdict_metrics: Any) -> None:
    """The adapter was trained to the end of its plan (a run stopped at its time budget
    leaves it partly trained: gated, but blocked here until a later run resumes it)."""
    done, planned = _plan(stats)
    # Recorded before any assertion, so a partly trained adapter's verdict says how far it got.
    verdict_metrics.add("training", "completed_steps", done)
    verdict_metrics.add("training", "planned_steps", planned)
    verdict_metrics.add("training", "completed_fraction",
                        round(done / planned, 4) if planned else 0.0)
    verdict_metrics.add("training", "runs", len(stats.runs) or 1)
    assert stats.completed, f"the run did not finish: {stats.reason or 'no reason recorded'}"
    assert done > 0
    epochs = (f", {stats.completed_epochs:.2f} of {stats.planned_epochs:g} epochs"
              if stats.completed_epochs is not None and stats.planned_epochs is not None
              else "")
    assert done >= planned and stats.plan_complete, (
        f"partly trained: {done} of {planned} planned steps ({100.0 * done / planned:.0f}%)"
        f"{epochs} in {len(stats.runs) or 1} run(s), stopped by "
        f"{stats.stopped_by or 'unknown'}; run `loragate train` or `loragate pipeline` again "
        "with the same inputs to resume")


def test_no_nan_or_inf(stats: TrainingStats) -> None:
    assert stats.nan_detected is False, (
        f"NaN/inf at step {stats.stopped_at_step}: {stats.reason}")
    losses = [h.loss for h in stats.loss_history]
    assert losses, "no training loss was logged"
    assert all(_finite(x) for x in losses), f"non-finite losses: {losses}"
    for key in ("train_loss", "eval_loss"):
        assert _finite(getattr(stats, key)), f"{key} is {getattr(stats, key)}"


def test_loss_converged_within_the_configured_range(stats: TrainingStats) -> None:
    stats = _finished(stats)
    low, high = stats.loss_range
    final = stats.final_train_loss
    assert low <= final <= high, (
        f"final training loss {final:.3f} outside the configured range [{low}, {high}]")
    first = stats.loss_history[0].loss
    assert final < first, f"training loss did not go down ({first:.3f} -> {final:.3f})"


def test_adapter_beats_the_base_on_the_hold_out_set(stats: TrainingStats) -> None:
    stats = _finished(stats)
    assert _finite(stats.base_eval_loss), "no base-model eval loss recorded"
    assert stats.eval_loss < stats.base_eval_loss, (
        f"eval loss {stats.eval_loss:.3f} is not below the base model's "
        f"{stats.base_eval_loss:.3f}")


def test_grad_norms_stable(stats: TrainingStats) -> None:
    stats = _finished(stats)
    grad = stats.grad_norm
    norms = [h.grad_norm for h in stats.loss_history if h.grad_norm is not None]
    assert norms, "no gradient norms were logged"
    assert all(_finite(n) for n in norms)
    # A single early spike is normal; a run that keeps exceeding the limit is unstable.
    over = sum(1 for n in norms if n > grad.limit)
    assert over <= max(1, len(norms) // 10), (
        f"{over} of {len(norms)} logged gradient norms above {grad.limit} "
        f"(max {grad.max:.2f})")
    tail = norms[len(norms) // 2:]
    steps = [h.step for h in stats.loss_history if h.grad_norm is not None]
    late_step = steps[len(norms) // 2 + tail.index(max(tail))]
    assert max(tail) <= grad.limit, (
        f"gradient norm {max(tail):.2f} late in training (step {late_step} of "
        f"{steps[-1]})")


def test_memory_under_budget(stats: TrainingStats) -> None:
    stats = _finished(stats)
    assert _finite(stats.peak_memory_gb) and stats.peak_memory_gb > 0
    assert stats.peak_memory_gb <= stats.memory_budget_gb, (
        f"peak memory {stats.peak_memory_gb:.2f} GB ({stats.memory_measure}) above the "
        f"budget of {stats.memory_budget_gb} GB")


def test_adapter_saved_as_safetensors(run_dir: Path) -> None:
    assert (run_dir / ADAPTER_WEIGHTS).is_file()
    assert (run_dir / ADAPTER_CONFIG).is_file()
    assert not list(run_dir.glob("adapter_model.bin")), "a pickled adapter is present"


def test_adapter_loads_onto_its_base(run_dir: Path, stats: TrainingStats) -> None:
    stats = _finished(stats)
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    weights = load_file(run_dir / ADAPTER_WEIGHTS)
    assert weights and all(_finite(float(t.abs().max())) for t in weights.values())
    assert any("lora_B" in name and float(t.abs().max()) > 0 for name, t in weights.items()), \
        "every lora_B is still zero: the adapter learned nothing"
    base_dir = Path(stats.base_model)
    if not (base_dir / "config.json").is_file():
        pytest.skip(f"the base model folder {base_dir} is gone; cannot load the adapter onto it")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), run_dir)
    trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert trainable == stats.trainable_params
