"""Turn samples into token ids and labels the way the base model was instruction-tuned.

The prompt is rendered with the tokenizer's own chat template (system prompt from the config,
user = instruction + input, assistant = output). Only the assistant's tokens are trained on,
the turn's end-of-sequence token included, so the model learns to stop; the prompt and any
padding are labelled -100. Batches are padded to their longest member, never to
``max_seq_length``; with ``packing`` a batch is flattened into one row whose position ids
restart per sample, so attention does not cross samples and no padding is computed at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loragate.training.data import Message, Sample

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100

# The plan's layout, used only for a tokenizer without a chat template (a base, non-chat model).
FALLBACK_SYSTEM = "{system}\n\n"
FALLBACK_USER = "### Instruction:\n{instruction}\n\n"
FALLBACK_INPUT = "### Input:\n{input}\n\n"
FALLBACK_RESPONSE = "### Response:\n"


class FormattingError(ValueError):
    """A sample that cannot be rendered; the message names the sample's file and line."""


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def supervised_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def with_system_prompt(messages: Sequence[Message], system_prompt: str | None) -> list[Message]:
    """The conversation with the configured system prompt first, unless it brings its own."""
    if system_prompt and not any(m.role == "system" for m in messages):
        return [Message("system", system_prompt), *messages]
    return list(messages)


def render(messages: Sequence[Message], tokenizer: PreTrainedTokenizerBase
           ) -> tuple[str, list[tuple[int, int]]]:
    """The text of a conversation and the character spans of the assistant turns to train on.

    A span covers the turn's content and its end-of-turn token, not the newline the template
    may put after it, and not the ``<|im_start|>assistant`` header (that is prompt).
    """
    if has_chat_template(tokenizer):
        return _render_with_template(messages, tokenizer)
    return _render_fallback(messages, tokenizer)


