"""Ollama Modelfile: build it from the tokenizer and the config, parse it back, check it, import it.

The ``TEMPLATE`` is Ollama's Go-template form of the model's chat template. Only ChatML (Qwen2.5,
SmolLM2, and every model whose template wraps turns in ``<|im_start|>``/``<|im_end|>``) is
translated; another template is an error that says so rather than a Modelfile that formats
prompts differently from training. The check renders both templates on the same conversation
and compares the text, through a small evaluator of the Go-template subset used here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHATML_START = "<|im_start|>"
CHATML_END = "<|im_end|>"
# Ollama's Go template for ChatML: each message as a turn, then an open assistant turn.
CHATML_OLLAMA_TEMPLATE = (
    "{{- range .Messages }}" + CHATML_START + "{{ .Role }}\n"
    "{{ .Content }}" + CHATML_END + "\n"
    "{{ end }}" + CHATML_START + "assistant\n"
)
INSTRUCTIONS = ("FROM", "PARAMETER", "TEMPLATE", "SYSTEM", "ADAPTER", "LICENSE", "MESSAGE")
# Ollama's PARAMETER names and the type of their value.
PARAMETER_TYPES: dict[str, type] = {
    "temperature": float, "top_p": float, "top_k": int, "num_ctx": int, "stop": str,
    "repeat_penalty": float, "repeat_last_n": int, "seed": int, "num_predict": int,
    "min_p": float,
}
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"


class ModelfileError(ValueError):
    """A Modelfile that cannot be parsed or is not valid; the message names file and line."""


class UnsupportedChatTemplate(ValueError):
    """The model's chat template has no Ollama translation here."""


@dataclass
class Modelfile:
    from_: str
    template: str | None = None
    system: str | None = None
    parameters: list[tuple[str, str]] = field(default_factory=list)
    adapter: str | None = None

    def parameter_values(self, name: str) -> list[str]:
        return [value for key, value in self.parameters if key == name]

    def options(self) -> dict[str, Any]:
        """PARAMETERs as typed values (``stop`` as a list), as Ollama's API takes them."""
        typed: dict[str, Any] = {}
        for key, value in self.parameters:
            converted = PARAMETER_TYPES.get(key, str)(value)
            if key == "stop":
                typed.setdefault("stop", []).append(converted)
            else:
                typed[key] = converted
        return typed

    def render(self) -> str:
        for label, text in (("TEMPLATE", self.template), ("SYSTEM", self.system)):
            problem = None if text is None else unquotable(text)
            if problem is not None:
                raise ModelfileError(f"{label} {problem}")
        lines = [f"FROM {_quote_path(self.from_)}"]
        if self.adapter:
            lines.append(f"ADAPTER {_quote_path(self.adapter)}")
        if self.template is not None:
            lines.append(f'TEMPLATE """{self.template}"""')
        if self.system is not None:
            lines.append(f'SYSTEM """{self.system}"""')
        for key, value in self.parameters:
            lines.append(f"PARAMETER {key} {json.dumps(value) if key == 'stop' else value}")
        return "\n".join(lines) + "\n"


def unquotable(text: str) -> str | None:
    """Why ``text`` cannot be a Modelfile's triple-quoted TEMPLATE or SYSTEM block, or None.

    The block ends at the first ``\"\"\"``, and a final ``"`` would merge into the closing
    quotes; the Modelfile has no escape for either.
    """
    if _TRIPLE in text:
        return 'contains """, which a Modelfile cannot quote (the block would end there)'
    if text.endswith('"'):
        return 'ends with ", which a Modelfile cannot quote (it merges into the closing """)'
    return None


def _quote_path(value: str) -> str:
    return json.dumps(value) if any(c.isspace() for c in value) else value


# --------------------------------------------------------------------------- build


def is_chatml(chat_template: str | None) -> bool:
    return bool(chat_template) and CHATML_START in chat_template and CHATML_END in chat_template


def ollama_template_for(chat_template: str | None) -> str:
    if not is_chatml(chat_template):
        raise UnsupportedChatTemplate(
            "the model's chat template is not ChatML (no <|im_start|>/<|im_end|>); write its "
            "Ollama TEMPLATE by hand"
        )
    return CHATML_OLLAMA_TEMPLATE


