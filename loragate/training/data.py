"""Training data: read the plan's JSONL files, validate every line, dedupe, check for leaks.

A line is one JSON object in one of two forms:

* the plan's form: ``instruction`` (non-empty string), ``input`` (string, may be absent or
  empty), ``output`` (non-empty string);
* a chat form: ``messages``, a list of ``{"role", "content"}`` objects whose roles are
  ``system``/``user``/``assistant``, with at least one ``user`` turn and ending with a
  non-empty ``assistant`` turn.

Other keys (ids, categories) are metadata and are ignored. Every problem is reported as
``file:line: what is wrong`` so the line can be found and fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# One chat message type for the whole library: training reads what the backends send.
from loragate.backends.base import Message
from loragate.textfiles import InputFileError, jsonl_lines

ROLES = ("system", "user", "assistant")
MAX_LISTED_ERRORS = 20


class DataError(ValueError):
    """Training data that cannot be used; the message names the file and line of each problem."""


class EvalLeakError(DataError):
    """A hold-out eval sample or a harness prompt is also in the training set."""


@dataclass(frozen=True)
class Sample:
    """One training example as a conversation; ``source`` is ``file:line``."""

    messages: tuple[Message, ...]
    source: str

    @property
    def prompt_text(self) -> str:
        """The user side of the sample (what a leak check compares)."""
        return "\n".join(m.content for m in self.messages if m.role == "user")

    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple((m.role, m.content) for m in self.messages)


@dataclass
class LoadReport:
    """What loading found: kept samples plus the counts that go into training_stats.json."""

    samples: list[Sample] = field(default_factory=list)
    lines_read: int = 0
    invalid: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "samples": len(self.samples),
            "lines_read": self.lines_read,
            "invalid_skipped": self.invalid,
            "duplicates_dropped": self.duplicates,
            "errors": self.errors[:MAX_LISTED_ERRORS],
        }


def user_text(instruction: str, input_text: str) -> str:
    """The user turn of a plan-form sample: the instruction, then the input when there is one."""
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction


def parse_record(record: Any) -> tuple[Message, ...]:
    """Validate one decoded JSON line and turn it into messages; raises ValueError with a reason."""
    if not isinstance(record, dict):
        raise ValueError(f"a line must be a JSON object, got {type(record).__name__}")
    if "messages" in record:
        return _parse_messages(record["messages"])
    for name in ("instruction", "output"):
        if name not in record:
            raise ValueError(f"missing field '{name}'")
    for name in ("instruction", "input", "output"):
        if name in record and not isinstance(record[name], str):
            raise ValueError(
                f"field '{name}' must be a string, got {type(record[name]).__name__}"
            )
    if not record["instruction"].strip():
        raise ValueError("field 'instruction' is empty")
    if not record["output"].strip():
        raise ValueError("field 'output' is empty")
    prompt = user_text(record["instruction"], record.get("input", ""))
    return (Message("user", prompt), Message("assistant", record["output"]))


def _parse_messages(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("field 'messages' must be a non-empty list")
    messages = []
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be an object, got {type(item).__name__}")
        for name in ("role", "content"):
            if name not in item:
                raise ValueError(f"{where}: missing field '{name}'")
            if not isinstance(item[name], str):
                raise ValueError(
                    f"{where}: field '{name}' must be a string, got {type(item[name]).__name__}"
                )
        if item["role"] not in ROLES:
            raise ValueError(f"{where}: role '{item['role']}' is not one of {list(ROLES)}")
        messages.append(Message(item["role"], item["content"]))
    if not any(m.role == "user" for m in messages):
        raise ValueError("messages have no 'user' turn")
    if messages[-1].role != "assistant":
        raise ValueError("the last message must be the 'assistant' turn that is trained on")
    if not messages[-1].content.strip():
        raise ValueError("the last 'assistant' message is empty")
    return tuple(messages)


def read_jsonl(path: Path, *, skip_invalid: bool = False, report: LoadReport | None = None
               ) -> LoadReport:
    """Read one JSONL file into ``report``; invalid lines raise unless ``skip_invalid``."""
    report = report if report is not None else LoadReport()
    errors: list[str] = []
    try:
        for line in jsonl_lines(path):
            report.lines_read += 1
            if line.error is not None:
                errors.append(f"{line.where}: {line.error}")
                continue
            try:
                messages = parse_record(line.value)
            except ValueError as exc:
                errors.append(f"{line.where}: {exc}")
                continue
            report.samples.append(Sample(messages, line.where))
    except InputFileError as exc:
        raise DataError(str(exc)) from None
    report.errors.extend(errors)
    report.invalid += len(errors)
    if errors and not skip_invalid:
        raise DataError(_error_message(f"{len(errors)} invalid line(s) in {path}", errors))
    return report


def load_samples(paths: Sequence[Path], *, skip_invalid: bool = False, dedupe: bool = True
                 ) -> LoadReport:
    """Read every file, then drop exact duplicates (keeping the first occurrence)."""
    report = LoadReport()
    for path in paths:
        read_jsonl(Path(path), skip_invalid=skip_invalid, report=report)
    if dedupe:
        report.samples, report.duplicates = _dedupe(report.samples)
    if not report.samples:
        raise DataError(f"no usable training samples in {[str(p) for p in paths]}")
    return report


def _dedupe(samples: Sequence[Sample]) -> tuple[list[Sample], int]:
    seen: set[tuple[tuple[str, str], ...]] = set()
    kept: list[Sample] = []
    for sample in samples:
        key = sample.key()
        if key in seen:
            continue
        seen.add(key)
        kept.append(sample)
    return kept, len(samples) - len(kept)


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive form used to compare prompts for leaks."""
    # str.split() splits at exactly the characters regex \s matches (Unicode whitespace) and
    # drops the ends: the same result as re.sub(r"\s+", " ", text).strip(), and several times
    # faster on a prompt of megabytes.
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class ProtectedPrompt:
    """A prompt that must not be trained on: a hold-out eval sample or a harness prompt."""

    text: str
    source: str


