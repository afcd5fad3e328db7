"""Merge a LoRA adapter into its base model and save the result as a plain HF folder.

The adapter's tensors are checked against the base before peft sees them: peft raises on a
shape mismatch but silently skips modules the base does not have, so an adapter trained for
another base could otherwise "merge" into a model that is just the base. The merge itself is
done in float32 (exact for fp32 bases, no fp16 matmuls on CPU) and the result is cast to the
base's dtype, or the configured one, before it is saved as safetensors with the tokenizer and
its chat template. The folder is written under a temporary name and renamed when complete.

A plain LoRA adapter (what ``loragate train`` writes: no DoRA, no bias, no patterns, no
modules_to_save, Linear layers whose weights the base checkpoint names as they are) is merged
straight from the safetensors files, one shard at a time: ``W += (B @ A) * scale``, the very
arithmetic peft's ``merge_and_unload`` does, without building the model and its peft wrappers
(about 1.5 s of Python for SmolLM2-135M's 210 layers, 70% of the merge) and without holding a
whole float32 copy of the base. Any other adapter goes through peft.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loragate.artifacts import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    give_files_the_umask_mode,
    sync_folder,
    sync_folder_files,
)

MERGE_DTYPES = ("base", "float32", "float16", "bfloat16")
# peft stores "base_model.model.<module path>.lora_A[.<adapter name>].weight".
_LORA_KEY = re.compile(
    r"^base_model\.model\.(?P<module>.+)\.(?P<kind>lora_[AB])(?:\.[^.]+)?\.weight$"
)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class AdapterNotFoundError(FileNotFoundError):
    """The adapter folder, its config or its weights are missing."""


class AdapterMismatchError(ValueError):
    """The adapter was made for another base: a module it adapts is absent or of another shape."""


@dataclass(frozen=True)
class LoraTensor:
    module: str
    kind: str  # "lora_A" (r × in_features) or "lora_B" (out_features × r)
    shape: tuple[int, ...]


def check_adapter_files(adapter_dir: Path) -> None:
    """Raise :class:`AdapterNotFoundError` naming what is missing from ``adapter_dir``."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise AdapterNotFoundError(f"{adapter_dir}: adapter folder not found")
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (adapter_dir / name).is_file():
            raise AdapterNotFoundError(
                f"{adapter_dir}: no {name} (not a finished peft adapter; train it first with "
                "`loragate train`)"
            )


def read_lora_tensors(adapter_dir: Path) -> list[LoraTensor]:
    """The LoRA matrices the adapter holds, read from the safetensors header only."""
    from safetensors import safe_open

    path = Path(adapter_dir) / ADAPTER_WEIGHTS
    tensors = []
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
            match = _LORA_KEY.match(key)
            if match:
                shape = tuple(handle.get_slice(key).get_shape())
                tensors.append(LoraTensor(match["module"], match["kind"], shape))
    if not tensors:
        raise AdapterMismatchError(f"{path}: holds no LoRA matrices (no '*.lora_A.weight' keys)")
    return tensors


def check_adapter_matches(model: Any, adapter_dir: Path) -> None:
    """Raise :class:`AdapterMismatchError` when an adapted module is absent or shaped otherwise."""
    modules = dict(model.named_modules())
    problems = []
    for tensor in read_lora_tensors(adapter_dir):
        module = modules.get(tensor.module)
        if module is None:
            problems.append(f"module '{tensor.module}' does not exist in the base model")
            continue
        expected = _expected_shape(module, tensor)
        if expected is None:
            problems.append(f"module '{tensor.module}' is a {type(module).__name__}, "
                            "not a layer LoRA can adapt")
        elif expected != tensor.shape[1 if tensor.kind == "lora_A" else 0]:
            side = "in_features" if tensor.kind == "lora_A" else "out_features"
            problems.append(
                f"module '{tensor.module}': {tensor.kind} has shape {list(tensor.shape)}, "
                f"the base's {side} is {expected}"
            )
    if problems:
        shown = "\n  ".join(problems[:5])
        more = f"\n  … and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise AdapterMismatchError(
            f"{adapter_dir}: this adapter was made for another base model "
            f"({len(problems)} mismatch(es)):\n  {shown}{more}"
        )


