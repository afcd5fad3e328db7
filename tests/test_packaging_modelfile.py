"""Modelfile: build, render, parse back (property tests), validate, and ``ollama create``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loragate.base_model import CHATML_TEMPLATE
from loragate.packaging import modelfile as mf
from loragate.packaging.modelfile import (
    CHATML_OLLAMA_TEMPLATE,
    Modelfile,
    ModelfileError,
    UnsupportedChatTemplate,
    build_modelfile,
    ollama_create,
    parse_modelfile,
    render_go_template,
    template_mismatches,
    validate_modelfile,
)

SETTINGS = SimpleNamespace(system="Follow Web4.", temperature=0.2, top_p=0.95, top_k=20,
                           num_ctx=2048)
TOKENIZER = SimpleNamespace(eos_token="<|im_end|>", chat_template=CHATML_TEMPLATE)

text_value = st.text(
    # Line breaks other than \n are ones str.splitlines() would also split on.
    alphabet=st.characters(blacklist_categories=("Cs",),
                           blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
    max_size=80,
).filter(lambda s: '"""' not in s and not s.endswith('"') and s == s.strip("\n"))
stop_value = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                     max_size=12)


@given(system=text_value, template=text_value, stops=st.lists(stop_value, max_size=4),
       temperature=st.floats(0, 2, allow_nan=False), top_k=st.integers(0, 200))
def test_render_then_parse_is_identity(system: str, template: str, stops: list[str],
                                       temperature: float, top_k: int) -> None:
    original = Modelfile(
        from_="./model.Q4_K_M.gguf", template=template, system=system,
        parameters=[("temperature", repr(temperature)), ("top_k", str(top_k))]
        + [("stop", s) for s in stops],
    )
    assert parse_modelfile(original.render()) == original


@given(st.text(max_size=200))
def test_parser_never_crashes_unexpectedly(text: str) -> None:
    try:
        parse_modelfile(text, "fuzz")
    except ModelfileError as exc:
        assert str(exc).startswith("fuzz")


def test_unquotable_text_is_refused_on_render() -> None:
    for text in ('has """ inside', 'ends with a quote"'):
        with pytest.raises(ModelfileError, match="SYSTEM"):
            Modelfile(from_="m.gguf", system=text).render()


def test_build_from_tokenizer_and_config() -> None:
    built = build_modelfile("./model.Q4_K_M.gguf", TOKENIZER, SETTINGS)
    assert built.template == CHATML_OLLAMA_TEMPLATE
    assert built.system == "Follow Web4."
    assert built.options() == {"temperature": 0.2, "top_p": 0.95, "top_k": 20, "num_ctx": 2048,
                               "stop": ["<|im_end|>", "<|im_start|>"]}
    assert template_mismatches(built, CHATML_TEMPLATE) == []


def test_non_chatml_template_is_refused() -> None:
    llama3 = SimpleNamespace(eos_token="<|eot_id|>",
                             chat_template="{{ '<|start_header_id|>' }}")
    with pytest.raises(UnsupportedChatTemplate, match="not ChatML"):
        build_modelfile("m.gguf", llama3, SETTINGS)


def test_a_template_that_differs_is_reported() -> None:
    built = build_modelfile("m.gguf", TOKENIZER, SETTINGS)
    built.template = built.template.replace("{{ .Role }}\n", "{{ .Role }}: ")
    problems = template_mismatches(built, CHATML_TEMPLATE)
    assert problems and "TEMPLATE renders" in problems[0]


@pytest.mark.parametrize(("text", "message"), [
    ("FROM a.gguf\nBOGUS x\n", "m:2: unknown instruction 'BOGUS'"),
    ('FROM a.gguf\nSYSTEM """never closed\n', 'm:2: """ opened here is never closed'),
    ("PARAMETER top_k 4\n", "m: no FROM instruction"),
    ("FROM a.gguf\nPARAMETER top_k\n", "m:2: PARAMETER needs a name and a value"),
    ("FROM a.gguf\nFROM b.gguf\n", "m:2: FROM given twice"),
])
def test_parse_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ModelfileError, match=message.replace("*", r"\*")):
        parse_modelfile(text, "m")


def test_validate_reports_each_problem(tmp_path: Path) -> None:
    parsed = parse_modelfile(
        "FROM ./missing.gguf\nPARAMETER top_k many\nPARAMETER colour blue\n", "m")
    problems = validate_modelfile(parsed, base_dir=tmp_path, required_stops=["<|im_end|>"])
    assert problems == [
        "FROM ./missing.gguf: file not found",
        "PARAMETER top_k 'many': not a int",
        "PARAMETER colour: not an Ollama parameter",
        "PARAMETER stop: missing ['<|im_end|>']",
    ]


def test_go_template_subset() -> None:
    data = {"System": "", "Messages": [{"Role": "user", "Content": "hi"}]}
    template = ("{{ if .System }}S{{ else }}none{{ end }}|"
                "{{- range .Messages }} {{ .Role }}={{ .Content }} {{- end }}")
    assert render_go_template(template, data) == "none| user=hi"
    with pytest.raises(ModelfileError, match="no {{ end }}"):
        render_go_template("{{ range .Messages }}x", data)


def test_ollama_create_without_server_gives_the_command(tmp_path: Path) -> None:
    path = tmp_path / "Modelfile"
    path.write_text("FROM ./model.gguf\n")
    outcome = ollama_create("web4-agent", path, host="http://127.0.0.1:9")
    assert not outcome.created
    assert f"ollama create web4-agent -f {path}" in outcome.message
    assert "no Ollama server answers at http://127.0.0.1:9" in outcome.message


def test_ollama_create_uploads_and_reports_progress(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    path = tmp_path / "Modelfile"
    path.write_text(build_modelfile("./model.gguf", TOKENIZER, SETTINGS).render())
    calls: dict = {}

    class FakeClient:
        def __init__(self, host: str) -> None:
            calls["host"] = host

        def list(self) -> dict:
            return {"models": []}

        def create_blob(self, blob: Path) -> str:
            calls["blob"] = Path(blob)
            return "sha256:abc"

        def create(self, **kwargs):
            calls["create"] = kwargs
            yield SimpleNamespace(status="pulling", completed=1, total=2)
            yield SimpleNamespace(status="success", completed=None, total=None)

    import ollama

    monkeypatch.setattr(ollama, "Client", FakeClient)
    seen = []
    outcome = ollama_create("web4", path, host="http://x:1",
                            progress=lambda *update: seen.append(update))
    assert outcome.created
    assert calls["blob"] == tmp_path / "model.gguf"
    assert calls["create"]["files"] == {"model.gguf": "sha256:abc"}
    assert calls["create"]["parameters"]["stop"] == ["<|im_end|>", "<|im_start|>"]
    assert calls["create"]["system"] == "Follow Web4."
    assert seen == [("pulling", 1, 2), ("success", None, None)]
    assert mf.DEFAULT_OLLAMA_HOST.startswith("http://")


def test_the_fake_client_only_uses_methods_the_real_ollama_client_has() -> None:
    # The fake above once had a `version()` the real client lacks, which hid a bug that made
    # every real server look absent.
    import ollama

    for method in ("list", "create_blob", "create"):
        assert callable(getattr(ollama.Client, method, None)), method
