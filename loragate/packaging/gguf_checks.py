"""Step 2 measurements of a packaged GGUF: valid, of the asked type, its size, speed and fidelity.

Fidelity is greedy next-token agreement with the merged HF model: for each hold-out prompt the
HF model generates a greedy continuation; then, teacher-forced on that same token sequence, the
GGUF's argmax is compared with the HF model's at every position. Both sides see the very same
token ids (the HF tokenizer's), so the figure measures the weights, not two tokenizers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loragate.packaging.quantize import InvalidGGUFError, ftype_value, read_metadata

REQUIRED_KEYS = ("general.architecture", "general.file_type", "tokenizer.ggml.model")
TIMING_PROMPT = "<|im_start|>user\nWrite a short plan.<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class GGUFInfo:
    path: Path
    architecture: str
    file_type: int
    tensor_count: int
    size_bytes: int
    chat_template: str | None


def inspect_gguf(path: Path) -> GGUFInfo:
    """Read the whole header and metadata with ``gguf.GGUFReader``; refuse a broken file.

    Slower than :func:`read_metadata` (seconds on a 49k vocabulary) and thorough: every tensor's
    extent is read, so a truncated data section fails here too.
    """
    from gguf import GGUFReader

    path = Path(path)
    if not path.is_file():
        raise InvalidGGUFError(f"{path}: GGUF file not found")
    try:
        reader = GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError, IndexError, struct.error, …
        raise InvalidGGUFError(
            f"{path}: not a valid GGUF file ({type(exc).__name__}: {exc})"
        ) from None
    missing = [key for key in REQUIRED_KEYS if reader.get_field(key) is None]
    if missing:
        raise InvalidGGUFError(f"{path}: GGUF metadata lacks {missing}")
    if not reader.tensors:
        raise InvalidGGUFError(f"{path}: GGUF holds no tensors")
    template = reader.get_field("tokenizer.chat_template")
    return GGUFInfo(
        path=path,
        architecture=str(reader.get_field("general.architecture").contents()),
        file_type=int(reader.get_field("general.file_type").contents()),
        tensor_count=len(reader.tensors),
        size_bytes=path.stat().st_size,
        chat_template=None if template is None else str(template.contents()),
    )


def file_type_matches(path: Path, quant_type: str) -> bool:
    return int(read_metadata(path)["general.file_type"]) == ftype_value(quant_type)


def size_ratio(path: Path, f16_path: Path) -> float:
    """Size of ``path`` over the f16 file's (Q4_K_M of a 135M model: about 0.4)."""
    return Path(path).stat().st_size / Path(f16_path).stat().st_size


@dataclass
class SpeedResult:
    load_s: float
    tokens: int
    generate_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.generate_s if self.generate_s > 0 else 0.0


def measure_speed(
    path: Path, *, n_threads: int | None = None, n_ctx: int = 512, max_tokens: int = 64,
    prompt: str = TIMING_PROMPT,
) -> SpeedResult:
    """Load time and greedy generation speed of a GGUF through llama.cpp (llama-cpp-python)."""
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    load_s = time.perf_counter() - started
    try:
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        llm.eval(tokens)  # the prompt is not part of the generation figure
        generated = 0
        started = time.perf_counter()
        for token in llm.generate(tokens, temp=0.0, reset=False):
            generated += 1
            if generated >= max_tokens or token == llm.token_eos():
                break
        return SpeedResult(load_s, generated, time.perf_counter() - started)
    finally:
        llm.close()


@dataclass
class AgreementResult:
    agreement: float
    positions: int
    prompts: int
    per_prompt: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def token_agreement(
    hf_dir: Path,
    gguf_path: Path,
    conversations: Sequence[Sequence[dict[str, str]]],
    *,
    new_tokens: int = 16,
    n_threads: int | None = None,
    n_ctx: int = 2048,
) -> AgreementResult:
    """Greedy next-token agreement between the HF model in ``hf_dir`` and the GGUF."""
    import numpy as np
    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not conversations:
        raise ValueError("token_agreement needs at least one hold-out prompt")
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    llm = Llama(str(gguf_path), n_ctx=n_ctx, n_threads=n_threads, logits_all=True,
                verbose=False)
    per_prompt: list[float] = []
    matched = total = 0
    try:
        for messages in conversations:
            prompt_ids = _prompt_ids(tokenizer, messages, n_ctx - new_tokens)
            sequence = _greedy_continuation(model, tokenizer, prompt_ids, new_tokens)
            continuation = sequence[len(prompt_ids):]
            if not continuation:
                continue
            llm.reset()
            llm.eval(sequence[:-1])
            start = len(prompt_ids) - 1
            gguf_choice = np.argmax(llm.scores[start:start + len(continuation)], axis=-1)
            hits = int(sum(int(a) == b for a, b in zip(gguf_choice, continuation, strict=True)))
            matched += hits
            total += len(continuation)
            per_prompt.append(hits / len(continuation))
    finally:
        llm.close()
    return AgreementResult(matched / total if total else 0.0, total, len(per_prompt), per_prompt)


def _prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]], max_len: int) -> list[int]:
    ids = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):  # newer transformers return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)[-max_len:]


def _greedy_continuation(model: Any, tokenizer: Any, prompt_ids: list[int], n: int) -> list[int]:
    import torch

    with torch.no_grad():
        output = model.generate(
            torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids), dtype=int),
            max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
    return [int(t) for t in output[0]]
