"""transformers in process, with an optional peft adapter: evaluate before packaging.

Greedy decoding when temperature is 0 (``do_sample=False``: the same text as calling
``model.generate`` directly); ``TextIteratorStreamer`` gives the text as it is produced, so
time to first token is real.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from loragate.artifacts import combine_digests, folder_digest
from loragate.backends.base import (
    BaseBackend,
    GenerationOptions,
    Message,
    Prompt,
    Response,
    StreamEnd,
    StreamItem,
)
from loragate.backends.faults import BackendError, RetryPolicy, SampleError


class HfBackend(BaseBackend):
    kind: ClassVar[str] = "hf"
    in_process: ClassVar[bool] = True

    def __init__(
        self,
        path: str | Path,
        adapter: str | Path | None = None,
        *,
        n_threads: int | None = None,
        dtype: str = "float32",
        retry: RetryPolicy | None = None,
        spec: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.adapter = Path(adapter) if adapter is not None else None
        default_spec = f"hf:{self.path}" + (f"+{self.adapter}" if self.adapter else "")
        super().__init__(spec or default_spec, retry=retry or RetryPolicy(retries=0))
        self.dtype = dtype
        self.tokenizer, self.model = _load(self.path, self.adapter, dtype, n_threads)
        self._lock = threading.Lock()

    @cached_property
    def digest(self) -> str:
        base = folder_digest(self.path)
        if self.adapter is None:
            return base
        return combine_digests(base, folder_digest(self.adapter))

    def _describe_extra(self) -> dict[str, Any]:
        return {"path": str(self.path), "adapter": str(self.adapter) if self.adapter else None,
                "dtype": self.dtype}

    def encode(self, prompt: str | tuple[Message, ...]) -> dict[str, Any]:
        """Model inputs: the chat template applied to messages, or the raw prompt tokenized."""
        if isinstance(prompt, str):
            return dict(self.tokenizer(prompt, return_tensors="pt"))
        if not getattr(self.tokenizer, "chat_template", None):
            raise SampleError(f"{self.path}: the tokenizer has no chat template; "
                              "send a raw prompt instead of messages")
        return dict(self.tokenizer.apply_chat_template(
            [m.to_dict() for m in prompt], add_generation_prompt=True,
            return_tensors="pt", return_dict=True,
        ))

    def loglikelihood(self, messages: tuple[Message, ...], continuation: str) -> float:
        """log P(``continuation`` | the chat ``messages``, as the assistant's reply): the sum of
        the continuation tokens' log-probabilities (the same quantity as the gguf backend's)."""
        import torch

        with self._lock:
            context = self.encode(messages)["input_ids"]
            answer = self.tokenizer(continuation, add_special_tokens=False,
                                    return_tensors="pt")["input_ids"]
            if answer.shape[1] == 0:
                raise SampleError("an empty continuation has no likelihood")
            ids = torch.cat([context, answer], dim=1).to(self.model.device)
            with torch.no_grad():
                logits = self.model(input_ids=ids).logits[0].float()
            start = context.shape[1]
            scores = torch.log_softmax(logits[start - 1:ids.shape[1] - 1], dim=-1)
            picked = scores.gather(1, ids[0, start:].unsqueeze(1))
            return float(picked.sum())

    def generation_kwargs(self, options: GenerationOptions) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": options.max_tokens,
            "do_sample": not options.greedy,
            "pad_token_id": self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id,
        }
        if options.greedy:
            # Unset the sampling knobs a generation_config may carry, so greedy stays pure.
            kwargs.update(temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(temperature=options.temperature, top_p=options.top_p,
                          top_k=options.top_k)
        if options.stop:
            kwargs.update(stop_strings=list(options.stop), tokenizer=self.tokenizer)
        return kwargs

    def _stream(self, prompt: str | tuple[Message, ...], options: GenerationOptions
                ) -> Iterator[StreamItem]:
        import torch
        from transformers import TextIteratorStreamer

        with self._lock:
            inputs = self.encode(prompt)
            prompt_len = int(inputs["input_ids"].shape[-1])
            streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True,
                                            skip_special_tokens=True)
            outcome: dict[str, Any] = {}

            def run() -> None:
                try:
                    torch.manual_seed(options.seed)
                    with torch.inference_mode():
                        outcome["ids"] = self.model.generate(
                            **inputs, streamer=streamer, **self.generation_kwargs(options))
                except BaseException as exc:  # handed to the caller's thread below
                    outcome["error"] = exc
                    streamer.end()

            worker = threading.Thread(target=run, name="loragate-hf-generate", daemon=True)
            worker.start()
            text = ""
            for piece in streamer:
                if piece:
                    text += piece
                    yield piece
            worker.join()
            if "error" in outcome:
                raise SampleError(f"transformers generate failed: {outcome['error']}")
            new_ids = outcome["ids"][0, prompt_len:].tolist()
            yield self._end(new_ids, text, prompt_len, options)

    def _end(self, new_ids: list[int], text: str, prompt_len: int, options: GenerationOptions
             ) -> StreamEnd:
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        stopped = bool(new_ids) and new_ids[-1] in eos_ids
        hit_stop = any(s in text for s in options.stop)
        cut = not (stopped or hit_stop) and len(new_ids) >= options.max_tokens
        finish = "length" if cut else "stop"
        count = len(new_ids) - (1 if stopped else 0)
        return StreamEnd(finish_reason=finish, prompt_tokens=prompt_len, completion_tokens=count)

    def generate(self, prompt: Prompt, options: GenerationOptions | None = None) -> Response:
        response = super().generate(prompt, options)
        stops = (options or GenerationOptions()).stop
        if stops and response.ok:
            # transformers stops *after* a stop string; other backends cut it off.
            cut = min((response.text.find(s) for s in stops if s in response.text), default=-1)
            if cut >= 0:
                response = response.replace(text=response.text[:cut])
        return response


def _load(path: Path, adapter: Path | None, dtype: str, n_threads: int | None
          ) -> tuple[Any, Any]:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise BackendError("the hf backend needs torch and transformers: "
                           "pip install 'loragate[train]'") from exc
    if n_threads:
        torch.set_num_threads(n_threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as exc:
        raise BackendError(f"transformers could not load {path}: {exc}") from exc
    if adapter is not None:
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise BackendError("an hf adapter needs peft: pip install 'loragate[train]'") from exc
        try:
            model = PeftModel.from_pretrained(model, adapter)
        except (OSError, ValueError) as exc:
            raise BackendError(f"peft could not load adapter {adapter}: {exc}") from exc
    model.eval()
    return tokenizer, model
