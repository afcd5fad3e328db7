"""The CUDA path of training on the tiny random-init Llama: device choice, bf16, memory, output.

These need a CUDA device, so the default CPU run skips them; they run on a GPU machine
(`pytest -m cuda tests/test_training_cuda.py`). What the CPU run can check of this path
(device order, precision fallback, QLoRA refusal) is in test_training_run.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from loragate.artifacts import ADAPTER_WEIGHTS
from loragate.training.device import select_device
from loragate.training.stats import STATS_FILE
from loragate.training.trainer import train

from .test_training_run import tiny_config

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_auto_device_is_cuda_when_one_is_there() -> None:
    assert select_device("auto") == "cuda"


def test_cuda_run_trains_in_bf16_and_writes_an_adapter_the_cpu_loads(
        tmp_path: Path, tiny_llama_dir: Path) -> None:
    config = tiny_config(tmp_path, tiny_llama_dir, bf16=True, max_steps=6)
    config.training.device = "auto"
    outcome = train(config)
    out = Path(config.output_dir)
    assert not outcome.skipped
    stats = json.loads((out / STATS_FILE).read_text())
    assert stats["device"] == "cuda"
    assert stats["precision"] == "bf16"
    assert stats["completed"] is True and stats["global_step"] == 6
    assert stats["memory_measure"] == "cuda max allocated"
    assert 0 < stats["peak_memory_gb"] < 2
    for key in ("train_loss", "eval_loss", "base_eval_loss"):
        assert math.isfinite(stats[key]), key
    assert (out / ADAPTER_WEIGHTS).is_file()

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 5, 9, 13, 17, 21, 25, 29]])

    def logits_on(device: str) -> torch.Tensor:
        base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, out).to(device).eval()
        with torch.no_grad():
            return model(ids.to(device)).logits.float().cpu()

    on_cpu, on_gpu = logits_on("cpu"), logits_on("cuda")
    # The adapter saved from a bf16 run is used in fp32 on both; TF32 matmuls allow ~1e-3.
    assert torch.allclose(on_cpu, on_gpu, atol=5e-3, rtol=1e-3), (
        (on_cpu - on_gpu).abs().max().item())


def test_cuda_run_without_bf16_trains_in_fp32(tmp_path: Path, tiny_llama_dir: Path) -> None:
    config = tiny_config(tmp_path, tiny_llama_dir, max_steps=2)
    config.training.device = "cuda"
    train(config)
    stats = json.loads((Path(config.output_dir) / STATS_FILE).read_text())
    assert stats["device"] == "cuda" and stats["precision"] == "fp32"


def test_cuda_batches_pad_to_a_multiple_of_eight(tmp_path: Path, tiny_llama_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from loragate.training import trainer as trainer_mod

    config = tiny_config(tmp_path, tiny_llama_dir, max_steps=2, per_device_train_batch_size=3)
    config.training.device = "cuda"
    lengths: list[int] = []
    make_collator = trainer_mod.make_collator

    def observed_collator(*args, **kwargs):
        collate = make_collator(*args, **kwargs)

        def collate_and_record(features):
            batch = collate(features)
            lengths.append(batch["input_ids"].shape[-1])
            return batch
        return collate_and_record

    monkeypatch.setattr(trainer_mod, "make_collator", observed_collator)
    train(config)
    assert lengths and all(length % 8 == 0 for length in lengths), lengths