def stop_tokens(tokenizer: Any) -> list[str]:
    """The tokens that end a turn: EOS, the generation config's EOS ids, and ChatML's markers."""
    stops: list[str] = []
    if tokenizer.eos_token:
        stops.append(tokenizer.eos_token)
    if is_chatml(getattr(tokenizer, "chat_template", None)):
        stops += [CHATML_END, CHATML_START]
    # "<|endoftext|>" ends documents, not turns; a ChatML model that emits it is done too.
    return list(dict.fromkeys(stops))


def build_modelfile(
    gguf_path: str | Path,
    tokenizer: Any,
    settings: Any,
    *,
    adapter_path: str | Path | None = None,
) -> Modelfile:
    """The Modelfile for ``gguf_path`` (``settings``: the config's ``packaging.modelfile``)."""
    parameters = [
        ("temperature", _number(settings.temperature)),
        ("top_p", _number(settings.top_p)),
        ("top_k", str(settings.top_k)),
        ("num_ctx", str(settings.num_ctx)),
    ]
    parameters += [("stop", token) for token in stop_tokens(tokenizer)]
    return Modelfile(
        from_=str(gguf_path),
        template=ollama_template_for(tokenizer.chat_template),
        system=settings.system,
        parameters=parameters,
        adapter=str(adapter_path) if adapter_path else None,
    )


def _number(value: float) -> str:
    return repr(float(value))


# --------------------------------------------------------------------------- parse


_TRIPLE = '"""'


def parse_modelfile(text: str, source: str = "Modelfile") -> Modelfile:
    """Parse Modelfile text; :class:`ModelfileError` names ``source`` and the line."""
    values: dict[str, Any] = {"parameters": []}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        lineno = index + 1
        stripped = lines[index].strip()
        index += 1
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        instruction = word.upper()
        if instruction not in INSTRUCTIONS:
            raise ModelfileError(f"{source}:{lineno}: unknown instruction {word!r}")
        rest = rest.strip()
        if rest.startswith(_TRIPLE):
            value, index = _read_triple_quoted(rest, lines, index, source, lineno)
        else:
            value = rest
        _store(values, instruction, value, source, lineno)
    if "from_" not in values:
        raise ModelfileError(f"{source}: no FROM instruction")
    return Modelfile(**values)


def _read_triple_quoted(
    rest: str, lines: Sequence[str], index: int, source: str, lineno: int
) -> tuple[str, int]:
    body = rest[len(_TRIPLE):]
    collected = []
    while True:
        end = body.find(_TRIPLE)
        if end >= 0:
            if body[end + len(_TRIPLE):].strip():
                raise ModelfileError(f"{source}:{lineno}: text after the closing \"\"\"")
            collected.append(body[:end])
            return "\n".join(collected), index
        collected.append(body)
        if index >= len(lines):
            raise ModelfileError(f'{source}:{lineno}: """ opened here is never closed')
        body = lines[index]
        index += 1


def _store(values: dict[str, Any], instruction: str, value: str, source: str, lineno: int) -> None:
    if instruction == "PARAMETER":
        name, _, raw = value.partition(" ")
        raw = raw.strip()
        if not name or not raw:
            raise ModelfileError(f"{source}:{lineno}: PARAMETER needs a name and a value")
        if raw.startswith('"'):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise ModelfileError(f"{source}:{lineno}: bad quoted value {raw}") from None
        values["parameters"].append((name, raw))
        return
    if instruction in ("FROM", "ADAPTER"):
        parts = shlex.split(value) if value else []
        if len(parts) != 1:
            raise ModelfileError(f"{source}:{lineno}: {instruction} needs exactly one model/path")
        value = parts[0]
    key = {"FROM": "from_", "TEMPLATE": "template", "SYSTEM": "system",
           "ADAPTER": "adapter"}.get(instruction)
    if key is None:  # LICENSE, MESSAGE: accepted, not used here
        return
    if key in values:
        raise ModelfileError(f"{source}:{lineno}: {instruction} given twice")
    values[key] = value


