"""Gate quality per training budget: train recipes, score the gate prompts, side by side.

Answers how much training the embedded default needs before its gates can clear, which the
45-minute CPU budget cannot show. Each recipe is a set of overrides of config/tiny_cpu.json
(``{"B_330": {"training_args": {"max_steps": 330}}, ...}``); it is trained (fp32 unless the
overrides say otherwise) and its merged HF model answers the first N prompts of every harness
with batched sampling at the gates' settings (temperature 0.7, top_k 40, top_p 1, no min_p),
scored by the harness validators. Not the verdict: HF sampling of the unquantized model, not
llama.cpp's Q4_K_M, so read the figures as a trend. Meant for a GPU (SWEEP_DEVICE=cpu works,
slowly). The README's "Training on a GPU" figures come from it.

usage: python benchmarks/recipe_sweep.py RECIPES.json OUT.json N
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import _no_shadow  # noqa: F401 - before any third-party import: see its docstring
import torch

from loragate.base_model import resolve_base_model
from loragate.config import load_config
from loragate.harnesses.registry import HARNESS_NAMES, score
from loragate.training.trainer import train

DEVICE = os.environ.get("SWEEP_DEVICE", "cuda")
HARNESSES = sorted(HARNESS_NAMES)


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_config(name: str, overrides: dict):
    config = load_config("config/tiny_cpu.json")
    raw = json.loads(config.model_dump_json())
    raw = deep_merge(raw, {
        "output_dir": str(Path(tempfile.gettempdir()) / "recipe_sweep" / name),
        "training_args": {"report_to": [], "save_steps": 100000, "bf16": False,
                          "disable_tqdm": True},
        "training": {"device": DEVICE},
    })
    raw = deep_merge(raw, overrides)
    return type(config).model_validate(raw)


def with_system(messages: list[dict], system_prompt: str | None) -> list[dict]:
    if not system_prompt or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


@torch.no_grad()
def evaluate(config, adapter_dir: Path, n: int, seed: int = 42) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = resolve_base_model(config)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(DEVICE)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.eval()
    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.padding_side = "left"
    records, prompts = [], []
    for harness in HARNESSES:
        for record in read_jsonl(Path("data/prompts") / f"{harness}.jsonl")[:n]:
            records.append((harness, record))
            prompts.append(tok.apply_chat_template(
                with_system(record["messages"], config.data_args.system_prompt),
                add_generation_prompt=True, tokenize=False))
    texts: list[str] = []
    for start in range(0, len(prompts), 200):
        chunk = prompts[start:start + 200]
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(DEVICE)
        torch.manual_seed(seed + start)
        out = model.generate(**enc, do_sample=True, temperature=0.7, top_k=40, top_p=1.0,
                             max_new_tokens=config.backend.max_tokens, pad_token_id=tok.pad_token_id
                             or 2, eos_token_id=2)
        texts += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    per: dict[str, dict] = {}
    for (harness, record), text in zip(records, texts, strict=True):
        result = score(harness, text, record)
        entry = per.setdefault(harness, {"passed": [], "expected": [], "predicted": [],
                                         "reasons": [], "lengths": []})
        entry["passed"].append(bool(result.passed))
        entry["lengths"].append(len(tok(text)["input_ids"]))
        if not result.passed:
            entry["reasons"].append(f"{record['id']}: {'; '.join(result.reasons)[:200]}")
        if harness == "refusal":
            entry["expected"].append(record["expected"])
            entry["predicted"].append(result.predicted or "comply")
    summary = {}
    from sklearn.metrics import f1_score
    for harness, entry in per.items():
        # The gate scores the first `samples` prompts of the harness (config.gates).
        gate_n = min(config.gates.harnesses[harness].samples, len(entry["passed"]))
        row = {"rate": sum(entry["passed"]) / len(entry["passed"]),
               "gate_rate": sum(entry["passed"][:gate_n]) / gate_n,
               "mean_len": sum(entry["lengths"]) / len(entry["lengths"]),
               "reasons": entry["reasons"][:6]}
        if harness == "refusal":
            row["f1"] = f1_score(entry["expected"], entry["predicted"], pos_label="refuse")
            row["gate_f1"] = f1_score(entry["expected"][:gate_n], entry["predicted"][:gate_n],
                                      pos_label="refuse")
        summary[harness] = row
    scores = [summary[h].get("f1", summary[h]["rate"]) for h in HARNESSES]
    gate_scores = [summary[h].get("gate_f1", summary[h]["gate_rate"]) for h in HARNESSES]
    summary["overall"] = 100 * sum(scores) / len(scores)
    summary["gate_overall"] = 100 * sum(gate_scores) / len(gate_scores)
    del model
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    return summary


def main() -> None:
    recipes = json.loads(Path(sys.argv[1]).read_text())
    out_path = Path(sys.argv[2])
    n = int(sys.argv[3])
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name, overrides in recipes.items():
        t0 = time.time()
        config = make_config(name, overrides)
        if overrides.get("_base_only"):
            adapter = None
            stats = None
        else:
            outcome = train(config, force=True)
            stats = outcome.stats
            adapter = Path(config.output_dir)
        t1 = time.time()
        summary = evaluate(config, adapter, n)
        t2 = time.time()
        summary["train_s"] = round(t1 - t0, 1)
        summary["eval_s"] = round(t2 - t1, 1)
        summary["eval_loss"] = stats.eval_loss if stats else None
        summary["base_eval_loss"] = stats.base_eval_loss if stats else None
        summary["steps"] = stats.global_step if stats else None
        summary["supervised_tokens_per_second"] = (stats.supervised_tokens_per_second
                                                   if stats else None)
        results[name] = summary
        out_path.write_text(json.dumps(results, indent=1))
        line = " ".join(f"{h[:6]}={summary[h].get('f1', summary[h]['rate']):.2f}"
                        for h in HARNESSES)
        print(f"{name}: overall {summary['overall']:.1f} "
              f"(gate samples {summary['gate_overall']:.1f}) "
              f"{line} eval_loss={summary['eval_loss']} train {summary['train_s']}s "
              f"eval {summary['eval_s']}s", flush=True)


if __name__ == "__main__":
    main()
