"""The replay set: general prompts answered by the base model itself, mixed into training.

Two epochs at learning rate 2e-3 made the GPU-trained adapter forget what its base knew
(three canaries regressed: ``git status``, "point", "hypertext"). A share of training
samples whose answers are the base's own pulls the adapter back toward the base on general
requests: on those samples the untuned model already has its lowest loss, so every step
away from it costs loss. The prompts are the project's own list
(``data_args.replay_prompts``), never a canary, forgetting-probe, gate or held-out prompt:
:func:`check_replay_prompts` refuses those before any answer is generated, and the training
leak check sees the mixed samples again.

The answers are generated once per base model, greedily (temperature 0) from the base GGUF
the pipeline builds (the model the canaries use as their baseline), behind the training
system prompt the gates use too, and kept in ``<output_dir>/replay/replay.jsonl``; every
line carries the base's digest, and ``replay.key.json`` holds the whole key (digest, prompts,
system prompt, answer cap). A changed key rebuilds the file; the response cache makes a
rebuild of unchanged prompts cost nothing. An answer cut at ``replay_max_tokens`` is kept in
the file but not trained on: its end-of-turn token would teach the model to stop mid-answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loragate.textfiles import InputFileError, JsonlLine, jsonl_lines
from loragate.training.data import (
    DataError,
    EvalLeakError,
    Message,
    ProtectedPrompt,
    Sample,
    _error_message,
    normalise,
)

REPLAY_DIR = "replay"
REPLAY_FILE = "replay.jsonl"
KEY_FILE = "replay.key.json"
KEY_FORMAT = 1


@dataclass(frozen=True)
class ReplayPrompt:
    id: str
    text: str
    source: str  # file:line


@dataclass
class ReplayBuild:
    """What :func:`build_replay_set` did: the file, whether it was reused, what it holds."""

    path: Path
    reused: bool
    base_digest: str
    answers: int
    usable: int


def replay_path(config: Any) -> Path:
    return Path(config.output_dir) / REPLAY_DIR / REPLAY_FILE


def replay_enabled(config: Any) -> bool:
    return float(config.data_args.replay_ratio) > 0


# --------------------------------------------------------------------------- prompts


def load_replay_prompts(path: Path) -> list[ReplayPrompt]:
    """The prompts of ``path``: one JSON object per line with a string ``id`` and a
    non-empty string ``prompt``. Every bad line, repeated id or repeated prompt is listed
    as ``file:line: problem``."""
    path = Path(path)
    prompts: list[ReplayPrompt] = []
    errors: list[str] = []
    ids: dict[str, str] = {}
    texts: dict[str, str] = {}
    try:
        lines = list(jsonl_lines(path, "replay prompt file (data_args.replay_prompts)"))
    except InputFileError as exc:
        raise DataError(str(exc)) from None
    for line in lines:
        problem, prompt = _parse_prompt(line)
        if problem:
            errors.append(f"{line.where}: {problem}")
            continue
        assert prompt is not None
        for seen, value, what in ((ids, prompt.id, "id"), (texts, normalise(prompt.text),
                                                             "prompt")):
            if value in seen:
                errors.append(f"{line.where}: {what} repeats {seen[value]}")
            seen[value] = line.where
        prompts.append(prompt)
    if errors:
        raise DataError(_error_message(f"{len(errors)} invalid line(s) in {path}", errors))
    if not prompts:
        raise DataError(f"{path}: no replay prompts")
    return prompts


def _parse_prompt(line: JsonlLine) -> tuple[str | None, ReplayPrompt | None]:
    if line.error is not None:
        return line.error, None
    record = line.value
    if not isinstance(record, dict):
        return f"a line must be a JSON object, got {type(record).__name__}", None
    for name in ("id", "prompt"):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            return f"field '{name}' must be a non-empty string", None
    return None, ReplayPrompt(record["id"], record["prompt"], line.where)


def check_replay_prompts(prompts: Sequence[ReplayPrompt],
                         protected: Sequence[ProtectedPrompt]) -> None:
    """Refuse a replay prompt equal (after normalising) to a prompt that measures the model
    or is held out: training the base's answer to it would inflate that measure."""
    by_text: dict[str, str] = {}
    for item in protected:
        by_text.setdefault(normalise(item.text), item.source)
    leaks = [f"{p.source}: replay prompt is also in {by_text[normalise(p.text)]}"
             for p in prompts if normalise(p.text) in by_text]
    if leaks:
        raise EvalLeakError(_error_message(
            f"{len(leaks)} replay prompt(s) are canary, forgetting-probe, gate or held-out "
            "prompts; reword or remove them", leaks))


