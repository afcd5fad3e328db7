"""The replay set: the base's own answers to general prompts, cached per base digest, mixed
into training at data_args.replay_ratio, and never a canary, probe, gate or held-out prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loragate.training.data import DataError, EvalLeakError, Message, Sample
from loragate.training.replay import (
    KEY_FILE,
    build_replay_set,
    load_replay_prompts,
    mix_replay,
    replay_count,
    replay_path,
    replay_samples,
)
from loragate.training.trainer import protected_prompts
from tests.ollama_double import ScriptedBackend
from tests.test_training_run import tiny_config

REPO = Path(__file__).resolve().parents[1]


def write_prompts(path: Path, prompts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": f"r{i}", "prompt": p}) + "\n"
                            for i, p in enumerate(prompts, 1)))
    return path


def replay_config(tmp_path: Path, base: Path, prompts: list[str], ratio: float = 0.25,
                  **training_args):
    config = tiny_config(tmp_path, base, **training_args)
    config.data_args.replay_ratio = ratio
    config.data_args.replay_prompts = write_prompts(tmp_path / "replay_prompts.jsonl", prompts)
    config.data_args.replay_max_tokens = 16
    config.backend.cache_path = tmp_path / "responses.sqlite"
    config.backend.n_ctx = 256
    config.backend.n_threads = 1
    return config


GENERAL = ["Name a colour of the rainbow.", "What is a noun?", "Spell the word table."]


def test_the_replay_set_is_cached_per_base_digest_and_rebuilt_for_a_new_one(
        tmp_path: Path, tiny_gguf: Path, tiny_gguf_q8: Path) -> None:
    from loragate.artifacts import file_digest
    from loragate.backends.cache import ResponseCache

    config = replay_config(tmp_path, tmp_path / "base", GENERAL)
    first = build_replay_set(config, tiny_gguf, [])
    assert not first.reused and first.answers == 3
    lines = [json.loads(line) for line in replay_path(config).read_text().splitlines()]
    assert [r["prompt"] for r in lines] == GENERAL
    assert {r["base_digest"] for r in lines} == {file_digest(tiny_gguf)}
    key = json.loads((replay_path(config).parent / KEY_FILE).read_text())
    assert key["base_digest"] == file_digest(tiny_gguf) and key["temperature"] == 0.0
    with ResponseCache(config.backend.cache_path) as cache:
        assert len(cache) == 3  # generated through the response cache

    again = build_replay_set(config, tiny_gguf, [])
    assert again.reused and replay_path(config).read_text() == \
        "".join(json.dumps(r) + "\n" for r in lines)

    rebuilt = build_replay_set(config, tiny_gguf_q8, [])
    assert not rebuilt.reused
    assert rebuilt.base_digest == file_digest(tiny_gguf_q8) != first.base_digest
    assert {json.loads(line)["base_digest"]
            for line in replay_path(config).read_text().splitlines()} == {rebuilt.base_digest}

    write_prompts(config.data_args.replay_prompts, [*GENERAL, "What is a verb?"])
    assert build_replay_set(config, tiny_gguf_q8, []).answers == 4  # new prompts: rebuilt


def scripted(digest: str = "base-1"):
    backend = ScriptedBackend(digest=digest)

    def open_model(spec, settings, cache=None):
        from loragate.backends.cache import CachedBackend

        return CachedBackend(backend, cache) if cache is not None else backend

    return backend, open_model


def test_a_replay_prompt_equal_to_a_canary_prompt_is_refused_before_generating(
        tmp_path: Path) -> None:
    canaries = tmp_path / "canaries.jsonl"
    canaries.write_text(json.dumps({"id": "c1", "messages": [
        {"role": "user", "content": "Which git command shows the working tree status?"}]}) + "\n")
    config = replay_config(tmp_path, tmp_path / "base",
                           [GENERAL[0], "  which GIT command shows the working\ttree status? "])
    config.canaries.file = canaries
    backend, open_model = scripted()
    with pytest.raises(EvalLeakError) as info:
        build_replay_set(config, tmp_path / "base.gguf", protected_prompts(config),
                         open_model=open_model)
    assert "replay_prompts.jsonl:2: replay prompt is also in" in str(info.value)
    assert "canaries.jsonl:1" in str(info.value)
    assert backend.calls == 0


def test_held_out_and_forgetting_probe_prompts_are_protected_too(tmp_path: Path) -> None:
    config = replay_config(tmp_path, tmp_path / "base", GENERAL)
    held_out = json.loads(config.eval_file.read_text().splitlines()[0])
    write_prompts(config.data_args.replay_prompts,
                  [f"{held_out['instruction']}\n\n{held_out['input']}"])
    backend, open_model = scripted()
    with pytest.raises(EvalLeakError, match="eval.jsonl:1"):
        build_replay_set(config, tmp_path / "base.gguf", protected_prompts(config),
                         open_model=open_model)
    # The forgetting probe (canaries.forgetting_file, where the config has it) is read too.
    probe = tmp_path / "forgetting.jsonl"
    probe.write_text(json.dumps({"id": "f1", "prompt": GENERAL[1]}) + "\n")
    write_prompts(config.data_args.replay_prompts, GENERAL)
    object.__setattr__(config.canaries, "forgetting_file", probe)
    with pytest.raises(EvalLeakError, match="forgetting.jsonl:1"):
        build_replay_set(config, tmp_path / "base.gguf", protected_prompts(config),
                         open_model=open_model)


def test_bad_replay_prompt_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "replay.jsonl"
    path.write_text('{"id": "r1", "prompt": "ok"}\n{"id": "r2"}\nnot json\n'
                    '{"id": "r1", "prompt": "OK "}\n')
    with pytest.raises(DataError) as info:
        load_replay_prompts(path)
    message = str(info.value)
    assert "replay.jsonl:2: field 'prompt' must be a non-empty string" in message
    assert "replay.jsonl:3: invalid JSON" in message
    assert "replay.jsonl:4: id repeats" in message and "replay.jsonl:4: prompt repeats" in message


def sample(i: int, kind: str = "domain") -> Sample:
    return Sample((Message("user", f"{kind} {i}"), Message("assistant", "a")), f"{kind}:{i}")


@given(n_domain=st.integers(1, 3000), ratio=st.floats(0.01, 0.9), n_replay=st.integers(1, 80))
def test_mixing_gives_the_replay_share_asked_for(n_domain: int, ratio: float,
                                                 n_replay: int) -> None:
    domain = [sample(i) for i in range(n_domain)]
    replay = [sample(i, "replay") for i in range(n_replay)]
    mixed = mix_replay(domain, replay, ratio, seed=42)
    added = len(mixed) - n_domain
    assert added == replay_count(n_domain, ratio)
    assert mixed[:n_domain] == domain  # the domain data is kept whole, in order
    # The share is the ratio up to rounding to whole samples.
    assert abs(added - ratio * len(mixed)) <= 0.5 + 1e-9
    counts = {s.source: 0 for s in replay}
    for s in mixed[n_domain:]:
        counts[s.source] += 1
    # Repeated only as often as the share needs: every prompt once before any twice.
    assert max(counts.values()) - min(counts.values()) <= 1
    assert mix_replay(domain, replay, ratio, seed=42) == mixed  # seeded


def test_no_replay_when_the_ratio_is_zero() -> None:
    domain = [sample(i) for i in range(10)]
    assert mix_replay(domain, [], 0.0, seed=1) == domain
    assert replay_count(10, 0.0) == 0
    with pytest.raises(DataError, match="replay set is empty"):
        mix_replay(domain, [], 0.5, seed=1)


def test_training_mixes_the_usable_answers_and_their_file_is_part_of_the_inputs(
        tmp_path: Path, tiny_llama_dir: Path) -> None:
    from loragate.training.stats import current_inputs_hash
    from loragate.training.trainer import train

    prompts = [*GENERAL, "Write a very long answer " + "please " * 40]
    config = replay_config(tmp_path, tiny_llama_dir, prompts, ratio=0.25, max_steps=2,
                           save_steps=100)
    with pytest.raises(DataError, match="the replay set is not built"):
        train(config)
    _, open_model = scripted()
    built = build_replay_set(config, tmp_path / "base.gguf", protected_prompts(config),
                             open_model=open_model)
    # The scripted base echoes the prompt: the long one is cut at the 16-token cap.
    assert (built.answers, built.usable) == (4, 3)
    assert len(replay_samples(config)) == 3
    before = current_inputs_hash(config, tiny_llama_dir)
    stats = train(config).stats
    assert stats.data["replay"]["samples"] == 4  # 12 domain samples, 0.25 of the mix
    assert stats.data["samples"] == 16 and stats.train_samples == 16
    assert stats.data["replay"]["usable_answers"] == 3

    _, other_base = scripted(digest="base-2")
    replay_path(config).write_text(replay_path(config).read_text().replace("table", "chair"))
    assert current_inputs_hash(config, tiny_llama_dir) != before
    build_replay_set(config, tmp_path / "base.gguf", [], open_model=other_base)
    assert not train(config).skipped  # the base changed its answers: trained afresh


def test_replay_set_built_for_other_prompts_is_not_used(tmp_path: Path) -> None:
    config = replay_config(tmp_path, tmp_path / "base", GENERAL)
    _, open_model = scripted()
    build_replay_set(config, tmp_path / "base.gguf", [], open_model=open_model)
    write_prompts(config.data_args.replay_prompts, GENERAL[:2])
    with pytest.raises(DataError, match="built for other replay prompts"):
        replay_samples(config)


def test_the_bundled_replay_prompts_are_none_of_the_bundled_measured_prompts() -> None:
    from loragate.config import load_config
    from loragate.training.replay import check_replay_prompts

    config = load_config(REPO / "config" / "tiny_cpu_full.json", check_paths=False)
    prompts = load_replay_prompts(config.data_args.replay_prompts)
    assert len(prompts) >= 50
    protected = protected_prompts(config)
    probe = REPO / "data" / "forgetting.jsonl"  # the forgetting probe, where it exists
    if probe.is_file():
        from loragate.training.data import prompts_in_file

        protected += prompts_in_file(probe)
    assert len(protected) > 100
    check_replay_prompts(prompts, protected)
