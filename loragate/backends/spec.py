"""Model specs: one string names the model under test or a baseline.

* ``gguf:PATH`` or ``gguf:BASE.gguf+ADAPTER.gguf`` - llama.cpp in process (a bare ``*.gguf``
  path means the same);
* ``ollama:NAME`` - an Ollama server (``OLLAMA_HOST``);
* ``openai:URL#MODEL`` - any OpenAI-compatible server (llama.cpp's server, vLLM, ...);
* ``hf:PATH`` or ``hf:PATH+ADAPTER`` - transformers, with a peft adapter folder.

Paths may themselves contain ``+``: the split is made where the part before it exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from loragate.backends.faults import RetryPolicy
from loragate.backends.gguf_file import GgufFileError, check_gguf_file

Kind = Literal["gguf", "ollama", "openai", "hf"]
KINDS: tuple[str, ...] = ("gguf", "ollama", "openai", "hf")
SPEC_FORMS = "gguf:PATH[+ADAPTER.gguf], ollama:NAME, openai:URL#MODEL, hf:PATH[+ADAPTER]"
_OLLAMA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*(:[A-Za-z0-9._\-]+)?$")


class SpecError(ValueError):
    """A model spec that is malformed; the message quotes it and shows the accepted forms."""


class ModelFileNotFound(SpecError, FileNotFoundError):
    """A spec naming a file or folder that does not exist."""


@dataclass(frozen=True)
class ModelSpec:
    kind: Kind
    text: str
    path: Path | None = None
    adapter: Path | None = None
    name: str | None = None
    url: str | None = None

    def __str__(self) -> str:
        return self.text


def parse_spec(text: str, *, check_files: bool = True) -> ModelSpec:
    """Parse one spec; with ``check_files`` a path that is missing or not a model is an error."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"empty model spec; expected one of {SPEC_FORMS}")
    text = text.strip()
    kind, sep, body = text.partition(":")
    if not sep or kind not in KINDS:
        if text.endswith(".gguf") or ".gguf+" in text:
            kind, body = "gguf", text
        else:
            raise SpecError(
                f"model spec {text!r}: unknown backend {kind!r}; expected one of {SPEC_FORMS}"
            )
    if not body:
        raise SpecError(f"model spec {text!r}: nothing after '{kind}:'; expected {SPEC_FORMS}")
    parser = {"gguf": _parse_gguf, "ollama": _parse_ollama, "openai": _parse_openai,
              "hf": _parse_hf}[kind]
    return parser(text, body, check_files)


def _split_adapter(text: str, body: str, check_files: bool) -> tuple[Path, Path | None]:
    if Path(body).expanduser().exists() or "+" not in body:
        base, adapter = body, None
    else:
        plus_positions = [i for i, ch in enumerate(body) if ch == "+"]
        # The first '+' whose left side exists; else the last one, so errors name the base.
        split = next(
            (i for i in plus_positions if Path(body[:i]).expanduser().exists()),
            plus_positions[-1],
        )
        base, adapter = body[:split], body[split + 1:]
        if not base or not adapter:
            raise SpecError(f"model spec {text!r}: empty path around '+'")
    base_path = Path(base).expanduser()
    adapter_path = Path(adapter).expanduser() if adapter is not None else None
    if check_files:
        if not base_path.exists():
            raise ModelFileNotFound(f"model spec {text!r}: model not found: {base_path}")
        if adapter_path is not None and not adapter_path.exists():
            raise ModelFileNotFound(f"model spec {text!r}: adapter not found: {adapter_path}")
    return base_path, adapter_path


def _check_gguf_file(text: str, path: Path, what: str) -> None:
    """A missing, empty, truncated or non-GGUF file, or a model where an adapter belongs (or
    the reverse), is a one-line SpecError here, before llama.cpp maps the file."""
    try:
        layout = check_gguf_file(path)
    except GgufFileError as exc:
        raise SpecError(f"model spec {text!r}: {what} {path} {exc}") from None
    is_adapter = layout.general_type == "adapter"
    if what == "adapter" and not is_adapter:
        raise SpecError(
            f"model spec {text!r}: adapter {path} is not a LoRA adapter GGUF (general.type is "
            f"{layout.general_type!r}, expected 'adapter'); a merged model is given alone"
        )
    if what == "model" and is_adapter:
        raise SpecError(
            f"model spec {text!r}: model {path} is a LoRA adapter GGUF; give it after the "
            "base model: gguf:BASE.gguf+ADAPTER.gguf"
        )