def read_modelfile(path: Path) -> Modelfile:
    path = Path(path)
    if not path.is_file():
        raise ModelfileError(f"{path}: Modelfile not found")
    return parse_modelfile(path.read_text(encoding="utf-8"), str(path))


# --------------------------------------------------------------------------- validate


def validate_modelfile(
    modelfile: Modelfile,
    *,
    base_dir: Path | None = None,
    chat_template: str | None = None,
    required_stops: Iterable[str] = (),
) -> list[str]:
    """Problems with ``modelfile`` (empty when valid).

    ``base_dir`` resolves a relative FROM/ADAPTER path (as ``ollama create`` does, against
    the Modelfile's folder); ``chat_template`` (HF Jinja) must render the same text as the
    TEMPLATE on a sample conversation; every token of ``required_stops`` must be a stop.
    """
    problems = []
    for label, value in (("FROM", modelfile.from_), ("ADAPTER", modelfile.adapter)):
        if value and _looks_like_path(value):
            path = Path(value) if Path(value).is_absolute() or base_dir is None \
                else base_dir / value
            if not path.is_file():
                problems.append(f"{label} {value}: file not found")
    for key, value in modelfile.parameters:
        kind = PARAMETER_TYPES.get(key)
        if kind is None:
            problems.append(f"PARAMETER {key}: not an Ollama parameter")
            continue
        try:
            kind(value)
        except ValueError:
            problems.append(f"PARAMETER {key} {value!r}: not a {kind.__name__}")
    missing = [s for s in required_stops if s not in modelfile.parameter_values("stop")]
    if missing:
        problems.append(f"PARAMETER stop: missing {missing}")
    if chat_template is not None:
        problems += template_mismatches(modelfile, chat_template)
    return problems


def _looks_like_path(value: str) -> bool:
    return value.endswith(".gguf") or "/" in value or value.startswith(".")


SAMPLE_CONVERSATION = (
    {"role": "system", "content": "You are a test system prompt."},
    {"role": "user", "content": "First question?"},
    {"role": "assistant", "content": "First answer."},
    {"role": "user", "content": "Second question?"},
)


