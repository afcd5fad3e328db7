"""Training to a time budget across runs, on the tiny random-init Llama.

The budget is read through ``train(..., clock=...)``: the tests give a clock at which every
optimizer step takes 10 s and nothing else takes time, so the stop step is exact while the
stop itself goes through the real code path (the callback, the Trainer's save, the stats).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loragate.artifacts import ADAPTER_WEIGHTS
from loragate.config import LoragateConfig, TrainingSettings, parse_duration
from loragate.training.checkpoints import RUNS_FILE, checkpoint_problem
from loragate.training.stats import (
    STATS_FILE,
    TrainingStats,
    completed_run_hash,
    describe_progress,
    training_config_hash,
)
from loragate.training.trainer import train
from tests.test_training_run import tiny_config

STEP_SECONDS = 10.0


class StepClock:
    """A clock that only moves when an optimizer step begins: by STEP_SECONDS."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ticking(clock: StepClock):
    from transformers import TrainerCallback

    class Tick(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.now += STEP_SECONDS

    return Tick()


def run(config: LoragateConfig, budget_steps: float | None, **kwargs):
    """One run whose budget fits ``budget_steps`` steps (None: no budget)."""
    config.training.time_budget = None if budget_steps is None \
        else budget_steps * STEP_SECONDS + STEP_SECONDS / 2
    clock = StepClock()
    return train(config, callbacks=[ticking(clock)], clock=clock, **kwargs)


def lora_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / ADAPTER_WEIGHTS)


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def schedule(stats: TrainingStats) -> dict[int, float]:
    """The learning rate of every logged step."""
    return {h.step: h.learning_rate for h in stats.loss_history}


@pytest.fixture
def warm_cosine():
    # A schedule whose every step has its own learning rate: warm-up then cosine decay.
    return {"max_steps": 6, "warmup_steps": 2, "lr_scheduler_type": "cosine",
            "save_steps": 100}


def test_budget_stops_with_a_checkpoint_and_the_resumed_run_equals_one_uninterrupted_run(
        tmp_path: Path, tiny_llama_dir: Path, warm_cosine: dict) -> None:
    whole = tiny_config(tmp_path / "whole", tiny_llama_dir, **warm_cosine)
    reference = run(whole, None).stats

    config = tiny_config(tmp_path / "split", tiny_llama_dir, **warm_cosine)
    first = run(config, budget_steps=2)
    out = Path(config.output_dir)
    stats = first.stats
    assert stats.completed is True and stats.complete is False
    assert (stats.planned_steps, stats.completed_steps) == (6, 2)
    assert stats.completed_fraction == pytest.approx(2 / 6, abs=1e-4)
    assert stats.stopped_by == "time budget"
    assert stats.time_budget_s == 25.0
    assert [(r.from_step, r.to_step, r.ended) for r in stats.runs] == [
        (0, 2, "time budget")]
    assert (out / ADAPTER_WEIGHTS).is_file()  # the partly trained adapter, for packaging
    assert checkpoint_problem(out / "checkpoint-2") is None
    assert json.loads((out / "checkpoint-2" / RUNS_FILE).read_text())["runs"][0]["ended"] \
        == "time budget"
    assert any("partly trained" in note and "2 of 6 steps (33%)" in note
               for note in first.notes)
    # A partly trained adapter is never reused as finished: the same inputs resume it.
    assert completed_run_hash(out) is None

    second = run(config, budget_steps=3)
    assert second.stats.completed_steps == 5 and not second.stats.complete
    third = run(config, None)
    final = third.stats
    assert not third.skipped and final.complete is True and final.stopped_by == \
        "plan complete"
    assert final.resumed_from_step == 5
    assert [(r.run, r.from_step, r.to_step, r.steps, r.ended)
            for r in final.runs] == [(1, 0, 2, 2, "time budget"), (2, 2, 5, 3, "time budget"),
                                        (3, 5, 6, 1, "plan complete")]
    assert [r.seconds for r in final.runs] == [20.0, 30.0, 10.0]
    assert any("resumed from checkpoint-5 (run 3)" in note for note in third.notes)

    # The same adapter and the same learning rate at every step as one uninterrupted run:
    # the schedule follows the 6 planned steps, not the budget of each run.
    assert max_difference(lora_weights(out), lora_weights(Path(whole.output_dir))) < 1e-6
    assert list(schedule(final)) == [1, 2, 3, 4, 5, 6]
    assert schedule(final) == pytest.approx(schedule(reference), rel=1e-9)
    assert len(set(schedule(final).values())) == 5  # warm-up from 0, then decay: all distinct
    losses = [h.loss for h in final.loss_history]
    assert losses == pytest.approx([h.loss for h in reference.loss_history], abs=1e-5)
    assert final.base_eval_loss == pytest.approx(reference.base_eval_loss)

    # Now complete: reused, also when the budget changes (it does not change the adapter).
    config.training.time_budget = 1.0
    assert train(config).skipped