def find_leaks(train: Sequence[Sample], protected: Iterable[ProtectedPrompt]) -> list[str]:
    """Each training sample whose prompt equals a protected prompt (after normalising)."""
    by_text: dict[str, str] = {}
    for item in protected:
        by_text.setdefault(normalise(item.text), item.source)
    leaks = []
    for sample in train:
        hit = by_text.get(normalise(sample.prompt_text))
        if hit is not None:
            leaks.append(f"{sample.source}: training prompt is also in {hit}")
    return leaks


def check_no_leaks(train: Sequence[Sample], protected: Iterable[ProtectedPrompt]) -> None:
    leaks = find_leaks(train, protected)
    if leaks:
        raise EvalLeakError(_error_message(
            f"{len(leaks)} training sample(s) leak held-out prompts "
            "(set data_args.allow_eval_leak to accept)", leaks))


def eval_prompts(samples: Iterable[Sample]) -> list[ProtectedPrompt]:
    return [ProtectedPrompt(s.prompt_text, s.source) for s in samples]


def harness_prompts(prompts_dir: Path | None) -> list[ProtectedPrompt]:
    """Prompts of the harness prompt sets (``*.jsonl`` under ``prompts_dir``), when they exist.

    A prompt line may carry ``prompt``, ``instruction`` (+ ``input``) or ``messages``; lines
    that carry none of them are not prompts and are ignored here (the harnesses validate them).
    """
    if prompts_dir is None or not Path(prompts_dir).is_dir():
        return []
    found = []
    for path in sorted(Path(prompts_dir).rglob("*.jsonl")):
        found += prompts_in_file(path)
    return found


def prompts_in_file(path: Path | None) -> list[ProtectedPrompt]:
    """The prompts of one JSONL prompt file (e.g. the canaries), or none when it is absent.
    Lines that are not records with a prompt are passed over: the file's own reader reports
    them."""
    if path is None or not Path(path).is_file():
        return []
    try:
        lines = list(jsonl_lines(path))
    except InputFileError:
        return []
    found = []
    for line in lines:
        text = _prompt_of(line.value) if line.error is None else None
        if text:
            found.append(ProtectedPrompt(text, line.where))
    return found


def _prompt_of(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("prompt"), str):
        return record["prompt"]
    if isinstance(record.get("instruction"), str):
        extra = record.get("input")
        return user_text(record["instruction"], extra if isinstance(extra, str) else "")
    messages = record.get("messages")
    if isinstance(messages, list):
        users = [m.get("content") for m in messages
                 if isinstance(m, dict) and m.get("role") == "user"]
        texts = [u for u in users if isinstance(u, str)]
        return "\n".join(texts) or None
    return None


def _error_message(headline: str, problems: Sequence[str]) -> str:
    listed = "\n".join(f"  {p}" for p in problems[:MAX_LISTED_ERRORS])
    more = len(problems) - MAX_LISTED_ERRORS
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return f"{headline}:\n{listed}{tail}"


def hold_out_conversations(
    eval_file: Path, limit: int, system_prompt: str | None = None
) -> list[list[dict[str, str]]]:
    """The first ``limit`` hold-out samples as chat messages up to (not with) the answer."""
    conversations = []
    for sample in load_samples([Path(eval_file)], dedupe=True).samples[:limit]:
        messages = []
        for message in sample.messages:
            if message.role == "assistant":
                break
            messages.append({"role": message.role, "content": message.content})
        if system_prompt and messages and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system_prompt})
        if messages:
            conversations.append(messages)
    return conversations
