"""Training runs on the tiny random-init Llama: outputs, reuse, NaN stop, resume, DDP, devices."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loragate.artifacts import ADAPTER_WEIGHTS
from loragate.config import LoragateConfig
from loragate.training import trainer as trainer_mod
from loragate.training.callbacks import HealthMonitor
from loragate.training.checkpoints import IncompleteCheckpointWarning, checkpoint_problem
from loragate.training.compat import for_installed_transformers
from loragate.training.device import choose_precision, select_device
from loragate.training.errors import TrainingDiverged, TrainingError
from loragate.training.stats import STATS_FILE
from loragate.training.trainer import train, wants_length_grouping

REPO = Path(__file__).resolve().parents[1]


def write_data(folder: Path, n_train: int = 12, n_eval: int = 4) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    words = ["plan", "do", "check", "act", "tron", "scenario", "init", "unit"]

    def record(i: int) -> str:
        body = " ".join(words[(i + k) % len(words)] for k in range(3 + i % 5))
        return json.dumps({"instruction": f"Echo item {i}", "input": body, "output": body})

    train_file = folder / "train.jsonl"
    eval_file = folder / "eval.jsonl"
    train_file.write_text("\n".join(record(i) for i in range(n_train)) + "\n")
    eval_file.write_text("\n".join(record(100 + i) for i in range(n_eval)) + "\n")
    return train_file, eval_file


def tiny_config(tmp_path: Path, base: Path, **training_args) -> LoragateConfig:
    train_file, eval_file = write_data(tmp_path / "data")
    args = {"max_steps": 4, "per_device_train_batch_size": 2, "per_device_eval_batch_size": 4,
            "logging_steps": 1, "save_steps": 2, "eval_steps": 100, "learning_rate": 1e-3,
            "warmup_ratio": 0.0, "report_to": [], "dataloader_num_workers": 0}
    args.update(training_args)
    return LoragateConfig.model_validate({
        "model_name": "tiny-llama",
        "output_dir": str(tmp_path / "out"),
        "dataset_files": [str(train_file)],
        "eval_file": str(eval_file),
        "training_args": args,
        "lora_config": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
        "data_args": {"max_seq_length": 128},
        "base": {"source": "path", "path": str(base)},
        "training": {"device": "cpu"},
        "gates": {"prompts_dir": str(tmp_path / "no-prompts")},
        "canaries": {"file": str(tmp_path / "no-canaries.jsonl")},
    })


def test_run_writes_a_safetensors_adapter_and_stats_then_is_reused(
        tmp_path: Path, tiny_llama_dir: Path) -> None:
    config = tiny_config(tmp_path, tiny_llama_dir, report_to=["tensorboard"])
    outcome = train(config)
    out = Path(config.output_dir)
    assert not outcome.skipped
    assert (out / ADAPTER_WEIGHTS).is_file()
    assert (out / "adapter_config.json").is_file()
    assert (out / "tokenizer_config.json").is_file()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))
    made_by_open = tmp_path / "made-by-open"
    made_by_open.write_text("")
    # safetensors writes an owner-only file; a model server running as another user reads it.
    assert ((out / ADAPTER_WEIGHTS).stat().st_mode & 0o777
            == made_by_open.stat().st_mode & 0o777)
    assert list((out / "runs").rglob("events.out.tfevents.*"))
    assert not (Path.cwd() / "runs").exists()
    stats = json.loads((out / STATS_FILE).read_text())
    assert stats["completed"] is True and stats["complete"] is True
    assert stats["global_step"] == 4
    assert (stats["planned_steps"], stats["completed_steps"], stats["completed_fraction"]) == \
        (4, 4, 1.0)
    assert (stats["planned_epochs"], stats["completed_epochs"]) == (pytest.approx(0.6667),
                                                                    pytest.approx(0.6667))
    assert [(r["run"], r["steps"], r["ended"]) for r in stats["runs"]] == [
        (1, 4, "plan complete")]
    assert stats["time_budget_s"] is None
    assert stats["seed"] == 42
    assert stats["device"] == "cpu" and stats["precision"] == "fp32"
    for key in ("train_loss", "eval_loss", "base_eval_loss", "supervised_tokens_per_second",
                "train_samples_per_second", "peak_memory_gb", "runtime_s"):
        assert isinstance(stats[key], float) and math.isfinite(stats[key]), key
    assert stats["supervised_tokens_per_second"] > 0
    assert len(stats["loss_history"]) == 4
    assert stats["data"]["samples"] == 12
    assert len(stats["data_hash"]) == 64 and len(stats["inputs_hash"]) == 64

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    loaded = PeftModel.from_pretrained(base, out)
    assert any("lora_B" in name for name, _ in loaded.named_parameters())

    again = train(config)
    assert again.skipped
    assert again.stats.inputs_hash == stats["inputs_hash"]

    config.training_args.learning_rate = 5e-4  # a changed input trains again
    assert not train(config).skipped


def test_forced_nan_stops_the_run_and_keeps_the_last_good_checkpoint(
        tmp_path: Path, tiny_llama_dir: Path) -> None:
    import torch
    from transformers import TrainerCallback

    class PoisonAfterStep2(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 2:
                with torch.no_grad():
                    next(p for n, p in model.named_parameters() if "lora_B" in n).fill_(
                        float("nan"))

    config = tiny_config(tmp_path, tiny_llama_dir, max_steps=6)
    with pytest.raises(TrainingDiverged) as info:
        train(config, callbacks=[PoisonAfterStep2()])
    out = Path(config.output_dir)
    message = str(info.value)
    assert "step 3" in message and "checkpoint-2" in message
    assert (out / "checkpoint-2").is_dir()
    assert not (out / "checkpoint-4").exists()
    assert not (out / ADAPTER_WEIGHTS).exists()
    stats = json.loads((out / STATS_FILE).read_text())
    assert stats["completed"] is False and stats["nan_detected"] is True
    assert stats["complete"] is False
    assert stats["stopped_at_step"] == 3
    assert stats["last_good_checkpoint"].endswith("checkpoint-2")

    from safetensors.torch import load_file

    weights = load_file(out / "checkpoint-2" / ADAPTER_WEIGHTS)
    assert all(torch.isfinite(t).all() for t in weights.values())


class Interrupt(Exception):
    pass


def test_resume_continues_from_the_saved_step(tmp_path: Path, tiny_llama_dir: Path) -> None:
    from transformers import TrainerCallback

    class StopAtStep3(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise Interrupt

    config = tiny_config(tmp_path, tiny_llama_dir)
    with pytest.raises(Interrupt):
        train(config, callbacks=[StopAtStep3()])
    out = Path(config.output_dir)
    assert (out / "checkpoint-2").is_dir() and not (out / STATS_FILE).exists()

    outcome = train(config)
    assert outcome.stats.resumed_from_step == 2
    assert outcome.stats.global_step == 4
    # The history covers the whole plan: steps 1-2 come from checkpoint-2's log.
    assert [h.step for h in outcome.stats.loss_history] == [1, 2, 3, 4]
    assert outcome.stats.complete is True
    assert [(r.to_step, r.ended) for r in outcome.stats.runs] == [
        (2, "interrupted"), (4, "plan complete")]

    # --force starts over: no resume, earlier checkpoints dropped.
    fresh = train(config, force=True)
    assert fresh.stats.resumed_from_step == 0
    assert [h.step for h in fresh.stats.loss_history] == [1, 2, 3, 4]


@pytest.mark.parametrize("lost", ["adapter_model.safetensors", "optimizer.pt",
                                  "trainer_state.json", "trainer_state.json:cut"])
def test_a_checkpoint_left_incomplete_is_skipped_and_training_resumes_from_the_last_whole_one(
        tmp_path: Path, tiny_llama_dir: Path, lost: str) -> None:
    from transformers import TrainerCallback

    class StopAtStep5(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 5:
                raise Interrupt

    config = tiny_config(tmp_path, tiny_llama_dir, max_steps=6)
    with pytest.raises(Interrupt):
        train(config, callbacks=[StopAtStep5()])
    out = Path(config.output_dir)
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()
    # As if the run had been killed while the Trainer was writing checkpoint-4.
    name, _, how = lost.partition(":")
    damaged = out / "checkpoint-4" / name
    if how == "cut":
        damaged.write_text(damaged.read_text()[:40])
    else:
        damaged.unlink()

    with pytest.warns(IncompleteCheckpointWarning) as caught:
        outcome = train(config)
    message = str(caught[0].message)
    assert "checkpoint-4 is incomplete" in message and "resuming from checkpoint-2" in message
    assert (name in message) if how != "cut" else ("cut short or unreadable" in message)
    assert outcome.stats.resumed_from_step == 2
    assert outcome.stats.global_step == 6
    assert [h.step for h in outcome.stats.loss_history] == [1, 2, 3, 4, 5, 6]
    assert any("checkpoint-4 is incomplete" in note for note in outcome.notes)
    assert checkpoint_problem(out / "checkpoint-4") is None  # saved again, whole


def test_without_any_whole_checkpoint_training_starts_over(tmp_path: Path,
                                                          tiny_llama_dir: Path) -> None:
    from transformers import TrainerCallback

    class StopAtStep3(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise Interrupt

    config = tiny_config(tmp_path, tiny_llama_dir)
    with pytest.raises(Interrupt):
        train(config, callbacks=[StopAtStep3()])
    out = Path(config.output_dir)
    (out / "checkpoint-2" / "optimizer.pt").unlink()
    with pytest.warns(IncompleteCheckpointWarning,
                      match=r"checkpoint-2 is incomplete \(missing optimizer\.pt\).*starts over"):
        outcome = train(config)
    assert outcome.stats.resumed_from_step == 0
    assert [h.step for h in outcome.stats.loss_history] == [1, 2, 3, 4]


def test_two_process_gloo_run_produces_one_adapter(tmp_path: Path, tiny_llama_dir: Path) -> None:
    config = tiny_config(tmp_path, tiny_llama_dir, max_steps=2, save_steps=100)
    config_file = tmp_path / "ddp.json"
    config_file.write_text(config.model_dump_json())
    # Prepend, not replace: an environment that brings its packages on PYTHONPATH keeps them.
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=pythonpath)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "loragate.training.cli", "--config",
               str(config_file)]
    # Own process group: on a timeout the workers are killed too, not only torchrun.
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"the 2-process run did not finish in 300 s:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    out = Path(config.output_dir)
    assert len(list(out.glob(ADAPTER_WEIGHTS))) == 1
    stats = json.loads((out / STATS_FILE).read_text())
    assert stats["world_size"] == 2
    assert stats["global_step"] == 2
    assert stdout.count("adapter written to") == 1


def test_bad_data_line_fails_before_any_model_is_loaded(tmp_path: Path,
                                                        tiny_llama_dir: Path) -> None:
    from loragate.training.data import DataError

    config = tiny_config(tmp_path, tiny_llama_dir)
    with config.dataset_files[0].open("a") as handle:
        handle.write('{"instruction": "x", "output": ""}\n')
    with pytest.raises(DataError, match=r"train.jsonl:13: field 'output' is empty"):
        train(config)


def test_eval_leak_fails_the_run(tmp_path: Path, tiny_llama_dir: Path) -> None:
    from loragate.training.data import EvalLeakError

    config = tiny_config(tmp_path, tiny_llama_dir)
    leaked = json.loads(config.eval_file.read_text().splitlines()[0])
    leaked["instruction"] = "  " + leaked["instruction"].upper().replace(" ", "\t ")
    leaked["output"] = "a different answer"
    with config.dataset_files[0].open("a") as handle:
        handle.write(json.dumps(leaked) + "\n")
    with pytest.raises(EvalLeakError, match="eval.jsonl:1"):
        train(config)


# --------------------------------------------------------------------------- device, precision


def fake_torch(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, bf16: bool) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda *a: bf16, raising=False)


@pytest.mark.parametrize(("cuda", "mps", "expected"), [
    (True, True, "cuda"), (False, True, "mps"), (False, False, "cpu"),
])
def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected) -> None:
    fake_torch(monkeypatch, cuda=cuda, mps=mps, bf16=True)
    assert select_device("auto") == expected


def test_an_unavailable_device_is_an_error(monkeypatch) -> None:
    fake_torch(monkeypatch, cuda=False, mps=False, bf16=False)
    with pytest.raises(TrainingError, match="'cuda' but no cuda device"):
        select_device("cuda")
    assert select_device("cpu") == "cpu"


def test_precision_bf16_where_supported_fp32_on_cpu(monkeypatch) -> None:
    fake_torch(monkeypatch, cuda=True, mps=False, bf16=True)
    assert choose_precision("cuda", True, False).name == "bf16"
    assert choose_precision("cuda", False, False).name == "fp32"
    cpu = choose_precision("cpu", True, False)
    assert cpu.name == "fp32" and "CPU" in cpu.note
    fake_torch(monkeypatch, cuda=True, mps=True, bf16=False)
    assert choose_precision("cuda", True, False).name == "fp16"
    assert choose_precision("mps", True, False).name == "fp32"


def test_qlora_needs_cuda() -> None:
    with pytest.raises(TrainingError, match="qlora needs a CUDA device"):
        trainer_mod._qlora_quantization("cpu", choose_precision("cpu", False, False))


def test_plan_argument_names_map_onto_installed_transformers() -> None:
    import dataclasses

    from transformers import TrainingArguments

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    mapped = for_installed_transformers(
        {"output_dir": "x", "warmup_ratio": 0.03, "warmup_steps": 0, "group_by_length": True})
    assert set(mapped) <= known
    if "warmup_ratio" not in known:
        assert mapped["warmup_steps"] == pytest.approx(0.03)
    renamed = for_installed_transformers({"gradient_checkpointing": True})
    assert True in renamed.values()
    with pytest.raises(TrainingError, match="not_an_argument"):
        for_installed_transformers({"not_an_argument": 1})


@pytest.mark.parametrize(("batch", "packing", "grouped"),
                         [(2, False, True), (1, False, False), (2, True, False)])
def test_length_grouping_only_where_it_saves_padding(tmp_path: Path, batch: int, packing: bool,
                                                     grouped: bool) -> None:
    config = tiny_config(tmp_path, tmp_path / "base", per_device_train_batch_size=batch)
    config.data_args.packing = packing
    assert wants_length_grouping(config) is grouped


# --------------------------------------------------------------------------- warning signs


class State:
    def __init__(self, step: int, epoch: float) -> None:
        self.global_step, self.epoch = step, epoch


def log_losses(monitor, first_step: int, epoch: float, losses: list[float],
               grad_norm: float = 1.0) -> None:
    for offset, loss in enumerate(losses):
        monitor.on_log(None, State(first_step + offset, epoch), None,
                       logs={"loss": loss, "grad_norm": grad_norm})


def test_warning_signs_are_recorded_once_each() -> None:
    monitor = HealthMonitor("cpu", (0.4, 1.5), 5.0, memory_budget_gb=1e-6, announce=False)
    log_losses(monitor, 1, 0.5, [2.0, 2.0, 2.0])
    assert monitor.warnings == []  # a high loss before epoch 1 is normal
    log_losses(monitor, 10, 1.2, [1.8], grad_norm=7.0)
    log_losses(monitor, 11, 1.3, [1.7], grad_norm=9.0)
    log_losses(monitor, 20, 2.0, [0.2] * 10)
    monitor.on_train_end(None, State(30, 2.0), None)
    text = "\n".join(monitor.warnings)
    assert len(monitor.warnings) == 4
    assert "1.950 > 1.5 after epoch 1 (mean of the last 4 logged losses, step 10)" in text
    assert "0.350 < 0.4 (mean of the last 10 logged losses, step 28)" in text
    assert "gradient norm 7.00 > 5.0" in text
    assert "above the budget" in text and "cpu rss" in text
    assert monitor.grad_norm_over == 2


def test_one_outlying_batch_loss_is_not_a_warning() -> None:
    """The losses around the end of epoch 1 of a real 2-epoch run (partial last batch)."""
    monitor = HealthMonitor("cpu", (0.4, 1.5), 50.0, memory_budget_gb=99, announce=False)
    log_losses(monitor, 334, 0.99, [0.5, 0.45, 0.6, 0.4, 0.45, 0.29, 1.66, 0.35, 0.56])
    log_losses(monitor, 343, 1.0, [2.32, 0.19, 0.17, 0.17])
    early = HealthMonitor("cpu", (0.4, 1.5), 50.0, memory_budget_gb=99, announce=False)
    log_losses(early, 14, 0.05, [0.9, 0.88, 0.87, 0.64, 0.63, 0.44, 0.35, 0.59])
    assert monitor.warnings == [] and early.warnings == []


# --------------------------------------------------------------------------- loragate train


def write_config_file(tmp_path: Path, config: LoragateConfig) -> Path:
    path = tmp_path / "run.json"
    path.write_text(config.model_dump_json())
    return path


def test_cli_trains_then_skips_unchanged_inputs_unless_forced(
        tmp_path: Path, tiny_llama_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loragate.training.cli import main

    config_file = write_config_file(tmp_path, tiny_config(tmp_path, tiny_llama_dir, max_steps=1))
    assert main(["--config", str(config_file)]) == 0
    assert "adapter written to" in capsys.readouterr().out
    assert main(["--config", str(config_file)]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert main(["--config", str(config_file), "--force"]) == 0
    assert "adapter written to" in capsys.readouterr().out


def test_cli_reports_bad_data_with_file_and_line(
        tmp_path: Path, tiny_llama_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loragate.exit_codes import ExitCode
    from loragate.training.cli import main

    config = tiny_config(tmp_path, tiny_llama_dir)
    with config.dataset_files[0].open("a") as handle:
        handle.write("{not json\n")
    assert main(["--config", str(write_config_file(tmp_path, config))]) == ExitCode.USAGE
    assert "train.jsonl:13: invalid JSON" in capsys.readouterr().err


# --------------------------------------------------------------------------- LoRA placement


def test_layers_to_transform_adapts_only_the_named_layers(tmp_path: Path,
                                                          tiny_llama_dir: Path) -> None:
    from loragate.training.device import Precision
    from loragate.training.stats import training_config_hash
    from loragate.training.trainer import load_peft_model

    config = tiny_config(tmp_path, tiny_llama_dir)
    everywhere = training_config_hash(config)
    assert "layers_to_transform" not in config.lora_config.model_dump(mode="json",
                                                                      exclude_none=True)
    config.lora_config.layers_to_transform = [1]
    model = load_peft_model(config, tiny_llama_dir, "cpu", Precision("fp32"))
    adapted = {name.split(".layers.")[1].split(".")[0]
               for name, _ in model.named_parameters() if "lora_A" in name}
    assert adapted == {"1"}
    assert training_config_hash(config) != everywhere