def test_an_epoch_plan_stopped_mid_epoch_resumes_into_the_same_adapter(
        tmp_path: Path, tiny_llama_dir: Path) -> None:
    """Two epochs of 12 samples at 2 a step: 12 planned steps, stopped inside epoch 2, where
    the resumed run must skip the batches of epoch 2 already trained on, in the same order."""
    epochs = {"max_steps": -1, "num_train_epochs": 2, "warmup_steps": 1, "save_steps": 100,
              "lr_scheduler_type": "linear"}
    whole = tiny_config(tmp_path / "whole", tiny_llama_dir, **epochs)
    reference = run(whole, None).stats
    config = tiny_config(tmp_path / "split", tiny_llama_dir, **epochs)
    partial = run(config, budget_steps=8).stats
    assert (partial.planned_steps, partial.completed_steps) == (12, 8)
    assert partial.planned_epochs == 2.0
    assert partial.completed_epochs == pytest.approx(8 / 6, abs=1e-4)
    assert describe_progress(partial) == "8 of 12 steps (67%), 1.33 of 2 epochs, 1 run"
    final = run(config, None).stats
    assert final.complete and final.completed_epochs == 2.0
    assert max_difference(lora_weights(Path(config.output_dir)),
                          lora_weights(Path(whole.output_dir))) < 1e-6
    assert schedule(final) == pytest.approx(schedule(reference), rel=1e-9)


def test_a_budget_smaller_than_one_step_still_makes_progress(tmp_path: Path,
                                                             tiny_llama_dir: Path) -> None:
    config = tiny_config(tmp_path, tiny_llama_dir, max_steps=3, save_steps=100)
    stats = run(config, budget_steps=0).stats
    assert stats.completed_steps == 1 and stats.stopped_by == "time budget"


def test_a_run_killed_after_a_checkpoint_is_recorded_as_interrupted(
        tmp_path: Path, tiny_llama_dir: Path) -> None:
    from transformers import TrainerCallback

    class Killed(Exception):
        pass

    class KillAtStep3(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise Killed

    config = tiny_config(tmp_path, tiny_llama_dir)  # checkpoints every 2 of 4 steps
    with pytest.raises(Killed):
        train(config, callbacks=[KillAtStep3()])
    final = train(config).stats
    assert [(r.from_step, r.to_step, r.ended) for r in final.runs] == [
        (0, 2, "interrupted"), (2, 4, "plan complete")]


def test_the_time_budget_does_not_change_the_inputs_hash(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, tmp_path / "base")
    before = training_config_hash(config)
    config.training.time_budget = 2700
    assert training_config_hash(config) == before
    config.training_args.max_steps = 5  # the plan does
    assert training_config_hash(config) != before


@pytest.mark.parametrize(("text", "seconds"), [
    ("45m", 2700.0), ("2h", 7200.0), ("1h30m", 5400.0), ("90s", 90.0), ("1.5h", 5400.0),
    ("600", 600.0), (" 2H 5M ", 7500.0), ("none", None),
])
def test_durations_parse(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds
    assert TrainingSettings(time_budget=text).time_budget == seconds


@pytest.mark.parametrize("text", ["45 minutes", "m", "1h1h", "-5m", "soon"])
def test_a_bad_duration_names_the_field(tmp_path: Path, text: str) -> None:
    from loragate.config import ConfigError, load_config

    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"training": {"time_budget": text}}))
    with pytest.raises(ConfigError, match=r"field 'training.time_budget'.*not a duration"):
        load_config(path, check_paths=False, gating_only=True)


def test_stats_of_version_1_still_count_as_complete(tmp_path: Path) -> None:
    (tmp_path / ADAPTER_WEIGHTS).write_text("")
    (tmp_path / STATS_FILE).write_text(json.dumps({"stats_version": 1, "completed": True,
                                                   "inputs_hash": "abc"}))
    assert completed_run_hash(tmp_path) == "abc"
    (tmp_path / STATS_FILE).write_text(json.dumps({"completed": True, "complete": False,
                                                   "inputs_hash": "abc"}))
    assert completed_run_hash(tmp_path) is None


def test_the_step1_check_fails_a_partly_trained_adapter_saying_how_far_it_got(
        tmp_path: Path, tiny_llama_dir: Path) -> None:
    import subprocess
    import sys

    config = tiny_config(tmp_path, tiny_llama_dir, max_steps=3, save_steps=100)
    run(config, budget_steps=1)
    junit = tmp_path / "junit.xml"
    config_path = tmp_path / "loragate.json"
    config_path.write_text(config.model_dump_json())
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "training/test_step1_checks.py", "-k",
         "run_completed", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         f"--junitxml={junit}", f"--loragate-config={config_path}"],
        cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "partly trained: 1 of 3 planned steps (33%), 0.17 of 0.5 epochs in 1 run(s), " \
           "stopped by time budget" in done.stdout
    # The figure reaches the verdict's metrics even though the check fails.
    report = junit.read_text()
    assert "completed_fraction" in report and "0.3333" in report


