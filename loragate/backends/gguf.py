"""llama.cpp in process, through llama-cpp-python: the embedded default backend.

Chat messages are rendered with the chat template stored in the GGUF itself (the same Jinja
renderer llama-cpp-python uses for it), tokenized here so the prompt token count is exact,
and generated with ``create_completion(stream=True)`` so time to first token is real.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from loragate.backends.base import BaseBackend, GenerationOptions, Message, StreamEnd, StreamItem
from loragate.backends.cache import combine_digests, file_digest
from loragate.backends.faults import BackendError, RetryPolicy, SampleError


class GgufBackend(BaseBackend):
    kind: ClassVar[str] = "gguf"
    in_process: ClassVar[bool] = True

    def __init__(
        self,
        path: str | Path,
        adapter: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        retry: RetryPolicy | None = None,
        spec: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.adapter = Path(adapter) if adapter is not None else None
        default_spec = f"gguf:{self.path}" + (f"+{self.adapter}" if self.adapter else "")
        super().__init__(spec or default_spec, retry=retry or RetryPolicy(retries=0))
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._llm = _load_llama(self.path, self.adapter, n_ctx=n_ctx, n_threads=n_threads)
        self._formatter = _gguf_chat_formatter(self._llm)
        # A llama.cpp context serves one sequence at a time.
        self._lock = threading.Lock()

    @cached_property
    def digest(self) -> str:
        base = file_digest(self.path)
        if self.adapter is None:
            return base
        return combine_digests(base, file_digest(self.adapter))

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (for tokenizer access in tests and tools)."""
        return self._llm

    def _describe_extra(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "adapter": str(self.adapter) if self.adapter else None,
            "n_ctx": self.n_ctx,
            "n_threads": self._llm.n_threads,
            "chat_template": "gguf" if self._formatter is not None else None,
        }

    def prompt_tokens(self, prompt: str | tuple[Message, ...]) -> tuple[list[int], list[str]]:
        """The token ids the model will see, and the template's stop strings."""
        if isinstance(prompt, str):
            return self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True), []
        if self._formatter is None:
            raise SampleError(f"{self.path} has no chat template (tokenizer.chat_template); "
                              "send a raw prompt instead of messages")
        rendered = self._formatter(messages=[m.to_dict() for m in prompt])
        stops = rendered.stop or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        tokens = self._llm.tokenize(rendered.prompt.encode("utf-8"),
                                    add_bos=not rendered.added_special, special=True)
        return tokens, stops

    def _stream(self, prompt: str | tuple[Message, ...], options: GenerationOptions
                ) -> Iterator[StreamItem]:
        with self._lock:
            tokens, template_stops = self.prompt_tokens(prompt)
            if len(tokens) >= self.n_ctx:
                raise SampleError(f"prompt of {len(tokens)} tokens does not fit the context "
                                  f"of {self.n_ctx} tokens")
            finish = "stop"
            chunks = self._llm.create_completion(
                tokens,
                max_tokens=options.max_tokens,
                temperature=options.temperature,
                top_p=options.top_p,
                top_k=options.top_k,
                # llama-cpp-python defaults min_p to 0.05; 0 keeps top_k/top_p the only filters,
                # as with Ollama's and transformers' defaults.
                min_p=0.0,
                repeat_penalty=1.0,
                seed=options.seed,
                stop=template_stops + list(options.stop),
                stream=True,
            )
            parts: list[str] = []
            for chunk in chunks:
                choice = chunk["choices"][0]
                if choice["text"]:
                    parts.append(choice["text"])
                    yield choice["text"]
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            yield StreamEnd(
                finish_reason="length" if finish == "length" else "stop",
                prompt_tokens=len(tokens),
                completion_tokens=self._completion_tokens("".join(parts), finish, options),
            )

    def _completion_tokens(self, text: str, finish: str, options: GenerationOptions) -> int:
        # The stream does not report a count; a cut at max_tokens is exactly max_tokens,
        # otherwise the text is tokenized again (exact except for rare merges).
        if finish == "length":
            return options.max_tokens
        if not text:
            return 0
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def close(self) -> None:
        llm = self.__dict__.pop("_llm", None)
        if llm is not None:
            llm.close()


def _load_llama(path: Path, adapter: Path | None, *, n_ctx: int, n_threads: int | None) -> Any:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise BackendError(
            "the gguf backend needs llama-cpp-python: pip install 'loragate[package]'"
        ) from exc
    if not path.is_file():
        raise FileNotFoundError(f"GGUF model not found: {path}")
    if adapter is not None and not adapter.is_file():
        raise FileNotFoundError(f"GGUF LoRA adapter not found: {adapter}")
    try:
        return Llama(
            model_path=str(path),
            lora_path=str(adapter) if adapter is not None else None,
            n_ctx=n_ctx,
            n_threads=n_threads,
            # Prompt evaluation would otherwise use every core whatever n_threads says; on a
            # shared machine llama.cpp's spinning threads then stall each other for seconds.
            n_threads_batch=n_threads,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise BackendError(f"llama.cpp could not load {path}"
                           + (f" with adapter {adapter}" if adapter else "") + f": {exc}") from exc


def _gguf_chat_formatter(llm: Any) -> Any:
    """A renderer for the GGUF's own ``tokenizer.chat_template``, or None when it has none."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    model = llm._model  # token texts are only exposed on the internal model wrapper
    eos_id, bos_id = llm.token_eos(), llm.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id],
    )
