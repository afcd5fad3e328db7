"""Held-out loss per format for trained adapters, side by side with the base.

Issue #27 asks that each recipe change be measured against the last on held-out eval loss
per format, not only on the one pooled figure training_stats.json records. This loads the
config's base model once, then each adapter, and computes the loss of every held-out sample
(``eval_file``, encoded exactly as training encodes it: system prompt, chat template, only the
answer supervised), grouped by the maker that generated it (:func:`eval_kinds`; a sample the
bundled generator did not make is ``other``). A group's figure is the mean of its samples'
mean token losses; ``all`` is the mean over every sample (the Trainer's eval loss at batch
size 1, so it can be checked against training_stats.json).

    python benchmarks/eval_loss_by_format.py --config config/tiny_cpu_full.json \\
        one-epoch=/path/to/adapter two-epochs=/path/to/other   # ~40 s an adapter on 2 cores
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import _no_shadow  # noqa: F401 - before any third-party import: see its docstring
import torch

from loragate.base_model import load_tokenizer, resolve_base_model
from loragate.config import load_config
from loragate.data.generate import eval_kinds
from loragate.training.data import load_samples
from loragate.training.formatting import content_char_limit, encode


def sample_losses(model: torch.nn.Module, encoded: list) -> list[float]:
    losses = []
    with torch.inference_mode():
        for item in encoded:
            ids = torch.tensor([item.input_ids])
            labels = torch.tensor([item.labels])
            losses.append(float(model(input_ids=ids, labels=labels).loss))
    return losses


def by_kind(kinds: list[str], losses: list[float]) -> dict[str, float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for kind, loss in zip(kinds, losses, strict=True):
        groups[kind].append(loss)
        groups["all"].append(loss)
    return {kind: sum(values) / len(values) for kind, values in groups.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/tiny_cpu_full.json")
    parser.add_argument("adapters", nargs="+", metavar="NAME=ADAPTER_DIR")
    args = parser.parse_args()
    config = load_config(args.config)
    named = [tuple(a.split("=", 1)) for a in args.adapters]
    for name, folder in named:
        if not (Path(folder) / "adapter_config.json").is_file():
            parser.error(f"{name}: no adapter_config.json in {folder}")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base_dir = resolve_base_model(config)
    tokenizer = load_tokenizer(base_dir)
    samples = load_samples([Path(config.eval_file)], dedupe=False).samples
    known = eval_kinds()
    kinds = [known.get(s.prompt_text, "other") for s in samples]
    limit = content_char_limit(tokenizer, config.data_args.max_seq_length)
    encoded = [encode(s, tokenizer, system_prompt=config.data_args.system_prompt,
                      max_seq_length=config.data_args.max_seq_length, char_limit=limit)
               for s in samples]
    columns = {}
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    columns["base"] = by_kind(kinds, sample_losses(base, encoded))
    for name, folder in named:
        model = PeftModel.from_pretrained(base, folder).eval()
        columns[name] = by_kind(kinds, sample_losses(model, encoded))
        base = model.unload()  # the base without this adapter, for the next one
    counts = {kind: kinds.count(kind) for kind in sorted(set(kinds))}
    header = f"{'format':<12}{'n':>4}" + "".join(f"{name:>14}" for name in columns)
    print(f"held-out loss per format, {args.config} ({len(samples)} samples)")
    print(header)
    for kind in [*counts, "all"]:
        n = counts.get(kind, len(kinds))
        print(f"{kind:<12}{n:>4}" + "".join(f"{col[kind]:>14.3f}" for col in columns.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
