"""A backend kind is one declaration: a :class:`BackendKind` in an entry point of the
``loragate.backends`` group (or in ``BUILTIN_KINDS``) is all it takes for specs to parse,
backends to open, help texts and errors to list the form, and the default concurrency to
apply — shown here by adding a kind and gating a project with it."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from loragate.backends import spec as spec_module
from loragate.backends.spec import (
    BUILTIN_KINDS,
    BackendKind,
    ModelSpec,
    SpecError,
    backend_kinds,
    default_concurrency,
    open_backend,
    parse_spec,
    spec_forms,
    spec_help,
)
from tests.ollama_double import ScriptedBackend
from tests.test_gating_project import user_project, verdict_of


def _parse_scripted(text: str, body: str, check_files: bool) -> ModelSpec:
    del check_files
    if not body.isidentifier():
        raise SpecError(f"model spec {text!r}: {body!r} is not a word")
    return ModelSpec("scripted", text, name=body)


def _open_scripted(spec: ModelSpec, settings, retry) -> ScriptedBackend:
    return ScriptedBackend(digest=f"scripted-{spec.name}", retry=retry)


SCRIPTED = BackendKind("scripted", "scripted:WORD", "answers with the prompt's words",
                       _parse_scripted, _open_scripted, concurrency=3)
NOT_A_KIND = object()


def install(monkeypatch: pytest.MonkeyPatch, *targets: str) -> None:
    """Entry points of the loragate.backends group naming ``targets`` (module:attribute)."""
    points = [EntryPoint(name=f"kind{i}", value=target, group=spec_module.ENTRY_POINT_GROUP)
              for i, target in enumerate(targets)]
    monkeypatch.setattr(spec_module, "entry_points",
                        lambda group: points if group == spec_module.ENTRY_POINT_GROUP else [])
    backend_kinds.cache_clear()


@pytest.fixture(autouse=True)
def fresh_registry():
    backend_kinds.cache_clear()
    yield
    backend_kinds.cache_clear()


def test_builtin_kinds_are_the_registry() -> None:
    assert list(backend_kinds()) == ["gguf", "ollama", "openai", "hf"]
    assert spec_forms() == ", ".join(kind.form for kind in BUILTIN_KINDS)
    assert [default_concurrency(k) for k in ("gguf", "openai", "ollama", "hf")] == [8, 8, 4, 1]
    assert default_concurrency("nothing-registered") == 1


def test_one_declaration_adds_a_kind_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, "tests.test_backend_kinds:SCRIPTED")
    parsed = parse_spec("scripted:hello")
    assert (parsed.kind, parsed.name) == ("scripted", "hello")
    backend = open_backend("scripted:hello")
    assert backend.generate("say two words").text.split() == ["say", "two", "words"]
    assert default_concurrency("scripted") == 3
    assert "scripted:WORD" in spec_forms() and "scripted:WORD" in spec_help()
    with pytest.raises(SpecError, match=r"'scripted:no way'.*not a word"):
        parse_spec("scripted:no way")
    with pytest.raises(SpecError, match=r"unknown backend 'nope'.*scripted:WORD"):
        parse_spec("nope:x")


def test_a_wrong_entry_point_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, "tests.test_backend_kinds:NOT_A_KIND")
    with pytest.raises(SpecError, match="kind0.*is not a loragate BackendKind"):
        parse_spec("gguf:x.gguf", check_files=False)
    install(monkeypatch, "tests.test_backend_kinds:TAKES_GGUF")
    with pytest.raises(SpecError, match="'gguf', which is already taken"):
        backend_kinds()


TAKES_GGUF = BackendKind("gguf", "gguf:ANY", "a second gguf", _parse_scripted, _open_scripted)


def test_a_project_gates_with_the_added_kind(pytester: pytest.Pytester,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, "tests.test_backend_kinds:SCRIPTED")
    project = user_project(pytester, validator="return 'word' in text")
    result = pytester.runpytest("--model", "scripted:echo")
    result.stdout.fnmatch_lines(["*VERDICT: CLEARED*"])
    assert result.ret == 0
    document = verdict_of(project)
    assert document["harnesses"]["echo_check"]["passed"] == 4
    assert document["model"]["spec"] == "scripted:echo"
    help_text = pytester.runpytest("--help").stdout.str()
    assert "scripted:WORD" in help_text and "scripted 3" in help_text


# -- openai: a key per model, named by an environment variable --------------------------------


def test_each_openai_model_takes_its_key_from_the_variable_its_spec_names(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    monkeypatch.setenv("TEAM_A_KEY", "sk-a")
    monkeypatch.setenv("TEAM_B_KEY", "sk-b")
    parsed = parse_spec("openai:https://api.example.com/v1?key_env=TEAM_A_KEY#small")
    assert parsed.url == "https://api.example.com/v1" and parsed.key_env == "TEAM_A_KEY"
    keys = {}
    for spec in ("openai:https://a.example.com/v1?key_env=TEAM_A_KEY#m",
                 "openai:https://b.example.com/v1?key_env=TEAM_B_KEY&x=1#m",
                 "openai:https://c.example.com/v1#m"):
        backend = open_backend(spec)
        keys[backend.host] = backend._client.headers.get("Authorization")
        assert "key_env" not in backend.root
        backend.close()
    assert keys == {"a.example.com": "Bearer sk-a", "b.example.com": "Bearer sk-b",
                    "c.example.com": "Bearer sk-default"}


def test_a_key_env_that_is_unset_or_malformed_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    with pytest.raises(SpecError, match="NOT_SET_HERE .*is not set"):
        open_backend("openai:http://127.0.0.1:9/v1?key_env=NOT_SET_HERE#m")
    with pytest.raises(SpecError, match="key_env must name one environment variable"):
        parse_spec("openai:http://127.0.0.1:9/v1?key_env=1bad#m")