def _parse_gguf(text: str, body: str, check_files: bool) -> ModelSpec:
    path, adapter = _split_adapter(text, body, check_files)
    if check_files:
        _check_gguf_file(text, path, "model")
        if adapter is not None:
            _check_gguf_file(text, adapter, "adapter")
    return ModelSpec("gguf", text, path=path, adapter=adapter)


def _parse_hf(text: str, body: str, check_files: bool) -> ModelSpec:
    path, adapter = _split_adapter(text, body, check_files)
    if check_files:
        if not (path / "config.json").is_file():
            raise SpecError(
                f"model spec {text!r}: {path} is not a transformers model folder "
                "(no config.json)"
            )
        if adapter is not None and not (adapter / "adapter_config.json").is_file():
            raise SpecError(
                f"model spec {text!r}: {adapter} is not a peft adapter folder "
                "(no adapter_config.json)"
            )
    return ModelSpec("hf", text, path=path, adapter=adapter)


def _parse_ollama(text: str, body: str, check_files: bool) -> ModelSpec:
    del check_files
    if not _OLLAMA_NAME.match(body):
        raise SpecError(
            f"model spec {text!r}: {body!r} is not an Ollama model name "
            "(expected NAME or NAME:TAG, e.g. ollama:web4-agent:latest)"
        )
    return ModelSpec("ollama", text, name=body)


def _parse_openai(text: str, body: str, check_files: bool) -> ModelSpec:
    del check_files
    url, sep, model = body.partition("#")
    if not sep or not model.strip():
        raise SpecError(
            f"model spec {text!r}: missing '#MODEL' (expected openai:URL#MODEL, "
            "e.g. openai:http://127.0.0.1:8080/v1#model)"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SpecError(
            f"model spec {text!r}: {url!r} is not an http(s) URL with a host "
            "(expected openai:http://HOST:PORT[/v1]#MODEL)"
        )
    return ModelSpec("openai", text, url=url.rstrip("/"), name=model.strip())


# -- opening a backend -----------------------------------------------------------------------
def _concurrency(settings: Any, kind: str) -> int:
    from loragate.backends.prefetch import default_concurrency

    return getattr(settings, "concurrency", None) or default_concurrency(kind)


def _backend_settings(settings: Any) -> Any:
    """Accept a LoragateConfig, its ``backend`` section, or None (defaults)."""
    if settings is None:
        from loragate.config import BackendSettings

        return BackendSettings()
    return getattr(settings, "backend", settings)


def retry_policy(settings: Any) -> RetryPolicy:
    backend = _backend_settings(settings)
    return RetryPolicy(retries=int(backend.retries),
                       backoff_s=float(getattr(backend, "backoff_s", 1.0)))


def open_backend(spec: str | ModelSpec, settings: Any = None, *, cache: Any = None) -> Any:
    """Open the backend a spec names, configured from ``settings`` (config or its backend part).

    With ``cache`` (a :class:`~loragate.backends.cache.ResponseCache`) the backend is wrapped
    in a :class:`~loragate.backends.cache.CachedBackend`.
    """
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    backend_settings = _backend_settings(settings)
    retry = retry_policy(settings)
    backend: Any
    if parsed.kind == "gguf":
        from loragate.backends.gguf import GgufBackend

        backend = GgufBackend(parsed.path, parsed.adapter, n_ctx=backend_settings.n_ctx,
                              n_threads=backend_settings.n_threads, retry=retry,
                              spec=parsed.text)
    elif parsed.kind == "hf":
        from loragate.backends.hf import HfBackend

        backend = HfBackend(parsed.path, parsed.adapter, n_threads=backend_settings.n_threads,
                            retry=retry, spec=parsed.text)
    elif parsed.kind == "ollama":
        from loragate.backends.ollama import OllamaBackend

        backend = OllamaBackend(parsed.name, timeout_s=backend_settings.timeout_s, retry=retry,
                                concurrency=_concurrency(backend_settings, "ollama"),
                                spec=parsed.text)
    else:
        from loragate.backends.openai import OpenAIBackend

        backend = OpenAIBackend(parsed.url, parsed.name, timeout_s=backend_settings.timeout_s,
                                retry=retry, concurrency=_concurrency(backend_settings, "openai"),
                                spec=parsed.text)
    if cache is not None:
        from loragate.backends.cache import CachedBackend

        return CachedBackend(backend, cache)
    return backend
