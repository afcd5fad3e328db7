"""Training throughput: the plan's recipe against loragate's, same samples, same model.

The plan's way: the ``### Instruction / ### Input / ### Response`` text padded to
``max_length`` 2048, loss on the whole sequence, ``DataCollatorForLanguageModeling`` with
pad = EOS. loragate's way: the chat template, dynamic padding, length-grouped batches, loss on
the answer only. Both train the same LoRA (the config's ``lora_config``) on SmolLM2-135M with
the HF Trainer for one pass over the same samples.

The figure compared is *supervised tokens per second*: the answer tokens of the samples
processed (the tokens a fine-tune exists to learn, counted the same way for both) divided by
the training time. Its last line is ``training speedup vs plan: <N>x``.

    python benchmarks/training.py [--config config/tiny_cpu.json] [--samples 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _no_shadow  # noqa: F401 - before any third-party import: see its docstring

from loragate.base_model import load_tokenizer, resolve_base_model
from loragate.config import DEFAULT_CONFIG, load_config
from loragate.training.data import Sample, load_samples
from loragate.training.formatting import (
    FALLBACK_INPUT,
    FALLBACK_RESPONSE,
    FALLBACK_USER,
    build_dataset,
    make_collator,
)


@dataclass
class Measurement:
    name: str
    seconds: float
    supervised_tokens: int
    computed_tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.supervised_tokens / self.seconds


def plan_text(sample: Sample, eos: str) -> str:
    """The plan's prompt layout with the answer and EOS appended."""
    user = next(m.content for m in sample.messages if m.role == "user")
    answer = sample.messages[-1].content
    instruction, _, extra = user.partition("\n\n")
    text = FALLBACK_USER.format(instruction=instruction)
    if extra:
        text += FALLBACK_INPUT.format(input=extra)
    return text + FALLBACK_RESPONSE + answer + eos


def plan_dataset(samples: list[Sample], tokenizer: Any, max_length: int) -> Any:
    import datasets

    texts = [plan_text(s, tokenizer.eos_token) for s in samples]
    encoded = tokenizer(texts, padding="max_length", max_length=max_length, truncation=True)
    return datasets.Dataset.from_dict({"input_ids": encoded["input_ids"],
                                       "attention_mask": encoded["attention_mask"]})


def run_trainer(model_dir: Path, config: Any, dataset: Any, collator: Any, batch_size: int,
                group_by_length: bool, workdir: Path) -> float:
    """Seconds the Trainer's loop takes for one pass over ``dataset`` (model loading excluded)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

    set_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(**config.lora_config.model_dump()))
    args = {
        "output_dir": str(workdir), "per_device_train_batch_size": batch_size,
        "num_train_epochs": 1, "learning_rate": config.training_args.learning_rate,
        "logging_steps": 1000, "save_strategy": "no", "eval_strategy": "no",
        "report_to": [], "use_cpu": True, "disable_tqdm": True, "seed": 0,
        "label_names": ["labels"],
    }
    if group_by_length:
        args["train_sampling_strategy"] = "group_by_length"
    trainer = Trainer(model=model, args=TrainingArguments(**args), train_dataset=dataset,
                      data_collator=collator)
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started


def measure(config: Any, samples: list[Sample], batch_size: int, plan_max_length: int
            ) -> tuple[Measurement, Measurement]:
    from transformers import DataCollatorForLanguageModeling

    model_dir = resolve_base_model(config)
    tokenizer = load_tokenizer(model_dir)
    ours = build_dataset(samples, tokenizer, system_prompt=config.data_args.system_prompt,
                         max_seq_length=config.data_args.max_seq_length)
    supervised = ours.supervised_tokens
    with tempfile.TemporaryDirectory() as work:
        plan_tokenizer = load_tokenizer(model_dir)
        plan_tokenizer.pad_token = plan_tokenizer.eos_token
        plan_collator = DataCollatorForLanguageModeling(plan_tokenizer, mlm=False)
        plan_data = plan_dataset(samples, plan_tokenizer, plan_max_length)
        print(f"plan's way: {len(samples)} samples padded to {plan_max_length} tokens ...",
              file=sys.stderr, flush=True)
        plan_seconds = run_trainer(model_dir, config, plan_data, plan_collator, batch_size,
                                   False, Path(work) / "plan")
        plan = Measurement("plan", plan_seconds, supervised, len(samples) * plan_max_length)
        print("loragate's way ...", file=sys.stderr, flush=True)
        collator = make_collator(tokenizer, packing=config.data_args.packing)
        ours_seconds = run_trainer(model_dir, config, ours.dataset, collator, batch_size,
                                   True, Path(work) / "ours")
        loragate = Measurement("loragate", ours_seconds, supervised, ours.total_tokens)
    return plan, loragate


def pick_samples(config: Any, data_files: list[Path] | None, count: int) -> list[Sample]:
    """The first ``count`` samples of the bundled training data (or of ``data_files``)."""
    files = data_files or list(config.dataset_files)
    missing = [str(p) for p in files if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"benchmark: data file(s) not found: {missing} "
                         "(generate them with `loragate data`, or pass --data FILE)")
    samples = load_samples(files, skip_invalid=True).samples
    return samples[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--data", type=Path, nargs="*", default=None,
                        help="JSONL files to take samples from (default: the config's)")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--plan-max-length", type=int, default=2048)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    config = load_config(args.config, check_paths=False)
    samples = pick_samples(config, args.data, args.samples)
    plan, loragate = measure(config, samples, args.batch_size, args.plan_max_length)
    speedup = loragate.tokens_per_second / plan.tokens_per_second
    for m in (plan, loragate):
        print(f"{m.name:>9}: {m.seconds:8.1f} s  {m.supervised_tokens} supervised tokens  "
              f"{m.computed_tokens} tokens computed  {m.tokens_per_second:8.2f} supervised tok/s")
    if args.json:
        args.json.write_text(json.dumps({
            "samples": len(samples), "batch_size": args.batch_size,
            "plan": vars(plan) | {"tokens_per_second": plan.tokens_per_second},
            "loragate": vars(loragate) | {"tokens_per_second": loragate.tokens_per_second},
            "speedup": speedup,
        }, indent=2))
    print(f"training speedup vs plan: {speedup:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