def test_cli_stops_at_its_budget_builds_the_replay_set_and_resumes(
        tmp_path: Path, tiny_llama_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from loragate.backends import spec
    from loragate.cli import main as loragate_main
    from tests.test_training_replay import scripted
    from tests.test_training_run import write_config_file

    def main(argv: list[str]) -> int:
        """`loragate train`: the command that builds the replay set before training."""
        return loragate_main(["train", *argv])

    # The base GGUF is built for real; the random-init model never ends an answer, so the
    # answers come from a scripted base (echoing the prompt) opened in its place.
    opened: list[str] = []
    _, open_scripted = scripted()
    monkeypatch.setattr(spec, "open_backend", lambda model, settings, cache=None: (
        opened.append(model), open_scripted(model, settings, cache))[1])

    config = tiny_config(tmp_path, tiny_llama_dir, max_steps=3, save_steps=100)
    config.data_args.replay_ratio = 0.2
    prompts = tmp_path / "replay_prompts.jsonl"
    prompts.write_text('{"id": "r1", "prompt": "Name a season."}\n'
                       '{"id": "r2", "prompt": "Name a month."}\n')
    config.data_args.replay_prompts = prompts
    config.data_args.replay_max_tokens = 16
    config.backend.cache_path = tmp_path / "responses.sqlite"
    config.backend.n_ctx = 256
    config_file = write_config_file(tmp_path, config)
    out = Path(config.output_dir)

    # Any real run is longer than a millisecond: the run stops after its first step.
    assert main(["--config", str(config_file), "--time-budget", "0.001"]) == 0
    captured = capsys.readouterr()
    assert "replay set built" in captured.err
    assert (out / "replay" / "replay.jsonl").is_file()
    assert opened == [f"gguf:{out / 'base-gguf' / 'base.Q4_K_M.gguf'}"]
    assert Path(opened[0][5:]).is_file()
    assert "training stopped at the time budget after 1 of 3 steps (33%)" in captured.err
    assert "plan: 1 of 3 steps (33%)" in captured.out and "(partly trained)" in captured.out

    assert main(["--config", str(config_file)]) == 0
    captured = capsys.readouterr()
    assert "replay set reused" in captured.err
    assert "resumed from checkpoint-1 (run 2)" in captured.err
    assert "plan: 3 of 3 steps (100%)" in captured.out
    stats = json.loads((out / STATS_FILE).read_text())
    assert stats["complete"] and len(stats["runs"]) == 2
    assert stats["data"]["replay"]["samples"] == 3  # 12 domain samples, 0.2 of the mix


def test_training_alone_never_builds_the_replay_set_it_names_the_command_that_does(
        tmp_path: Path, tiny_llama_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m loragate.training.cli` (as under torchrun) does not reach packaging for the
    base GGUF: a missing replay set is a data error naming what builds it."""
    from loragate.exit_codes import ExitCode
    from loragate.training.cli import main
    from tests.test_training_run import write_config_file

    config = tiny_config(tmp_path, tiny_llama_dir, max_steps=2)
    config.data_args.replay_ratio = 0.2
    prompts = tmp_path / "replay_prompts.jsonl"
    prompts.write_text('{"id": "r1", "prompt": "Name a season."}\n')
    config.data_args.replay_prompts = prompts
    assert main(["--config", str(write_config_file(tmp_path, config))]) == ExitCode.USAGE
    assert "replay" in capsys.readouterr().err


SKEWED_CLOCK_RUN = """
import itertools, os, sys
from loragate.config import load_config
from loragate.training.trainer import train

# Process 0 sees 1000 s pass between any two readings, process 1 sees no time pass at all.
ticks = itertools.count()
clock = (lambda: 1000.0 * next(ticks)) if os.environ["RANK"] == "0" else (lambda: 0.0)
config = load_config(sys.argv[1], check_paths=False)
train(config, clock=clock)
"""


def test_two_processes_stop_at_the_budget_together(tmp_path: Path, tiny_llama_dir: Path) -> None:
    """Each process reads its own clock. Here only process 0 runs out of time: process 1
    must stop at the same step, or the process that goes on waits for the other forever."""
    import os
    import signal
    import subprocess
    import sys

    from tests.test_training_run import REPO, write_config_file

    config = tiny_config(tmp_path, tiny_llama_dir, max_steps=3, save_steps=100)
    config.training.time_budget = 1500.0
    config_file = write_config_file(tmp_path, config)
    script = tmp_path / "skewed.py"
    script.write_text(SKEWED_CLOCK_RUN)
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=pythonpath)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", str(script), str(config_file)]
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"the 2-process run did not finish in 240 s:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    stats = json.loads((Path(config.output_dir) / STATS_FILE).read_text())
    assert stats["world_size"] == 2
    assert (stats["completed_steps"], stats["stopped_by"]) == (1, "time budget")
    assert checkpoint_problem(Path(config.output_dir) / "checkpoint-1") is None