def _expected_shape(module: Any, tensor: LoraTensor) -> int | None:
    # Linear layers have in/out_features; embeddings are num_embeddings × embedding_dim and
    # peft stores their LoRA matrices transposed (A: r × num_embeddings).
    if hasattr(module, "in_features"):
        return module.in_features if tensor.kind == "lora_A" else module.out_features
    if hasattr(module, "num_embeddings"):
        return module.num_embeddings if tensor.kind == "lora_A" else module.embedding_dim
    return None


def resolve_dtype(base_dir: Path, wanted: str = "base") -> str:
    """The dtype name the merged model is saved in: the base's own for ``"base"``."""
    if wanted not in MERGE_DTYPES:
        raise ValueError(f"merge dtype {wanted!r} is not one of {MERGE_DTYPES}")
    if wanted != "base":
        return wanted
    config = json.loads((Path(base_dir) / "config.json").read_text(encoding="utf-8"))
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    return name if name in MERGE_DTYPES else "float32"


def merge_adapter(base_dir: Path, adapter_dir: Path, out_dir: Path, dtype: str = "base") -> Path:
    """Write ``base_dir`` + ``adapter_dir`` merged into ``out_dir`` (safetensors + tokenizer)."""
    base_dir, adapter_dir, out_dir = Path(base_dir), Path(adapter_dir), Path(out_dir)
    check_adapter_files(adapter_dir)
    target_dtype = resolve_dtype(base_dir, dtype)
    plan = direct_merge_plan(base_dir, adapter_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_dir(out_dir)
    try:
        if plan is not None:
            _merge_direct(base_dir, adapter_dir, staging, target_dtype, plan)
        else:
            _merge_with_peft(base_dir, adapter_dir, staging, target_dtype)
        _tokenizer_source(adapter_dir, base_dir).save_pretrained(staging)
        give_files_the_umask_mode(staging)
        sync_folder_files(staging)
        _replace_dir(staging, out_dir)
        sync_folder(out_dir.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _staging_dir(out_dir: Path) -> Path:
    """A fresh sibling folder with the umask's permissions (mkdtemp's 0700 would make the
    finished model unreadable to anyone but its creator, e.g. a model server's user)."""
    while True:
        # The pid lets a later run tell a killed run's leftover from a live run's folder
        # (loragate.packaging.stale).
        staging = out_dir.parent / f".{out_dir.name}-{os.getpid()}-{os.urandom(4).hex()}"
        with contextlib.suppress(FileExistsError):
            staging.mkdir()
            return staging


def _merge_with_peft(base_dir: Path, adapter_dir: Path, out: Path, target_dtype: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    check_adapter_matches(base, adapter_dir)
    with _torch_threads(1):
        merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
        merged = merged.to(getattr(torch, target_dtype))
    merged.config.dtype = target_dtype
    merged.save_pretrained(out, safe_serialization=True)


# Adapter settings that do not change the merge arithmetic. Any other setting with a value
# (DoRA, rank/alpha patterns, modules_to_save, lora_bias, a newer peft's variant, …) sends the
# adapter to peft's own merge.
_PLAIN_LORA_KEYS = frozenset({
    "peft_type", "base_model_name_or_path", "revision", "task_type", "inference_mode",
    "peft_version", "auto_mapping", "target_modules", "exclude_modules", "layers_pattern",
    "layers_to_transform", "lora_dropout", "megatron_core", "qalora_group_size", "bias", "r",
    "lora_alpha", "use_rslora", "init_lora_weights",
})
_INDEX_FILE = "model.safetensors.index.json"
_SINGLE_FILE = "model.safetensors"


@dataclass(frozen=True)
class DirectMergePlan:
    """A plain LoRA adapter the safetensors merge handles: scale and the weights it touches."""

    scale: float
    # base checkpoint key ("model.layers.0.self_attn.q_proj.weight") → adapter key prefix
    weights: dict[str, str]
    shards: tuple[str, ...]


def direct_merge_plan(base_dir: Path, adapter_dir: Path) -> DirectMergePlan | None:
    """How to merge without peft, or None when the adapter or the base needs peft's merge."""
    from safetensors import safe_open

    base_dir, adapter_dir = Path(base_dir), Path(adapter_dir)
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA" or config.get("bias", "none") != "none":
        return None
    if config.get("init_lora_weights", True) not in (True, False, "gaussian"):
        return None  # PiSSA, OLoRA, …: the base itself was changed at init
    if any(value for key, value in config.items() if key not in _PLAIN_LORA_KEYS):
        return None
    base_config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    if base_config.get("quantization_config"):
        return None
    shards = _base_shards(base_dir)
    if shards is None:
        return None

    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    with safe_open(str(adapter_dir / ADAPTER_WEIGHTS), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
            match = _LORA_KEY.match(key)
            if match is None:
                return None  # trained biases, embeddings, saved modules: peft's business
            prefix = key[: -len(".weight")]
            prefix = prefix[: prefix.rindex(match["kind"])]
            shape = tuple(handle.get_slice(key).get_shape())
            pairs.setdefault(match["module"], {"prefix": prefix})[match["kind"]] = shape
    base_shapes: dict[str, tuple[int, ...]] = {}
    for shard in shards:
        with safe_open(str(base_dir / shard), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118
                base_shapes[key] = tuple(handle.get_slice(key).get_shape())

    weights = {}
    for module, found in pairs.items():
        a, b = found.get("lora_A"), found.get("lora_B")
        weight = base_shapes.get(f"{module}.weight")
        # Anything but a Linear weight the checkpoint names as the module is, with matching
        # shapes, is left to peft, which also names a mismatch precisely.
        if a is None or b is None or weight is None or len(weight) != 2:
            return None
        if len(a) != 2 or len(b) != 2 or a[0] != b[1] or (b[0], a[1]) != weight:
            return None
        weights[f"{module}.weight"] = found["prefix"]
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    return DirectMergePlan(scale=scale, weights=weights, shards=shards)


def _base_shards(base_dir: Path) -> tuple[str, ...] | None:
    if (base_dir / _INDEX_FILE).is_file():
        index = json.loads((base_dir / _INDEX_FILE).read_text(encoding="utf-8"))
        return tuple(sorted(set(index["weight_map"].values())))
    if (base_dir / _SINGLE_FILE).is_file():
        return (_SINGLE_FILE,)
    return None  # .bin checkpoints: transformers loads those


def _merge_direct(
    base_dir: Path, adapter_dir: Path, out: Path, target_dtype: str, plan: DirectMergePlan
) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    dtype = getattr(torch, target_dtype)
    adapter = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    total = 0
    with _torch_threads(1):
        for shard in plan.shards:
            tensors = {}
            with safe_open(str(base_dir / shard), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118
                    # float32 throughout, as peft does on a base loaded in float32. Not in
                    # place: get_tensor may return a view of the file's (private) mapping.
                    tensor = handle.get_tensor(key).to(torch.float32)
                    prefix = plan.weights.get(key)
                    if prefix is not None:
                        lora_a = adapter[f"{prefix}lora_A.weight"].to(torch.float32)
                        lora_b = adapter[f"{prefix}lora_B.weight"].to(torch.float32)
                        tensor = tensor + (lora_b @ lora_a) * plan.scale
                    tensors[key] = tensor.to(dtype).contiguous()
            total += sum(t.numel() * t.element_size() for t in tensors.values())
            save_file(tensors, str(out / shard), metadata={"format": "pt"})
    if len(plan.shards) > 1:
        index = json.loads((base_dir / _INDEX_FILE).read_text(encoding="utf-8"))
        index.setdefault("metadata", {})["total_size"] = total
        (out / _INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    config["dtype"] = target_dtype
    if "torch_dtype" in config:
        config["torch_dtype"] = target_dtype
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if (base_dir / "generation_config.json").is_file():
        shutil.copyfile(base_dir / "generation_config.json", out / "generation_config.json")


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    # The merge is a few hundred rank-r products B @ A added to their weights and one cast per
    # tensor: memory-bound pieces too small to split across threads, where OpenMP's barrier
    # waits cost more than they save, most of all on cores shared with another job (the
    # figures are in the commit that made the merge single-threaded).
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _tokenizer_source(adapter_dir: Path, base_dir: Path) -> Any:
    from transformers import AutoTokenizer

    # Training saves the tokenizer it used beside the adapter (maybe with a pad token or a
    # chat template it set); prefer it to the base's.
    has_own = all((adapter_dir / name).is_file() for name in _TOKENIZER_FILES)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir if has_own else base_dir)
    if not tokenizer.chat_template:
        base_tokenizer = AutoTokenizer.from_pretrained(base_dir)
        tokenizer.chat_template = base_tokenizer.chat_template
    return tokenizer


def _replace_dir(staging: Path, target: Path) -> None:
    if target.exists():
        # Keep the old folder until the new one is in place, then drop it.
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        os.rename(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, target)
