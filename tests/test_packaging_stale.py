"""Packaging cleans up after killed runs and refuses, before any work, a system prompt the
Modelfile cannot hold."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from loragate.config import ConfigError, LoragateConfig
from loragate.packaging import pipeline
from loragate.packaging.stale import UNTAGGED_AGE_S, pid_is_alive, remove_stale_temporaries


@pytest.fixture
def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    assert not pid_is_alive(process.pid)
    return process.pid


@pytest.fixture
def live_pid():
    process = subprocess.Popen(["sleep", "60"])
    yield process.pid
    process.kill()
    process.wait()


def _folder(path: Path, size: int) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"\0" * size)
    (path / "config.json").write_text("{}")
    return path


def _file(path: Path, size: int) -> Path:
    path.write_bytes(b"G" * size)
    return path


def test_dead_runs_temporaries_go_live_ones_and_real_files_stay(
        tmp_path: Path, dead_pid: int, live_pid: int, caplog: pytest.LogCaptureFixture) -> None:
    gone = [
        _folder(tmp_path / f".merged-{dead_pid}-0badc0de", 3 * 2**20),
        _folder(tmp_path / f".merged.old-{dead_pid}", 2**20),
        _file(tmp_path / f".model.f16.gguf.partial-{dead_pid}", 2 * 2**20),
        _file(tmp_path / f".model.Q4_K_M.gguf.partial-{dead_pid}", 10),
        _folder(tmp_path / ".merged-1a2b3c4d", 100),  # untagged and old
    ]
    old = time.time() - UNTAGGED_AGE_S - 60
    os.utime(tmp_path / ".merged-1a2b3c4d", (old, old))
    kept = [
        _folder(tmp_path / f".merged-{live_pid}-0123abcd", 100),
        _file(tmp_path / f".model.Q8_0.gguf.partial-{live_pid}", 100),
        _file(tmp_path / f".model.Q8_0.gguf.partial-{os.getpid()}", 100),
        _folder(tmp_path / ".merged-5e6f7a8b", 100),  # untagged but recent: maybe running
        _folder(tmp_path / "merged", 100),
        _file(tmp_path / "model.Q4_K_M.gguf", 100),
        _file(tmp_path / "Modelfile", 10),
        _file(tmp_path / ".Modelfile.partial", 10),
    ]
    with caplog.at_level(logging.WARNING, logger="loragate.packaging.stale"):
        removed = remove_stale_temporaries(tmp_path)
    assert sorted(r.path for r in removed) == sorted(gone)
    assert not any(p.exists() for p in gone)
    assert all(p.exists() for p in kept)
    by_name = {r.path.name: r for r in removed}
    assert by_name[f".merged-{dead_pid}-0badc0de"].size_bytes == 3 * 2**20 + 2
    logged = caplog.text
    assert f".merged-{dead_pid}-0badc0de (3.0 MiB; pid {dead_pid}, no longer running)" in logged
    assert f".model.f16.gguf.partial-{dead_pid} (2.0 MiB; pid {dead_pid}" in logged
    assert ".merged-1a2b3c4d (0.0 MiB; no pid recorded" in logged


def test_a_missing_package_folder_is_nothing_to_clean(tmp_path: Path) -> None:
    assert remove_stale_temporaries(tmp_path / "not-yet") == []


def test_merge_staging_names_carry_the_pid(tmp_path: Path) -> None:
    from loragate.packaging.merge import _staging_dir

    staging = _staging_dir(tmp_path / "merged")
    assert staging.name.startswith(f".merged-{os.getpid()}-")
    assert remove_stale_temporaries(tmp_path) == [] and staging.is_dir()


def _config(tmp: Path, **sections: object) -> LoragateConfig:
    eval_file = tmp / "eval.jsonl"
    eval_file.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    return LoragateConfig(model_name="tiny", output_dir=tmp / "run", dataset_files=[eval_file],
                          eval_file=eval_file, **sections)


class BuildStarted(Exception):
    pass


def test_package_removes_dead_temporaries_before_it_builds(
        tmp_path: Path, tiny_llama_dir: Path, tiny_adapter_dir: Path, dead_pid: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path)
    out = pipeline.package_dir_for(config)
    leftover = _folder(out / f".merged-{dead_pid}-deadbeef", 1000)

    def build(*args, **kwargs):
        assert not leftover.exists()
        raise BuildStarted

    monkeypatch.setattr(pipeline, "_build", build)
    with pytest.raises(BuildStarted):
        pipeline.package(config, tiny_adapter_dir, base_dir=tiny_llama_dir, progress=False)


@pytest.mark.parametrize("sections,field", [
    ({"packaging": {"modelfile": {"system": 'Say """hi""" to TRON.'}}},
     "packaging.modelfile.system"),
    ({"data_args": {"system_prompt": 'You are the "Web4 agent"'}}, "data_args.system_prompt"),
    ({"data_args": {"system_prompt": 'Quote with """ blocks.'}}, "data_args.system_prompt"),
])
def test_a_system_prompt_the_modelfile_cannot_hold_is_refused_before_any_work(
        tmp_path: Path, tiny_adapter_dir: Path, monkeypatch: pytest.MonkeyPatch,
        sections: dict, field: str) -> None:
    config = _config(tmp_path, **sections)

    def no_work(*args, **kwargs):
        raise AssertionError("packaging started work before checking the system prompt")

    monkeypatch.setattr(pipeline, "_build", no_work)
    monkeypatch.setattr("loragate.base_model.resolve_base_model", no_work)
    with pytest.raises(ConfigError) as info:
        pipeline.package(config, tiny_adapter_dir, progress=False)
    message = str(info.value)
    assert f"field '{field}': the system prompt" in message
    assert "Modelfile cannot quote" in message and "\n" not in message
    assert not pipeline.package_dir_for(config).exists()


def test_the_packaging_prompt_wins_over_the_training_prompt(tmp_path: Path) -> None:
    # The Modelfile takes packaging.modelfile.system when set: a training prompt it replaces
    # may hold anything.
    config = _config(tmp_path, data_args={"system_prompt": 'ends with "'},
                     packaging={"modelfile": {"system": "Plain and safe."}})
    pipeline.check_modelfile_system(config)


def _config_file(tmp_path: Path, system_prompt: str) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    payload = {"model_name": "tiny", "output_dir": "run", "dataset_files": ["data/train.jsonl"],
               "eval_file": "data/train.jsonl", "data_args": {"system_prompt": system_prompt}}
    path = tmp_path / "config" / "run.json"
    path.parent.mkdir()
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize("command", ["package", "pipeline"])
def test_cli_refuses_it_as_a_usage_error_naming_file_and_field(
        tmp_path: Path, command: str, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from loragate import pipeline as whole_pipeline
    from loragate.cli import main

    def no_training(*args, **kwargs):
        raise AssertionError("the pipeline trained before checking the system prompt")

    monkeypatch.setattr(whole_pipeline, "train_stage", no_training)
    path = _config_file(tmp_path, 'Answer in """ blocks')
    assert main([command, "--config", str(path)]) == 4
    err = capsys.readouterr().err
    assert f"{path.resolve()}: field 'data_args.system_prompt'" in err
    assert "Traceback" not in err
