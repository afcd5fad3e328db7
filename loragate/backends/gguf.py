"""llama.cpp in process, through llama-cpp-python: the embedded default backend.

Chat messages are rendered with the chat template stored in the GGUF itself (the same Jinja
renderer llama-cpp-python uses for it), tokenized here so the prompt token count is exact,
and generated with ``create_completion(stream=True)`` so time to first token is real.

Several requests at once (:meth:`GgufBackend.generate_each` with concurrency > 1) are decoded
together: one llama.cpp batch per step holds the next token of every running sequence (and
pieces of the prompts being read), each sequence in its own KV-cache stream of a second
context and sampled by its own sampler chain. On a CPU one batched step costs little more
than a single-sequence step, so the tokens per second add up (see benchmarks/gate_throughput.py).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from loragate.artifacts import combine_digests, file_digest
from loragate.backends.base import (
    BaseBackend,
    GenerationOptions,
    Message,
    Request,
    Response,
    StreamEnd,
    StreamItem,
    normalize_prompt,
    sampling_parameters,
)
from loragate.backends.faults import BackendError, RetryPolicy, SampleError

logger = logging.getLogger(__name__)

# Tokens per llama_decode call: prompt pieces and the running sequences' next tokens together.
# llama-cpp-python's own default batch size, so prompts are read in the same steps.
BATCH_TOKENS = 512
# KV-cache streams are sized in these steps, so a context is rebuilt rarely.
_CTX_STEP = 256
# A common start of every prompt this long (the system prompt and the chat template's header,
# for gate items) is read once and copied into each sequence's stream, as one-at-a-time
# generation reuses it from the previous request's cache.
MIN_SHARED_PREFIX = 16


class GgufBackend(BaseBackend):
    kind: ClassVar[str] = "gguf"
    in_process: ClassVar[bool] = True
    batches_in_process: ClassVar[bool] = True

    def __init__(
        self,
        path: str | Path,
        adapter: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        retry: RetryPolicy | None = None,
        spec: str | None = None,
        concurrency: int = 1,
    ) -> None:
        self.path = Path(path)
        self.adapter = Path(adapter) if adapter is not None else None
        default_spec = f"gguf:{self.path}" + (f"+{self.adapter}" if self.adapter else "")
        super().__init__(spec or default_spec, retry=retry or RetryPolicy(retries=0),
                         concurrency=concurrency)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._llm = _load_llama(self.path, self.adapter, n_ctx=n_ctx, n_threads=n_threads)
        self._formatter = _gguf_chat_formatter(self._llm)
        # A llama.cpp context serves one sequence at a time; the batch context is another
        # one on the same weights, made when first needed. One computation at a time: two
        # would only fight over the same cores.
        self._lock = threading.Lock()
        self._batcher: _BatchContext | None = None
        # The batching context's KV streams belong to one batch run from start to end.
        self._batch_lock = threading.Lock()
        self._batch_owner: int | None = None

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
                **sampling_parameters(options),
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

    def loglikelihood(self, messages: tuple[Message, ...], continuation: str) -> float:
        """log P(``continuation`` | the chat ``messages``, as the assistant's reply): the sum
        of the continuation tokens' log-probabilities, read from the model's logits (the
        multiple-choice method of lm-evaluation-harness), on the artifact that ships."""
        import numpy as np

        with self._lock:
            context, _ = self.prompt_tokens(messages)
            answer = self._llm.tokenize(continuation.encode("utf-8"), add_bos=False,
                                        special=False)
            tokens = context + answer
            if not answer:
                raise SampleError("an empty continuation has no likelihood")
            if len(tokens) > min(self.n_ctx, BATCH_TOKENS):
                raise SampleError(f"probe of {len(tokens)} tokens does not fit one batch of "
                                  f"{min(self.n_ctx, BATCH_TOKENS)}")
            with self._batch_lock:
                ctx = self._batch_context(1, len(tokens))
                ctx.forget(0)
                n = 0
                ctx.batch.n_tokens = 0
                for pos, token in enumerate(tokens):
                    # Logits only where they predict a continuation token.
                    n = _Decoder._put(ctx.batch, n, token, pos, 0, pos >= len(context) - 1)
                ctx.batch.n_tokens = n
                if ctx._llama_cpp.llama_decode(ctx.ctx, ctx.batch) != 0:
                    raise BackendError("llama.cpp could not evaluate the probe")
                n_vocab = ctx._llama_cpp.llama_vocab_n_tokens(ctx.vocab)
                total = 0.0
                for offset, token in enumerate(answer):
                    index = len(context) - 1 + offset
                    pointer = ctx._llama_cpp.llama_get_logits_ith(ctx.ctx, index)
                    logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,)).astype(np.float64)
                    top = logits.max()
                    total += float(logits[token] - top - np.log(np.exp(logits - top).sum()))
                ctx.forget(0)
            return total

    def _completion_tokens(self, text: str, finish: str, options: GenerationOptions) -> int:
        # The stream does not report a count; a cut at max_tokens is exactly max_tokens,
        # otherwise the text is tokenized again (exact except for rare merges).
        if finish == "length":
            return options.max_tokens
        if not text:
            return 0
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    # -- several sequences in one batch -------------------------------------------------------
    def effective_concurrency(self, requested: int | None = None) -> int:
        wanted = super().effective_concurrency(requested)
        # One stream more than the sequences may hold a shared prompt prefix.
        return min(wanted, _max_parallel_sequences() - 1)

    def generate_each(
        self,
        requests: Sequence[Request],
        concurrency: int | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> Iterator[tuple[int, Response]]:
        """Answers as they finish; with concurrency k > 1, k sequences decoded in one batch.

        Sampling means what it means one at a time (top_k, top_p, temperature, then a draw
        seeded with the request's seed; greedy at temperature 0; no repeat penalty, min_p 0),
        as do stop strings, max_tokens and the context limit. Batched logits differ from
        single-sequence ones in the last bits, so a near tie may go the other way.
        """
        k = min(self.effective_concurrency(concurrency), max(1, len(requests)))
        if k == 1:
            yield from super().generate_each(requests, 1, stop=stop)
            return
        # Every prompt is rendered before anything is answered: a malformed one raises here.
        prepared = [self._job(index, prompt, options or GenerationOptions())
                    for index, (prompt, options) in enumerate(requests)]
        jobs: deque[_Job] = deque()
        for index, job_or_error in enumerate(prepared):
            if isinstance(job_or_error, Response):
                yield index, job_or_error
            else:
                jobs.append(job_or_error)
        if jobs:
            yield from self._decode_jobs(jobs, k, stop)

    def _job(self, index: int, prompt: Any, options: GenerationOptions) -> _Job | Response:
        """A request ready to decode, or its error response (too long, no chat template)."""
        normalized = normalize_prompt(prompt)
        try:
            tokens, template_stops = self.prompt_tokens(normalized)
            n_ctx = self._llm.n_ctx()
            if len(tokens) >= n_ctx:
                raise SampleError(f"prompt of {len(tokens)} tokens does not fit the context "
                                  f"of {n_ctx} tokens")
        except SampleError as exc:
            return self._error_response(f"{self.spec}: {exc}", 1, 0.0)
        # As create_completion does: max_tokens is cut to what the context has left.
        budget = min(options.max_tokens, n_ctx - len(tokens))
        stops = [s.encode("utf-8") for s in [*template_stops, *options.stop] if s]
        return _Job(index, tokens, options, stops, budget)

    def _decode_jobs(self, jobs: deque[_Job], k: int, stop: threading.Event | None
                     ) -> Iterator[tuple[int, Response]]:
        if self._batch_owner == threading.get_ident():
            # Waiting for the lock would wait for ourselves.
            raise BackendError(f"{self.spec}: a batch is already being decoded in this thread; "
                               "finish reading its answers before starting another")
        with self._batch_lock:
            self._batch_owner = threading.get_ident()
            try:
                yield from self._decode_locked(jobs, k, stop)
            finally:
                self._batch_owner = None

    def _decode_locked(self, jobs: deque[_Job], k: int, stop: threading.Event | None
                       ) -> Iterator[tuple[int, Response]]:
        per_sequence = max(len(job.prompt) + job.budget for job in jobs)
        prefix = _shared_prefix([job.prompt for job in jobs])
        # The model lock is taken per step, not per run: between steps the answers are handed
        # out, and one-at-a-time generate (the model's own context) may run.
        with self._lock:
            # A shared prefix lives in a stream of its own, next to the k sequences' streams.
            batcher = self._batch_context(k + 1 if prefix else k, per_sequence)
            decoder = _Decoder(self, batcher, jobs, k, prefix)
        try:
            while not decoder.finished:
                if stop is not None and stop.is_set():
                    return
                with self._lock:
                    finished = decoder.step()
                yield from finished
        finally:
            with self._lock:
                decoder.abandon()

    def _batch_context(self, n_seq: int, per_sequence: int) -> _BatchContext:
        """The batching context, rebuilt only when it has too few or too short streams."""
        needed = min(_round_up(per_sequence, _CTX_STEP), _round_up(self._llm.n_ctx(), _CTX_STEP))
        current = self._batcher
        if current is not None and current.n_seq >= n_seq and current.n_ctx_seq >= needed:
            return current
        if current is not None:
            current.close()
            self._batcher = None
        n_seq = max(n_seq, current.n_seq if current else 0)
        needed = max(needed, current.n_ctx_seq if current else 0)
        self._batcher = _BatchContext(self._llm, n_seq=n_seq, n_ctx_seq=needed)
        return self._batcher

    def close(self) -> None:
        batcher = self.__dict__.pop("_batcher", None)
        if batcher is not None:
            batcher.close()
        llm = self.__dict__.pop("_llm", None)
        if llm is not None:
            llm.close()


def _load_llama(path: Path, adapter: Path | None, *, n_ctx: int, n_threads: int | None) -> Any:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise BackendError(
            "the gguf backend needs llama-cpp-python: pip install 'loragate[gate]'"
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


# -- batched decoding ------------------------------------------------------------------------
def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _max_parallel_sequences() -> int:
    try:
        import llama_cpp

        return int(llama_cpp.llama_max_parallel_sequences())
    except (ImportError, AttributeError):
        return 64


class _BatchContext:
    """A llama.cpp context on the backend's model with ``n_seq`` KV streams of ``n_ctx_seq``.

    Each sequence gets a stream of its own (not one shared cache), so a sequence attends
    only to its own tokens and can never run out of room because of the others.
    """

    def __init__(self, llm: Any, *, n_seq: int, n_ctx_seq: int) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_seq_max = n_seq
        params.n_ctx = n_seq * n_ctx_seq
        params.n_batch = BATCH_TOKENS
        params.n_ubatch = BATCH_TOKENS
        params.kv_unified = False
        self.ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
        if not self.ctx:
            raise BackendError(f"llama.cpp could not make a context for {n_seq} sequences of "
                               f"{n_ctx_seq} tokens (out of memory?)")
        self.batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        self.n_seq = n_seq
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(self.ctx))
        if self.n_ctx_seq < n_ctx_seq:
            self.close()
            raise BackendError(f"llama.cpp gave {self.n_ctx_seq} tokens per sequence where "
                               f"{n_ctx_seq} were asked for; lower the concurrency or n_ctx")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = llm._model.vocab
        adapter = getattr(llm, "_lora_adapter", None)
        if adapter is not None:
            # A LoRA is applied per context: the batching context needs it as well.
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(llm.lora_scale)
            if llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, scales):
                self.close()
                raise BackendError(f"llama.cpp could not apply the LoRA adapter {llm.lora_path} "
                                   "to the batching context")
        self._pieces: dict[int, bytes] = {}
        self._piece_buffer = ctypes.create_string_buffer(64)

    def piece(self, token: int) -> bytes:
        """The token's text as llama-cpp-python detokenizes it (special tokens: empty)."""
        cached = self._pieces.get(token)
        if cached is None:
            size = len(self._piece_buffer)
            n = self._llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buffer,
                                                     size, 0, False)
            if n < 0:  # the buffer is too small: -n is what it needs
                self._piece_buffer = ctypes.create_string_buffer(-n)
                n = self._llama_cpp.llama_token_to_piece(self.vocab, token, self._piece_buffer,
                                                         -n, 0, False)
            cached = self._piece_buffer.raw[:n]
            self._pieces[token] = cached
        return cached

    def is_end(self, token: int) -> bool:
        return bool(self._llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def forget(self, seq_id: int) -> None:
        self._llama_cpp.llama_memory_seq_rm(self.memory, seq_id, -1, -1)

    def copy(self, source: int, target: int) -> None:
        """Make ``target``'s stream a copy of ``source``'s (done at the next decode).

        Between streams llama.cpp copies whole streams only (it asserts p0 = p1 = -1).
        """
        self._llama_cpp.llama_memory_seq_cp(self.memory, source, target, -1, -1)

    def sampler(self, options: GenerationOptions) -> Any:
        """A sampler chain as llama-cpp-python builds one for create_completion."""
        lc = self._llama_cpp
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if options.greedy:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
            return chain
        policy = sampling_parameters(options)
        # The order of llama-cpp-python's own chain; a penalty of 1.0 is no sampler at all.
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(policy["top_k"]))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(policy["top_p"], 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(policy["min_p"], 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(policy["temperature"]))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(policy["seed"] & 0xFFFFFFFF))
        return chain

    def free_sampler(self, chain: Any) -> None:
        self._llama_cpp.llama_sampler_free(chain)

    def close(self) -> None:
        if getattr(self, "batch", None) is not None:
            self._llama_cpp.llama_batch_free(self.batch)
            self.batch = None
        if getattr(self, "ctx", None):
            self._llama_cpp.llama_free(self.ctx)
            self.ctx = None


@dataclass
class _Job:
    index: int
    prompt: list[int]
    options: GenerationOptions
    stops: list[bytes]
    budget: int


@dataclass
class _Sequence:
    """One request being decoded in KV stream ``seq_id``."""

    job: _Job
    seq_id: int
    sampler: Any
    start: float
    fed: int = 0  # prompt tokens already in the KV cache
    next_token: int | None = None  # sampled, to be fed in the next step
    generated: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    first_s: float | None = None
    logits_at: int = -1  # where its logits land in this step's batch

    @property
    def position(self) -> int:
        return self.fed + len(self.generated) - (1 if self.next_token is not None else 0)


class _Decoder:
    """Continuous batching: a finished sequence's stream takes the next request at once."""

    def __init__(self, backend: GgufBackend, ctx: _BatchContext, jobs: deque[_Job],
                 k: int, prefix: list[int]) -> None:
        self.backend = backend
        self.ctx = ctx
        self.jobs = jobs
        self.free = list(range(k - 1, -1, -1))
        self.running: dict[int, _Sequence] = {}
        self.prefix = prefix
        self.prefix_seq = k  # the stream after the k sequences' ones
        self.prefix_ready = not prefix
        ctx._llama_cpp.llama_memory_clear(ctx.memory, True)

    @property
    def finished(self) -> bool:
        return not self.jobs and not self.running

    def step(self) -> list[tuple[int, Response]]:
        """Admit waiting requests, decode one batch, sample; the answers that ended."""
        if not self.prefix_ready:
            self._read_prefix()
            return []
        self._admit()
        self._compact()
        fed = self._fill_batch()
        status = self.ctx._llama_cpp.llama_decode(self.ctx.ctx, self.ctx.batch)
        if status != 0:
            return [self._fail(seq, f"llama_decode returned {status}") for seq in fed]
        done: list[tuple[int, Response]] = []
        for seq in fed:
            if seq.logits_at >= 0:
                token = self.ctx._llama_cpp.llama_sampler_sample(seq.sampler, self.ctx.ctx,
                                                                 seq.logits_at)
                response = self._accept(seq, token)
                if response is not None:
                    done.append((seq.job.index, response))
        return done

    def _read_prefix(self) -> None:
        """Decode the shared prefix into its stream; without it every prompt is read whole."""
        lc = self.ctx._llama_cpp
        for start in range(0, len(self.prefix), BATCH_TOKENS):
            n = 0
            for pos in range(start, min(start + BATCH_TOKENS, len(self.prefix))):
                n = self._put(self.ctx.batch, n, self.prefix[pos], pos, self.prefix_seq, False)
            self.ctx.batch.n_tokens = n
            status = lc.llama_decode(self.ctx.ctx, self.ctx.batch)
            if status != 0:
                logger.warning("llama_decode returned %d reading the shared prompt prefix; "
                               "reading every prompt whole", status)
                self.ctx.forget(self.prefix_seq)
                self.prefix = []
                break
        self.prefix_ready = True

    def _admit(self) -> None:
        while self.free and self.jobs:
            job = self.jobs.popleft()
            seq_id = self.free.pop()
            seq = _Sequence(job, seq_id, self.ctx.sampler(job.options), time.perf_counter())
            if self.prefix:
                self.ctx.copy(self.prefix_seq, seq_id)
                seq.fed = len(self.prefix)
            self.running[seq_id] = seq

    def _fill_batch(self) -> list[_Sequence]:
        """Every running sequence's next token, then prompt pieces in the room left.

        Tokens go in by sequence id: with one KV stream per sequence llama.cpp cuts a batch
        into micro-batches (one forward pass each) of consecutive sequence ids only.
        """
        order = sorted(self.running.values(), key=lambda seq: seq.seq_id)
        room = BATCH_TOKENS - sum(seq.next_token is not None for seq in order)
        reads: dict[int, int] = {}
        for seq in order:
            if seq.next_token is None and room > 0:
                reads[seq.seq_id] = min(room, len(seq.job.prompt) - seq.fed)
                room -= reads[seq.seq_id]
        batch = self.ctx.batch
        n = 0
        fed: list[_Sequence] = []
        for seq in order:
            seq.logits_at = -1
            if seq.next_token is not None:
                n = self._put(batch, n, seq.next_token, seq.position, seq.seq_id, True)
                seq.logits_at = n - 1
                seq.next_token = None
            elif reads.get(seq.seq_id):
                end = seq.fed + reads[seq.seq_id]
                for pos in range(seq.fed, end):
                    n = self._put(batch, n, seq.job.prompt[pos], pos, seq.seq_id,
                                  pos == len(seq.job.prompt) - 1)
                seq.fed = end
                if end == len(seq.job.prompt):
                    seq.logits_at = n - 1
            else:
                continue
            fed.append(seq)
        batch.n_tokens = n
        return fed

    def _compact(self) -> None:
        """Once nothing waits, move the last sequences into the streams freed below them.

        A gap in the sequence ids would cut every step into several micro-batches.
        """
        while not self.jobs and self.free and self.running:
            low, high = min(self.free), max(self.running)
            if high < low:
                return
            seq = self.running.pop(high)
            # The metadata moves now, the data at the next decode (it is still there then:
            # removing a sequence only forgets its cells).
            self.ctx.copy(high, low)
            self.ctx.forget(high)
            seq.seq_id = low
            self.running[low] = seq
            self.free.remove(low)
            self.free.append(high)

    @staticmethod
    def _put(batch: Any, n: int, token: int, pos: int, seq_id: int, logits: bool) -> int:
        batch.token[n] = token
        batch.pos[n] = pos
        batch.n_seq_id[n] = 1
        batch.seq_id[n][0] = seq_id
        batch.logits[n] = logits
        return n + 1

    def _accept(self, seq: _Sequence, token: int) -> Response | None:
        """Take one sampled token; the response when the sequence has ended."""
        if self.ctx.is_end(token):
            return self._finish(seq, "stop", bytes(seq.text))
        seq.generated.append(token)
        piece = self.ctx.piece(token)
        if piece and seq.first_s is None:
            seq.first_s = time.perf_counter() - seq.start
        seq.text += piece
        cut = _first_stop(seq.text, seq.job.stops, len(piece))
        if cut is not None:
            return self._finish(seq, "stop", bytes(seq.text[:cut]), cut_at_stop=True)
        if len(seq.generated) >= seq.job.budget:
            return self._finish(seq, "length", bytes(seq.text))
        seq.next_token = token
        return None

    def _finish(self, seq: _Sequence, reason: str, text: bytes, *, cut_at_stop: bool = False
                ) -> Response:
        decoded = text.decode("utf-8", errors="ignore")
        completion = len(seq.generated)
        if cut_at_stop:
            # As one at a time: the answer's tokens, not the ones that spelled the stop string.
            completion = len(self.backend.llama.tokenize(text, add_bos=False, special=True)) \
                if text else 0
        response = Response(
            text=decoded,
            finish_reason="length" if reason == "length" else "stop",
            truncated=reason == "length",
            prompt_tokens=len(seq.job.prompt),
            completion_tokens=completion,
            ttft_s=seq.first_s,
            total_s=time.perf_counter() - seq.start,
            model_digest=self.backend.digest,
        )
        self._release(seq)
        return response

    def _fail(self, seq: _Sequence, message: str) -> tuple[int, Response]:
        elapsed = time.perf_counter() - seq.start
        self._release(seq)
        return seq.job.index, self.backend._error_response(f"{self.backend.spec}: {message}",
                                                           1, elapsed)

    def _release(self, seq: _Sequence) -> None:
        # Off the running list first: an interrupt in here must not free the sampler twice.
        if self.running.pop(seq.seq_id, None) is None:
            return
        self.free.append(seq.seq_id)
        self.ctx.forget(seq.seq_id)
        self.ctx.free_sampler(seq.sampler)

    def abandon(self) -> None:
        """Drop what is still running (a stop, an interrupt): nothing of it is answered."""
        for seq in list(self.running.values()):
            self._release(seq)
        self.jobs.clear()


def _shared_prefix(prompts: list[list[int]]) -> list[int]:
    """The tokens every prompt starts with, leaving each at least one of its own to read."""
    shortest = min(len(p) for p in prompts)
    first = prompts[0]
    length = 0
    while length < shortest - 1 and all(p[length] == first[length] for p in prompts):
        length += 1
    return first[:length] if length >= MIN_SHARED_PREFIX else []


def _first_stop(text: bytearray, stops: list[bytes], added: int) -> int | None:
    """Where the earliest stop string starts, looking only where the last piece could end one."""
    best: int | None = None
    for stop in stops:
        start = max(0, len(text) - added - len(stop) + 1)
        found = text.find(stop, start)
        if found != -1 and (best is None or found < best):
            best = found
    return best