def prompts_hash(prompts: Sequence[ReplayPrompt]) -> str:
    payload = json.dumps([[p.id, p.text] for p in prompts], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


# --------------------------------------------------------------------------- the cached answers


def replay_key(config: Any, base_digest: str, prompts: Sequence[ReplayPrompt]) -> dict[str, Any]:
    """Everything the cached answers depend on; a difference in any of it rebuilds them."""
    return {
        "format": KEY_FORMAT,
        "base_digest": base_digest,
        "prompts_hash": prompts_hash(prompts),
        "system_prompt": config.data_args.system_prompt,
        "max_tokens": int(config.data_args.replay_max_tokens),
        "temperature": 0.0,
    }


def read_key(folder: Path) -> dict[str, Any]:
    try:
        value = json.loads((Path(folder) / KEY_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _request(config: Any, prompt: ReplayPrompt) -> list[dict[str, str]]:
    # The gates put the training system prompt before every request, and so do these: the
    # answers are what the base says in the setting the canaries measure it in.
    system = config.data_args.system_prompt
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": prompt.text}]


def build_replay_set(config: Any, base_gguf: Path, protected: Sequence[ProtectedPrompt], *,
                     force: bool = False,
                     open_model: Callable[..., Any] | None = None) -> ReplayBuild:
    """Answer the replay prompts with the base GGUF (temperature 0) into ``replay.jsonl``;
    reuse the file when its key (base digest, prompts, system prompt, cap) is unchanged."""
    from loragate.backends.base import GenerationOptions
    from loragate.backends.cache import ResponseCache

    prompts = load_replay_prompts(config.data_args.replay_prompts)
    check_replay_prompts(prompts, protected)
    if open_model is None:
        from loragate.backends.spec import open_backend as open_model
    folder = replay_path(config).parent
    cache = ResponseCache(config.backend.cache_path)
    backend = open_model(f"gguf:{Path(base_gguf)}", config, cache=cache)
    try:
        digest = backend.digest
        key = replay_key(config, digest, prompts)
        if not force and read_key(folder) == key and replay_path(config).is_file():
            records = _read_records(replay_path(config))
            return ReplayBuild(replay_path(config), True, digest, len(records),
                               sum(_usable(r) for r in records))
        options = GenerationOptions(temperature=0.0, top_p=1.0, seed=0,
                                    max_tokens=int(config.data_args.replay_max_tokens))
        responses = backend.generate_batch([_request(config, p) for p in prompts], options)
    finally:
        backend.close()
        cache.close()
    records = [_record(prompt, response, digest)
               for prompt, response in zip(prompts, responses, strict=True)]
    folder.mkdir(parents=True, exist_ok=True)
    _write_text(replay_path(config),
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    # The key goes last: a run killed between the two files leaves a key that does not match.
    _write_text(folder / KEY_FILE, json.dumps(key, indent=2, sort_keys=True) + "\n")
    return ReplayBuild(replay_path(config), False, digest, len(records),
                       sum(_usable(r) for r in records))


def _record(prompt: ReplayPrompt, response: Any, digest: str) -> dict[str, Any]:
    return {
        "id": prompt.id,
        "prompt": prompt.text,
        "answer": response.text,
        "finish_reason": response.finish_reason,
        "truncated": bool(response.truncated or response.finish_reason == "length"),
        "error": response.error,
        "base_digest": digest,
    }


def _usable(record: dict[str, Any]) -> bool:
    answer = record.get("answer")
    return (record.get("finish_reason") == "stop" and not record.get("truncated")
            and isinstance(answer, str) and bool(answer.strip()))


def _read_records(path: Path) -> list[dict[str, Any]]:
    records = []
    try:
        lines = list(jsonl_lines(path, "replay set"))
    except InputFileError as exc:
        raise DataError(f"{exc}; delete the replay folder to rebuild it") from None
    for line in lines:
        if line.error is not None or not isinstance(line.value, dict):
            problem = line.error or "not a JSON object"
            raise DataError(f"{line.where}: {problem}; delete the replay folder to rebuild it")
        records.append({**line.value, "_line": line.number})
    return records


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- training side


def replay_samples(config: Any) -> list[Sample]:
    """The usable cached answers as training samples (user prompt, the base's answer).

    Raises :class:`DataError` when the set was never built or was built for other prompts
    than ``data_args.replay_prompts`` holds now; the pipeline (or ``loragate train``) builds
    it from the base GGUF.
    """
    path = replay_path(config)
    how = ("`loragate pipeline` or `loragate train` builds it from the base GGUF")
    if not path.is_file():
        raise DataError(f"{path}: the replay set is not built (data_args.replay_ratio is "
                        f"{config.data_args.replay_ratio}); {how}")
    prompts = load_replay_prompts(config.data_args.replay_prompts)
    key = read_key(path.parent)
    if key.get("prompts_hash") != prompts_hash(prompts) or \
            key.get("system_prompt") != config.data_args.system_prompt or \
            key.get("max_tokens") != int(config.data_args.replay_max_tokens):
        raise DataError(f"{path}: built for other replay prompts, system prompt or answer cap "
                        f"than the config's; {how} again")
    samples = [
        Sample((Message("user", r["prompt"]), Message("assistant", r["answer"])),
               f"{path}:{r['_line']}")
        for r in _read_records(path) if _usable(r)
    ]
    if not samples:
        raise DataError(f"{path}: none of the base model's replay answers is usable (each was "
                        "cut at data_args.replay_max_tokens or failed); raise the cap")
    return samples


def replay_count(n_domain: int, ratio: float) -> int:
    """How many replay samples make ``ratio`` of a mix with ``n_domain`` domain samples."""
    if ratio <= 0 or n_domain <= 0:
        return 0
    return round(n_domain * ratio / (1.0 - ratio))


def mix_replay(domain: Sequence[Sample], replay: Sequence[Sample], ratio: float,
               seed: int) -> list[Sample]:
    """The domain samples plus ``replay_count`` replay samples, drawn in a seeded order and
    repeated when the set is smaller than the share asks (the Trainer shuffles the mix)."""
    wanted = replay_count(len(domain), ratio)
    if wanted == 0:
        return list(domain)
    if not replay:
        raise DataError("data_args.replay_ratio > 0 but the replay set is empty")
    chosen: list[Sample] = []
    rng = random.Random(seed)
    while len(chosen) < wanted:
        order = list(replay)
        rng.shuffle(order)
        chosen += order[:wanted - len(chosen)]
    return [*domain, *chosen]