def _template(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message],
              add_generation_prompt: bool) -> str:
    chat = [{"role": m.role, "content": m.content} for m in messages]
    return tokenizer.apply_chat_template(
        chat, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def _render_with_template(messages: Sequence[Message], tokenizer: PreTrainedTokenizerBase
                          ) -> tuple[str, list[tuple[int, int]]]:
    full = _template(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        prompt = _template(tokenizer, messages[:index], add_generation_prompt=True)
        upto = _template(tokenizer, messages[: index + 1], add_generation_prompt=False)
        if not (upto.startswith(prompt) and full.startswith(upto)):
            if index == len(messages) - 1:
                raise FormattingError(
                    "the chat template does not render the conversation as prompt + answer"
                )
            # Templates that rewrite earlier assistant turns: train on the final one only.
            continue
        end = len(upto.rstrip())
        spans.append((len(prompt), end))
    return full.rstrip(), spans


def _render_fallback(messages: Sequence[Message], tokenizer: PreTrainedTokenizerBase
                     ) -> tuple[str, list[tuple[int, int]]]:
    text = tokenizer.bos_token or ""
    spans = []
    for message in messages:
        if message.role == "system":
            text += FALLBACK_SYSTEM.format(system=message.content)
        elif message.role == "user":
            instruction, _, extra = message.content.partition("\n\n")
            text += FALLBACK_USER.format(instruction=instruction)
            if extra:
                text += FALLBACK_INPUT.format(input=extra)
        else:
            text += FALLBACK_RESPONSE
            start = len(text)
            text += message.content + (tokenizer.eos_token or "")
            spans.append((start, len(text)))
            text += "\n\n"
    return text.rstrip(), spans


# A valid record can be far longer than max_seq_length (a pasted log, a whole file): a record
# of megabytes costs seconds and gigabytes to tokenize, all to keep its first max_seq_length
# tokens (README, "broken inputs", has the measured case). So
# each message is cut, before rendering, to a length that still holds more tokens than can be
# kept: no token covers more characters than the vocabulary's longest entry (byte-level BPE
# stores a token as one character per byte; SentencePiece as its text), doubled in case a
# normalizer composes two characters into one. The margin covers the few tokens that change
# where the cut splits a word. Every token that truncation keeps is then the same as without
# the cut (SmolLM2: 81 characters at most, so 2048 tokens keep 342k characters).
CUT_MARGIN_TOKENS = 64
NORMALIZER_FACTOR = 2


def content_char_limit(tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> int:
    """Characters of one message that always hold more than ``max_seq_length`` tokens."""
    longest = max((len(token) for token in tokenizer.get_vocab()), default=1)
    return (max_seq_length + CUT_MARGIN_TOKENS) * max(longest, 1) * NORMALIZER_FACTOR


def cut_messages(messages: Sequence[Message], limit: int) -> tuple[list[Message], bool]:
    """The messages with each content cut to ``limit`` characters; whether any was cut.

    Only the first message over the limit matters (everything after it lies beyond the
    tokens kept); later ones are cut too so rendering stays cheap.
    """
    cut = [Message(m.role, m.content[:limit]) if len(m.content) > limit else m
           for m in messages]
    return cut, any(len(m.content) > limit for m in messages)


def encode(sample: Sample, tokenizer: PreTrainedTokenizerBase, *, system_prompt: str | None,
           max_seq_length: int, char_limit: int | None = None) -> Encoded:
    """Token ids and labels of one sample: -100 everywhere but the assistant's answer and EOS.

    ``char_limit`` (default :func:`content_char_limit`; pass it when encoding many samples)
    bounds each message before tokenizing, so an over-long record costs no more than one just
    over ``max_seq_length``.
    """
    if char_limit is None:
        char_limit = content_char_limit(tokenizer, max_seq_length)
    messages, was_cut = cut_messages(with_system_prompt(sample.messages, system_prompt),
                                     char_limit)
    text, spans = render(messages, tokenizer)
    # The rendered text already holds every special token the template wants (BOS included).
    tokens = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(tokens["input_ids"])
    labels = [
        token if _inside(offset, spans) else IGNORE_INDEX
        for token, offset in zip(input_ids, tokens["offset_mapping"], strict=True)
    ]
    eos = tokenizer.eos_token_id
    if eos is not None and (not input_ids or input_ids[-1] != eos):
        # The template does not end the turn with the tokenizer's EOS: add it, and train on it.
        input_ids.append(eos)
        labels.append(eos)
    truncated = was_cut or len(input_ids) > max_seq_length
    if truncated:
        input_ids, labels = input_ids[:max_seq_length], labels[:max_seq_length]
    if all(label == IGNORE_INDEX for label in labels):
        raise FormattingError(
            f"{sample.source}: no answer token left to train on within max_seq_length "
            f"{max_seq_length} (prompt is {len(input_ids)}+ tokens)"
        )
    return Encoded(input_ids, labels, truncated)


def _inside(offset: Sequence[int], spans: Sequence[tuple[int, int]]) -> bool:
    start, end = offset
    if end <= start:
        return False
    return any(lo <= start and end <= hi for lo, hi in spans)


@dataclass
class EncodedSet:
    """A tokenized split and its counts (for the stats and the throughput figures)."""

    dataset: datasets.Dataset
    supervised_tokens: int
    total_tokens: int
    truncated: int
    dropped: list[str]


def build_dataset(samples: Sequence[Sample], tokenizer: PreTrainedTokenizerBase, *,
                  system_prompt: str | None, max_seq_length: int) -> EncodedSet:
    """A ``datasets.Dataset`` with ``input_ids``, ``labels`` and ``length`` columns.

    A sample whose answer does not fit in ``max_seq_length`` at all is dropped and named;
    one that is cut is kept (its answer start is still worth training on) and counted.
    """
    import datasets

    rows: dict[str, list[Any]] = {"input_ids": [], "labels": [], "length": []}
    supervised = total = truncated = 0
    dropped = []
    char_limit = content_char_limit(tokenizer, max_seq_length)
    for sample in samples:
        try:
            encoded = encode(sample, tokenizer, system_prompt=system_prompt,
                             max_seq_length=max_seq_length, char_limit=char_limit)
        except FormattingError as exc:
            dropped.append(str(exc))
            continue
        rows["input_ids"].append(encoded.input_ids)
        rows["labels"].append(encoded.labels)
        rows["length"].append(len(encoded.input_ids))
        supervised += encoded.supervised_tokens
        total += len(encoded.input_ids)
        truncated += int(encoded.truncated)
    return EncodedSet(datasets.Dataset.from_dict(rows), supervised, total, truncated, dropped)


def make_collator(tokenizer: PreTrainedTokenizerBase, *, packing: bool,
                  pad_to_multiple_of: int | None = None) -> Any:
    """Dynamic padding to the batch's longest sample, or with ``packing`` no padding at all.

    Padding goes on the right: position ids then count from the first real token, as in
    inference. ``pad_to_multiple_of`` (8 on GPUs) rounds the padded length up.
    """
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if packing:
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return DataCollatorForSeq2Seq(
        tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX,
        pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt",
    )
