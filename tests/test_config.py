"""Config loading: the plan's format loads unchanged; every bad input names file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loragate.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def plan_config(root: Path) -> dict:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in ("style_core", "eval"):
        (data / f"{name}.jsonl").write_text('{"instruction": "a", "input": "", "output": "b"}\n')
    return {
        "model_name": "Qwen/Qwen2.5-Coder-7B-Instruct",
        "output_dir": "./outputs/web4-balanced-lora",
        "dataset_files": ["data/style_core.jsonl"],
        "eval_file": "data/eval.jsonl",
        "training_args": {"num_train_epochs": 2, "learning_rate": 2e-4,
                          "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8},
        "lora_config": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                        "target_modules": ["q_proj", "v_proj"]},
        "data_args": {"max_seq_length": 2048},
        "mps_optimization": {"use_mps_device": True},
    }


def write(root: Path, payload: dict | str) -> Path:
    config_dir = root / "config"
    config_dir.mkdir(exist_ok=True)
    path = config_dir / "balanced_training.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload, indent=2))
    return path


def test_plan_format_loads_unchanged_and_paths_resolve_against_project_root(tmp_path):
    config = load_config(write(tmp_path, plan_config(tmp_path)))
    assert config.model_name == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert config.dataset_files == [tmp_path / "data" / "style_core.jsonl"]
    assert config.output_dir == tmp_path / "outputs" / "web4-balanced-lora"
    assert config.training_args.gradient_accumulation_steps == 8
    assert config.lora_config.target_modules == ["q_proj", "v_proj"]
    # The plan's format names no gate: the Web4 harnesses come from the profiles that ask
    # for them (config/*.json), never from a default.
    assert config.gates.harnesses == {}
    assert config.gates.overall_target == 90


@pytest.mark.parametrize("profile", ["balanced_training.json", "tiny_cpu.json",
                                     "tiny_cpu_full.json", "tiny_gpu.json"])
def test_bundled_profiles_validate(profile):
    config = load_config(REPO / "config" / profile, check_paths=False)
    assert config.lora_config.r == 16
    assert config.root == REPO


def test_wrong_type_names_file_and_field(tmp_path):
    payload = plan_config(tmp_path)
    payload["training_args"]["learning_rate"] = "fast"
    path = write(tmp_path, payload)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert "training_args.learning_rate" in str(err.value)


def test_missing_key_names_file_and_field(tmp_path):
    payload = plan_config(tmp_path)
    del payload["eval_file"]
    path = write(tmp_path, payload)
    with pytest.raises(ConfigError, match=r"field 'eval_file': required key is missing"):
        load_config(path)


def test_unknown_key_names_file_and_field(tmp_path):
    payload = plan_config(tmp_path)
    payload["lora_config"]["rank"] = 8
    path = write(tmp_path, payload)
    with pytest.raises(ConfigError, match=r"field 'lora_config.rank': unknown key"):
        load_config(path)


def test_unknown_training_argument_is_rejected_but_real_ones_pass(tmp_path):
    payload = plan_config(tmp_path)
    payload["training_args"]["torch_compile"] = False  # a real TrainingArguments field
    config = load_config(write(tmp_path, payload))
    assert config.training_args.to_kwargs()["torch_compile"] is False
    payload["training_args"]["lerning_rate"] = 1e-4
    with pytest.raises(ConfigError, match=r"training_args.*lerning_rate"):
        load_config(write(tmp_path, payload))


def test_missing_dataset_file_names_file_and_index(tmp_path):
    payload = plan_config(tmp_path)
    payload["dataset_files"].append("data/guardrails.jsonl")
    path = write(tmp_path, payload)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "field 'dataset_files.1': file not found" in message
    assert "guardrails.jsonl" in message and str(path) in message


def test_invalid_json_names_line(tmp_path):
    path = write(tmp_path, '{\n  "model_name": "x",\n  oops\n}')
    with pytest.raises(ConfigError, match=r"balanced_training.json:3:\d+: invalid JSON"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.json")


def test_undecodable_config_names_file_line_and_byte_offset(tmp_path):
    path = write(tmp_path, "")
    # A config saved as Latin-1 by an editor: the e-acute is one byte 0xe9, not UTF-8.
    path.write_bytes('{\n  "model_name": "caf\u00e9"\n}\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not UTF-8 text: byte 0xe9 at offset 22 (line 2)")
    assert "\n" not in message


def test_folder_in_place_of_the_config(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(tmp_path)


def test_cli_reports_an_undecodable_config_as_a_usage_error(tmp_path, capsys):
    from loragate.cli import main

    path = write(tmp_path, "")
    path.write_bytes(b"\xff\xfe{}")
    assert main(["package", "--config", str(path)]) == 4
    err = capsys.readouterr().err
    assert err.startswith("loragate: config error: ") and "byte 0xff at offset 0" in err
    assert "Traceback" not in err


def test_unknown_harness_in_gates(tmp_path):
    payload = plan_config(tmp_path)
    payload["gates"] = {"harnesses": {"pdca_shema": {"gate": "ship", "threshold": 0.9}}}
    with pytest.raises(ConfigError, match=r"gates\.harnesses\.pdca_shema\.validator: "
                                          r"'pdca_shema' is not a built-in harness"):
        load_config(write(tmp_path, payload))


def test_a_block_given_twice_is_refused_not_silently_dropped(tmp_path):
    # json.loads keeps the last "harnesses": the first block's ship gate would vanish.
    text = json.dumps(plan_config(tmp_path), indent=2)[:-2] + (
        ',\n  "gates": {\n    "harnesses": {"refusal": {"gate": "ship", "threshold": 0.9}},'
        '\n    "harnesses": {"pdca_schema": {"gate": "quality", "threshold": 0.5}}\n  }\n}')
    with pytest.raises(ConfigError, match="balanced_training.json: invalid JSON: duplicate key "
                                          "'harnesses'"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("value", ["Infinity", "NaN", "1e12", "0"])
def test_a_timeout_that_no_clock_can_wait_is_refused(tmp_path, value):
    text = json.dumps(plan_config(tmp_path))[:-1] + (
        ', "gates": {"validator_timeout_s": ' + value + '}, "backend": {"timeout_s": 5}}')
    with pytest.raises(ConfigError, match="validator_timeout_s|Infinity|NaN"):
        load_config(write(tmp_path, text))


def test_threshold_out_of_range(tmp_path):
    payload = plan_config(tmp_path)
    payload["gates"] = {"harnesses": {"refusal": {"gate": "ship", "threshold": 98}}}
    with pytest.raises(ConfigError, match=r"gates.harnesses.refusal.threshold"):
        load_config(write(tmp_path, payload))


def test_content_hash_changes_with_settings(tmp_path):
    path = write(tmp_path, plan_config(tmp_path))
    first = load_config(path).content_hash()
    payload = plan_config(tmp_path)
    payload["lora_config"]["r"] = 8
    assert load_config(write(tmp_path, payload)).content_hash() != first


def test_canary_rule_and_forgetting_probe_settings(tmp_path):
    config = load_config(write(tmp_path, plan_config(tmp_path)))
    assert config.canaries.require_all is True and config.canaries.forgetting_blocks is False
    # No canaries or forgetting probe unless the profile names the files (a project of its own
    # has none); a relative path resolves against the project root.
    assert config.canaries.file is None and config.canaries.forgetting_file is None
    payload = plan_config(tmp_path)
    payload["canaries"] = {"forgetting_file": "data/forgetting.jsonl"}
    assert load_config(write(tmp_path, payload)).canaries.forgetting_file == (
        tmp_path / "data" / "forgetting.jsonl")
    payload["canaries"] = {"require_all": False, "forgetting_file": None,
                           "forgetting_blocks": True}
    relaxed = load_config(write(tmp_path, payload))
    assert relaxed.canaries.require_all is False and relaxed.canaries.forgetting_file is None
    assert relaxed.canaries.forgetting_blocks is True
    payload["canaries"] = {"require_all": "sometimes"}
    with pytest.raises(ConfigError, match="field 'canaries.require_all'"):
        load_config(write(tmp_path, payload))


def test_every_config_field_is_documented_and_docs_config_md_is_in_step():
    from pathlib import Path

    from loragate.config import config_reference, undocumented_fields

    assert undocumented_fields() == []
    docs = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert docs.read_text(encoding="utf-8") == config_reference(), (
        "docs/config.md is out of step: python -m loragate.config > docs/config.md")


def test_a_config_linked_from_elsewhere_resolves_paths_from_where_it_is_named(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    project = tmp_path / "project"
    payload = plan_config(project)
    (shared / "real.json").write_text(json.dumps(payload))
    (project / "config").mkdir()
    link = project / "config" / "balanced_training.json"
    link.symlink_to(shared / "real.json")
    config = load_config(link)
    assert config.root == project
    assert config.eval_file == project / "data" / "eval.jsonl"


def test_a_fifo_in_place_of_an_input_file_is_refused_not_read(tmp_path):
    import os

    from loragate.textfiles import InputFileError, read_text

    fifo = tmp_path / "prompts.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="is not a regular file"):
        read_text(fifo)
