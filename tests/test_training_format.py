"""Formatting on the SmolLM2 tokenizer (via the tiny Llama): labels, EOS, padding, packing."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.training.data import Message, Sample
from loragate.training.formatting import (
    FALLBACK_RESPONSE,
    IGNORE_INDEX,
    FormattingError,
    build_dataset,
    encode,
    make_collator,
    render,
    with_system_prompt,
)

SYSTEM = "You are a Web4 agent."


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir: Path):
    from loragate.base_model import load_tokenizer

    return load_tokenizer(tiny_llama_dir)


def plan_sample(instruction: str = "Write the PDCA title", answer: str = "# PDCA: login fix",
                source: str = "t.jsonl:1") -> Sample:
    return Sample((Message("user", instruction), Message("assistant", answer)), source)


def supervised_ids(encoded) -> list[int]:
    return [label for label in encoded.labels if label != IGNORE_INDEX]


def test_only_the_answer_and_eos_are_labelled(tokenizer) -> None:
    encoded = encode(plan_sample(), tokenizer, system_prompt=SYSTEM, max_seq_length=512)
    assert encoded.input_ids[-1] == tokenizer.eos_token_id
    assert encoded.labels[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(supervised_ids(encoded)) == "# PDCA: login fix<|im_end|>"
    # The supervised tokens are one contiguous run at the end: the prompt is all -100.
    first = next(i for i, label in enumerate(encoded.labels) if label != IGNORE_INDEX)
    assert all(label == IGNORE_INDEX for label in encoded.labels[:first])
    assert encoded.labels[first:] == encoded.input_ids[first:]
    prompt_text = tokenizer.decode(encoded.input_ids[:first])
    assert prompt_text.endswith("<|im_start|>assistant\n")
    assert f"<|im_start|>system\n{SYSTEM}<|im_end|>" in prompt_text


def test_prompt_matches_what_generation_will_see(tokenizer) -> None:
    sample = plan_sample()
    encoded = encode(sample, tokenizer, system_prompt=SYSTEM, max_seq_length=512)
    first = next(i for i, label in enumerate(encoded.labels) if label != IGNORE_INDEX)
    chat = [{"role": m.role, "content": m.content}
            for m in with_system_prompt(sample.messages, SYSTEM)[:-1]]
    at_inference = tokenizer.apply_chat_template(chat, add_generation_prompt=True,
                                                 tokenize=False)
    assert tokenizer.decode(encoded.input_ids[:first]) == at_inference


def test_own_system_message_is_kept(tokenizer) -> None:
    sample = Sample((Message("system", "Custom"), Message("user", "q"),
                     Message("assistant", "a")), "m:1")
    text, _ = render(with_system_prompt(sample.messages, SYSTEM), tokenizer)
    assert "Custom" in text and SYSTEM not in text


def test_every_assistant_turn_of_a_conversation_is_trained(tokenizer) -> None:
    sample = Sample((Message("user", "one"), Message("assistant", "first answer"),
                     Message("user", "two"), Message("assistant", "second answer")), "m:2")
    encoded = encode(sample, tokenizer, system_prompt=None, max_seq_length=512)
    labelled = tokenizer.decode(supervised_ids(encoded))
    assert labelled == "first answer<|im_end|>second answer<|im_end|>"


def test_fallback_layout_only_without_a_chat_template(tiny_llama_dir: Path) -> None:
    from loragate.base_model import load_tokenizer

    plain = load_tokenizer(tiny_llama_dir)
    plain.chat_template = None
    sample = Sample((Message("user", "Do the thing\n\nwith this input"),
                     Message("assistant", "done")), "f:1")
    text, _ = render(with_system_prompt(sample.messages, SYSTEM), plain)
    assert "### Instruction:\nDo the thing\n\n### Input:\nwith this input\n\n" in text
    assert FALLBACK_RESPONSE + "done" in text
    encoded = encode(sample, plain, system_prompt=SYSTEM, max_seq_length=512)
    assert encoded.labels[-1] == plain.eos_token_id
    assert plain.decode(supervised_ids(encoded)) == "done<|im_end|>"


def test_too_long_prompt_is_dropped_and_named(tokenizer) -> None:
    long_prompt = plan_sample(instruction="word " * 400, source="long.jsonl:7")
    with pytest.raises(FormattingError, match="long.jsonl:7"):
        encode(long_prompt, tokenizer, system_prompt=SYSTEM, max_seq_length=64)
    result = build_dataset([long_prompt, plan_sample()], tokenizer, system_prompt=SYSTEM,
                           max_seq_length=64)
    assert len(result.dataset) == 1
    assert "long.jsonl:7" in result.dropped[0]


def test_long_answer_is_truncated_and_counted(tokenizer) -> None:
    sample = plan_sample(answer="token " * 200)
    result = build_dataset([sample], tokenizer, system_prompt=SYSTEM, max_seq_length=64)
    assert result.truncated == 1
    assert result.dataset[0]["length"] == 64
    assert result.supervised_tokens == sum(
        1 for label in result.dataset[0]["labels"] if label != IGNORE_INDEX)


def test_batches_pad_to_the_longest_sample_with_ignored_labels(tokenizer) -> None:
    samples = [plan_sample(answer="short"), plan_sample(answer="a much longer answer " * 5)]
    data = build_dataset(samples, tokenizer, system_prompt=SYSTEM, max_seq_length=2048)
    collate = make_collator(tokenizer, packing=False)
    rows = [{k: data.dataset[i][k] for k in ("input_ids", "labels")} for i in range(2)]
    batch = collate(rows)
    lengths = [len(r["input_ids"]) for r in rows]
    assert batch["input_ids"].shape == (2, max(lengths))  # never max_seq_length
    short = lengths.index(min(lengths))
    pad = max(lengths) - min(lengths)
    assert pad > 0
    assert batch["labels"][short, -pad:].eq(IGNORE_INDEX).all()
    assert batch["attention_mask"][short, -pad:].eq(0).all()
    assert batch["attention_mask"][short, :-pad].eq(1).all()
    assert batch["labels"][short, :-pad].tolist() == rows[short]["labels"]


def test_packing_keeps_samples_from_attending_to_each_other(tiny_llama_dir: Path,
                                                            tokenizer) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    samples = [plan_sample(answer="first"), plan_sample(instruction="Other", answer="second one")]
    data = build_dataset(samples, tokenizer, system_prompt=SYSTEM, max_seq_length=512)
    rows = [{k: data.dataset[i][k] for k in ("input_ids", "labels")} for i in range(2)]
    packed = make_collator(tokenizer, packing=True)(rows)
    assert packed["input_ids"].shape[0] == 1
    assert "attention_mask" not in packed
    assert packed["labels"][0, len(rows[0]["input_ids"])] == IGNORE_INDEX
    # As in training: no KV cache, so the position ids mark where each sample starts.
    with torch.no_grad():
        together = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                         use_cache=False).logits[0]
        alone = [model(input_ids=torch.tensor([r["input_ids"]]), use_cache=False).logits[0]
                 for r in rows]
    torch.testing.assert_close(together, torch.cat(alone), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- records far over the limit


class _RecordingTokenizer:
    """The real tokenizer, noting the length of every text it is asked to tokenize."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.lengths: list[int] = []

    def __call__(self, text, *args, **kwargs):
        self.lengths.append(len(text))
        return self._inner(text, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _words(count: int, seed: int = 0) -> str:
    import random

    rng = random.Random(seed)
    vocab = ["plan", "do", "check", "act", "TRON", "scenario", "init()", "  ", "\n", "Ünit",
             "—", "{", "}", "        ", "😀", "x" * 30]
    return " ".join(rng.choice(vocab) for _ in range(count))


def test_a_multi_megabyte_record_is_cut_before_it_is_tokenized(tokenizer) -> None:
    from loragate.training.formatting import content_char_limit

    answer = _words(1_500_000)  # about 7 MB of text
    assert len(answer) > 6_000_000
    recording = _RecordingTokenizer(tokenizer)
    encoded = encode(plan_sample(answer=answer), recording, system_prompt=SYSTEM,
                     max_seq_length=256)
    limit = content_char_limit(tokenizer, 256)
    assert limit < 100_000
    # Only the cut text (and the short prompt around it) ever reaches the tokenizer.
    assert recording.lengths and max(recording.lengths) < limit + 1_000
    assert encoded.truncated and len(encoded.input_ids) == 256
    assert encoded.supervised_tokens > 200


def test_a_multi_megabyte_prompt_is_dropped_without_tokenizing_it_whole(tokenizer) -> None:
    recording = _RecordingTokenizer(tokenizer)
    sample = Sample((Message("user", _words(1_000_000)), Message("assistant", "ok")), "big:7")
    with pytest.raises(FormattingError, match="big:7: no answer token left"):
        encode(sample, recording, system_prompt=SYSTEM, max_seq_length=256)
    assert max(recording.lengths) < 100_000


@pytest.mark.parametrize("max_seq_length,seed", [(48, 1), (128, 2), (300, 3)])
def test_cutting_keeps_exactly_the_tokens_truncation_keeps(tokenizer, max_seq_length: int,
                                                           seed: int) -> None:
    from loragate.training.formatting import content_char_limit

    limit = content_char_limit(tokenizer, max_seq_length)
    answer = _words(limit // 3, seed)  # a little over the limit: the cut falls mid-text
    assert len(answer) > limit
    sample = plan_sample(answer=answer)
    cut = encode(sample, tokenizer, system_prompt=SYSTEM, max_seq_length=max_seq_length)
    whole = encode(sample, tokenizer, system_prompt=SYSTEM, max_seq_length=max_seq_length,
                   char_limit=10**9)
    assert (cut.input_ids, cut.labels, cut.truncated) == (whole.input_ids, whole.labels, True)


def test_the_cut_is_counted_as_truncation_in_the_dataset(tokenizer) -> None:
    samples = [plan_sample(answer=_words(300_000), source="long.jsonl:1"), plan_sample()]
    encoded = build_dataset(samples, tokenizer, system_prompt=SYSTEM, max_seq_length=128)
    assert encoded.truncated == 1 and len(encoded.dataset) == 2