def template_mismatches(modelfile: Modelfile, chat_template: str) -> list[str]:
    """Empty when TEMPLATE renders SAMPLE_CONVERSATION exactly like the HF chat template."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if modelfile.template is None:
        return ["no TEMPLATE: Ollama would fall back to the GGUF's template"]
    expected = ImmutableSandboxedEnvironment().from_string(chat_template).render(
        messages=list(SAMPLE_CONVERSATION), add_generation_prompt=True,
        bos_token="", eos_token="",
    )
    try:
        actual = render_go_template(modelfile.template, {"Messages": [
            {"Role": m["role"], "Content": m["content"]} for m in SAMPLE_CONVERSATION
        ]})
    except ModelfileError as exc:
        return [f"TEMPLATE cannot be checked: {exc}"]
    if actual != expected:
        return [f"TEMPLATE renders {actual!r}, the chat template renders {expected!r}"]
    return []


_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def render_go_template(template: str, data: dict[str, Any]) -> str:
    """Render the subset of Go's text/template this module writes: ``{{ .Field }}``,
    ``range``/``if``/``else``/``end`` over ``.Field``, and the ``{{-``/``-}}`` trim markers."""
    tokens = _tokenize_go(template)
    out, position = _render_block(tokens, 0, [data])
    if position != len(tokens):
        raise ModelfileError("TEMPLATE: unexpected {{ end }}")
    return out


def _tokenize_go(template: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    cursor = 0
    for match in _ACTION.finditer(template):
        text = template[cursor:match.start()]
        if match.group(1):
            text = text.rstrip()
        if tokens and tokens[-1][0] == "trim-next":
            tokens.pop()
            text = text.lstrip()
        tokens.append(("text", text))
        tokens.append(("action", match.group(2)))
        if match.group(3):
            tokens.append(("trim-next", ""))
        cursor = match.end()
    tail = template[cursor:]
    if tokens and tokens[-1][0] == "trim-next":
        tokens.pop()
        tail = tail.lstrip()
    tokens.append(("text", tail))
    return tokens


def _lookup(scopes: list[Any], expression: str) -> Any:
    if expression == ".":
        return scopes[-1]
    if not expression.startswith(".") or " " in expression:
        raise ModelfileError(f"TEMPLATE: unsupported expression {{{{ {expression} }}}}")
    for scope in reversed(scopes):
        if isinstance(scope, dict) and expression[1:] in scope:
            return scope[expression[1:]]
    return None


def _render_block(
    tokens: list[tuple[str, str]], position: int, scopes: list[Any]
) -> tuple[str, int]:
    out: list[str] = []
    while position < len(tokens):
        kind, value = tokens[position]
        if kind == "text":
            out.append(value)
            position += 1
            continue
        word = value.split(" ", 1)[0]
        if word in ("end", "else"):
            return "".join(out), position
        if word in ("range", "if"):
            rendered, position = _render_control(tokens, position, scopes, word, value[len(word):])
            out.append(rendered)
            continue
        found = _lookup(scopes, value)
        out.append("" if found is None else str(found))
        position += 1
    return "".join(out), position


def _render_control(
    tokens: list[tuple[str, str]], position: int, scopes: list[Any], word: str, expression: str
) -> tuple[str, int]:
    subject = _lookup(scopes, expression.strip())
    body_start = position + 1
    skip: Callable[[int], int] = lambda start: _render_block(tokens, start, scopes)[1]  # noqa: E731
    if word == "range":
        items = list(subject or [])
        parts = []
        end = skip(body_start)
        for item in items:
            rendered, end = _render_block(tokens, body_start, [*scopes, item])
            parts.append(rendered)
        return "".join(parts), _after_end(tokens, end)
    if subject:
        rendered, end = _render_block(tokens, body_start, scopes)
        if tokens[end][1] == "else":
            end = skip(end + 1)
        return rendered, _after_end(tokens, end)
    end = skip(body_start)
    rendered = ""
    if end < len(tokens) and tokens[end][1] == "else":
        rendered, end = _render_block(tokens, end + 1, scopes)
    return rendered, _after_end(tokens, end)


def _after_end(tokens: list[tuple[str, str]], position: int) -> int:
    if position >= len(tokens) or tokens[position][1] != "end":
        raise ModelfileError("TEMPLATE: a range/if has no {{ end }}")
    return position + 1


# --------------------------------------------------------------------------- ollama create


@dataclass
class OllamaImport:
    created: bool
    message: str


def ollama_create_command(name: str, modelfile_path: Path) -> str:
    return f"ollama create {shlex.quote(name)} -f {shlex.quote(str(modelfile_path))}"


def ollama_create(
    name: str,
    modelfile_path: Path,
    *,
    host: str | None = None,
    progress: Callable[[str, int | None, int | None], None] | None = None,
) -> OllamaImport:
    """``ollama create`` through the official client when a server answers at ``host``
    (default ``$OLLAMA_HOST``); else the exact command to run, and nothing imported."""
    import ollama

    modelfile_path = Path(modelfile_path)
    command = ollama_create_command(name, modelfile_path)
    host = host or os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
    client = ollama.Client(host=host)
    try:
        client.list()  # GET /api/tags: the cheapest call every Ollama server answers
    except Exception as exc:  # connection refused, timeout, DNS: all mean "no server"
        return OllamaImport(False, (
            f"no Ollama server answers at {host} ({type(exc).__name__}); to import the model, "
            f"start Ollama and run:\n  {command}"
        ))
    modelfile = read_modelfile(modelfile_path)
    folder = modelfile_path.parent
    files = {Path(modelfile.from_).name: client.create_blob(_resolve(folder, modelfile.from_))}
    adapters = None
    if modelfile.adapter:
        adapters = {Path(modelfile.adapter).name:
                    client.create_blob(_resolve(folder, modelfile.adapter))}
    for update in client.create(
        model=name, files=files, adapters=adapters, template=modelfile.template,
        system=modelfile.system, parameters=modelfile.options(), stream=True,
    ):
        if progress is not None:
            progress(update.status or "", update.completed, update.total)
    return OllamaImport(True, f"created Ollama model '{name}' at {host}")


def _resolve(folder: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else folder / path
