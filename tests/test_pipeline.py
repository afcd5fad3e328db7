"""The pipeline's orchestration: pytest command lines, stage timings, the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loragate.config import load_config
from loragate.pipeline import (
    PipelineReport,
    adapter_dir_of,
    print_summary,
    pytest_command,
    write_timings,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config():
    return load_config(REPO / "config" / "tiny_cpu.json", check_paths=False)


def test_pytest_command_carries_model_baseline_config_and_verdict(config, tmp_path):
    command = pytest_command(config, model="gguf:/m.gguf", baseline="gguf:/b.gguf",
                             suites=("gates", "canaries"), markers="ship_gate",
                             verdict_json=tmp_path / "v.json", verdict_html=tmp_path / "r.html",
                             extra=["--samples", "5"])
    joined = " ".join(command)
    assert "-m pytest gates canaries -m ship_gate" in joined
    # Path options as one word each: given as two, pytest could take the path for the project.
    assert "--model=gguf:/m.gguf" in command and "--baseline=gguf:/b.gguf" in command
    assert f"--loragate-config={config.source_path}" in command
    assert f"--verdict-json={tmp_path / 'v.json'}" in command
    assert command[-2:] == ["--samples", "5"]


def test_stage_timings_are_written_and_summarised(tmp_path, capsys):
    report = PipelineReport()
    with report.stage("train") as timing:
        timing.reused = True
    with pytest.raises(RuntimeError), report.stage("package"):
        raise RuntimeError("boom")
    assert [t.stage for t in report.timings] == ["train", "package"]
    write_timings(tmp_path / "timings.json", report)
    payload = json.loads((tmp_path / "timings.json").read_text())
    assert payload["stages"][0]["reused"] is True
    lines: list[str] = []
    print_summary(report, None, None, out=lines.append)
    assert any("train" in line and "(reused)" in line for line in lines)


def test_adapter_dir_is_found_or_named_missing(tmp_path):
    (tmp_path / "adapter").mkdir()
    with pytest.raises(FileNotFoundError, match="no adapter_config.json"):
        adapter_dir_of(tmp_path)
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert adapter_dir_of(tmp_path) == tmp_path / "adapter"


def test_gate_messages_get_the_training_system_prompt():
    from loragate.gating.scoring import with_system_prompt

    user = [{"role": "user", "content": "hi"}]
    assert with_system_prompt(user, "SYS")[0] == {"role": "system", "content": "SYS"}
    own = [{"role": "system", "content": "mine"}, *user]
    assert with_system_prompt(own, "SYS") == own


def test_collecting_the_packaging_suite_keeps_the_pypi_packaging_module():
    """The verdict run collects ./packaging/; transformers must still find packaging.version."""
    import subprocess
    import sys

    script = ("import pytest; pytest.main(['packaging', 'training', '--collect-only', '-q']); "
              "import packaging.version; print(packaging.version.__name__)")
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("packaging.version")


# ---------------------------------------------------------------------------------------------
# training to a budget, the replay stage


def partial_stats(done: int = 110, planned: int = 762):
    from loragate.training.stats import TrainingStats

    return TrainingStats.model_validate({
            "completed": True, "complete": done >= planned, "planned_steps": planned,
            "completed_steps": done, "completed_fraction": round(done / planned, 4),
            "planned_epochs": 2.0, "completed_epochs": round(done / 381, 4),
            "stopped_by": "time budget" if done < planned else "plan complete",
            "time_budget_s": 2700.0, "eval_loss": 0.5, "base_eval_loss": 1.9,
            "runs": [{"run": 1, "from_step": 0, "to_step": done, "steps": done,
                      "ended": "time budget"}]})


def test_a_partly_trained_adapter_goes_on_to_packaging_and_says_so(
        config, tmp_path, monkeypatch, capsys):
    from loragate.pipeline import StageTiming, train_stage
    from loragate.training import trainer
    from loragate.training.trainer import TrainingOutcome

    (tmp_path / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(trainer, "train", lambda config, force: TrainingOutcome(
        tmp_path, partial_stats()))
    report = PipelineReport()
    timing = StageTiming("train", 0.0)
    assert train_stage(config, force=False, timing=timing, report=report) == tmp_path
    assert timing.detail == ("(110 of 762 steps (14%), 0.29 of 2 epochs, 1 run, "
                             "eval loss 1.900 -> 0.500, partly trained)")
    log = capsys.readouterr().out
    assert "training stopped at the time budget after 110 of 762 steps (14%)" in log
    assert "packaging and gating the partly trained adapter anyway" in log
    assert "test_run_completed" in log

    report.timings.append(timing)
    lines: list[str] = []
    print_summary(report, None, None, out=lines.append)
    assert "training plan: 110 of 762 steps (14%), 0.29 of 2 epochs, 1 run " \
           "(PARTLY TRAINED: run the pipeline again to resume)" in lines
    write_timings(tmp_path / "timings.json", report)
    saved = json.loads((tmp_path / "timings.json").read_text())
    assert saved["training"]["completed_fraction"] == pytest.approx(0.1444, abs=1e-4)
    assert saved["training"]["complete"] is False


def test_a_complete_plan_is_summarised_as_complete(config, tmp_path, monkeypatch):
    from loragate.pipeline import StageTiming, train_stage
    from loragate.training import trainer
    from loragate.training.trainer import TrainingOutcome

    (tmp_path / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(trainer, "train", lambda config, force: TrainingOutcome(
        tmp_path, partial_stats(762), skipped=True))
    report = PipelineReport()
    timing = StageTiming("train", 0.0)
    train_stage(config, force=False, timing=timing, report=report)
    assert timing.reused and "partly" not in timing.detail
    lines: list[str] = []
    print_summary(report, None, None, out=lines.append)
    assert "training plan: 762 of 762 steps (100%), 2.00 of 2 epochs, 1 run (complete)" in lines


def test_pipeline_and_train_take_a_time_budget():
    from loragate.cli import build_parser

    for command in ("pipeline", "train"):
        argv = [command, "--time-budget", "1h30m"]
        assert build_parser(argv).parse_args(argv).time_budget == 5400.0
        argv = [command, "--time-budget", "none"]
        assert build_parser(argv).parse_args(argv).time_budget == "none"
        argv = [command, "--time-budget", "0"]
        with pytest.raises(SystemExit):
            build_parser(argv).parse_args(argv)


def test_the_replay_stage_builds_once_per_base(tmp_path, tiny_gguf):
    from loragate.pipeline import StageTiming, replay_stage

    config = load_config(REPO / "config" / "tiny_cpu_full.json", check_paths=False)
    config.output_dir = tmp_path / "out"
    config.backend.cache_path = tmp_path / "responses.sqlite"
    config.backend.n_ctx = 256
    prompts = tmp_path / "replay_prompts.jsonl"
    prompts.write_text('{"id": "r1", "prompt": "Name a season."}\n')
    config.data_args.replay_prompts = prompts
    config.data_args.replay_max_tokens = 16
    first, second = StageTiming("replay", 0.0), StageTiming("replay", 0.0)
    path = replay_stage(config, tiny_gguf, force=False, timing=first)
    assert path == tmp_path / "out" / "replay" / "replay.jsonl" and path.is_file()
    assert not first.reused and "of 1 answers usable" in first.detail
    replay_stage(config, tiny_gguf, force=False, timing=second)
    assert second.reused


def test_a_sigterm_to_loragate_stops_the_gate_run_it_started(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    child = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
             "time.sleep(120)")
    script = ("import sys; from loragate.pipeline import run_child; "
              f"sys.exit(run_child([sys.executable, '-c', {child!r}]))")
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child_pid = int(pid_file.read_text())
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    for _ in range(100):
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the gate run outlived the loragate command that started it")
