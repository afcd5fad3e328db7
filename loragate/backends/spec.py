"""Model specs and the registry of backend kinds: one string names the model under test or a
baseline, and its prefix names the kind.

* ``gguf:PATH`` or ``gguf:BASE.gguf+ADAPTER.gguf`` - llama.cpp in process (a bare ``*.gguf``
  path means the same);
* ``ollama:NAME`` - an Ollama server (``OLLAMA_HOST``);
* ``openai:URL#MODEL`` - any OpenAI-compatible server (llama.cpp's server, vLLM, ...);
* ``hf:PATH`` or ``hf:PATH+ADAPTER`` - transformers, with a peft adapter folder.

Paths may themselves contain ``+``: the split is made where the part before it exists.

A kind is declared once, as a :class:`BackendKind` (prefix, spec form, parser, opener,
default requests in flight); the spec forms in help texts and errors, :func:`parse_spec`,
:func:`open_backend` and the default concurrency all read that declaration. Another package
adds a kind with an entry point in the ``loragate.backends`` group naming its
:class:`BackendKind`.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from loragate.backends.faults import RetryPolicy, SpecError
from loragate.backends.gguf_file import GgufFileError, check_gguf_file

if TYPE_CHECKING:
    from loragate.backends.base import Backend

ENTRY_POINT_GROUP = "loragate.backends"
_OLLAMA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*(:[A-Za-z0-9._\-]+)?$")


class ModelFileNotFound(SpecError, FileNotFoundError):
    """A spec naming a file or folder that does not exist."""


@dataclass(frozen=True)
class ModelSpec:
    kind: str
    text: str
    path: Path | None = None
    adapter: Path | None = None
    name: str | None = None
    url: str | None = None
    key_env: str | None = None  # openai: the environment variable that holds the API key

    def __str__(self) -> str:
        return self.text


def parse_spec(text: str, *, check_files: bool = True) -> ModelSpec:
    """Parse one spec; with ``check_files`` a path that is missing or not a model is an error."""
    kinds = backend_kinds()
    forms = spec_forms()
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"empty model spec; expected one of {forms}")
    text = text.strip()
    kind, sep, body = text.partition(":")
    if not sep or kind not in kinds:
        if text.endswith(".gguf") or ".gguf+" in text:
            kind, body = "gguf", text
        else:
            raise SpecError(
                f"model spec {text!r}: unknown backend {kind!r}; expected one of {forms}"
            )
    if not body:
        raise SpecError(f"model spec {text!r}: nothing after '{kind}:'; expected {forms}")
    return kinds[kind].parse(text, body, check_files)


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
            raise ModelFileNotFound(f"model spec {text!r}: model {_missing(base_path)}")
        if adapter_path is not None and not adapter_path.exists():
            raise ModelFileNotFound(f"model spec {text!r}: adapter {_missing(adapter_path)}")
    return base_path, adapter_path


def _missing(path: Path) -> str:
    """Why ``path`` does not exist; Path.exists() is False for a symbolic link that loops or
    points nowhere, which "not found" would hide."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return f"{path} is a symbolic link that loops back on itself"
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return f"{path} is a symbolic link that loops back on itself"
        return f"{path} is a symbolic link to {os.readlink(path)}, which does not exist"
    return f"not found: {path}"


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
    try:
        parts = urlsplit(url)
        # .port raises for a port that is not a number or not in 0-65535; unchecked, httpx
        # fails later with an internal error, or wraps 99999 onto another server's port.
        parts.port  # noqa: B018
    except ValueError as exc:
        raise SpecError(f"model spec {text!r}: {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError(
            f"model spec {text!r}: {url!r} is not an http(s) URL with a host "
            "(expected openai:http://HOST:PORT[/v1]#MODEL)"
        )
    url, key_env = _key_env(text, parts)
    return ModelSpec("openai", text, url=url.rstrip("/"), name=model.strip(), key_env=key_env)


def _key_env(text: str, parts: Any) -> tuple[str, str | None]:
    """The URL without its ``?key_env=NAME`` and that NAME: the environment variable holding
    this server's API key (the key itself never appears in a spec, a verdict or a report)."""
    from urllib.parse import parse_qsl, urlencode, urlunsplit

    query = parse_qsl(parts.query, keep_blank_values=True)
    names = [value for key, value in query if key == "key_env"]
    if len(names) > 1 or (names and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", names[0])):
        raise SpecError(f"model spec {text!r}: key_env must name one environment variable "
                        "(letters, digits, _), e.g. ?key_env=MY_API_KEY")
    rest = urlencode([(key, value) for key, value in query if key != "key_env"])
    return urlunsplit(parts._replace(query=rest)), (names[0] if names else None)


# -- opening a backend -----------------------------------------------------------------------
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


def open_backend(spec: str | ModelSpec, settings: Any = None, *, cache: Any = None
                 ) -> Backend:
    """Open the backend a spec names, configured from ``settings`` (config or its backend part).

    With ``cache`` (a :class:`~loragate.backends.cache.ResponseCache`) the backend is wrapped
    in a :class:`~loragate.backends.cache.CachedBackend`.
    """
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    backend_settings = _backend_settings(settings)
    kind = backend_kinds()[parsed.kind]
    backend = kind.open(parsed, backend_settings, retry_policy(settings))
    if cache is not None:
        from loragate.backends.cache import CachedBackend

        return CachedBackend(backend, cache)
    return backend


# -- the kinds -------------------------------------------------------------------------------
Opener = Callable[[ModelSpec, Any, RetryPolicy], "Backend"]
Parser = Callable[[str, str, bool], ModelSpec]


@dataclass(frozen=True)
class BackendKind:
    """One kind of backend, declared once.

    ``parse(text, body, check_files)`` turns the spec (``body``: what follows ``prefix:``)
    into a :class:`ModelSpec` or raises :class:`SpecError`; ``open(spec, backend_settings,
    retry)`` returns a :class:`~loragate.backends.base.Backend`; ``concurrency`` is the
    requests in flight when ``backend.concurrency`` does not say (why each figure:
    the comment above :data:`BUILTIN_KINDS`).
    """

    prefix: str
    form: str
    description: str
    parse: Parser
    open: Opener
    concurrency: int = 1


def _requests_in_flight(settings: Any, kind: str) -> int:
    return getattr(settings, "concurrency", None) or default_concurrency(kind)


def _open_gguf(spec: ModelSpec, settings: Any, retry: RetryPolicy) -> Backend:
    from loragate.backends.gguf import GgufBackend

    return GgufBackend(spec.path, spec.adapter, n_ctx=settings.n_ctx,
                       n_threads=settings.n_threads, retry=retry, spec=spec.text)


def _open_hf(spec: ModelSpec, settings: Any, retry: RetryPolicy) -> Backend:
    from loragate.backends.hf import HfBackend

    return HfBackend(spec.path, spec.adapter, n_threads=settings.n_threads, retry=retry,
                     spec=spec.text)


def _open_ollama(spec: ModelSpec, settings: Any, retry: RetryPolicy) -> Backend:
    from loragate.backends.ollama import OllamaBackend, check_ollama_host

    host_problem = check_ollama_host()
    if host_problem:
        raise SpecError(f"model spec {spec.text!r}: {host_problem}")
    return OllamaBackend(spec.name, timeout_s=settings.timeout_s, retry=retry,
                         min_tokens_per_s=settings.min_tokens_per_s,
                         concurrency=_requests_in_flight(settings, "ollama"), spec=spec.text)


def _open_openai(spec: ModelSpec, settings: Any, retry: RetryPolicy) -> Backend:
    import os

    from loragate.backends.openai import OpenAIBackend

    api_key = None
    if spec.key_env is not None:
        api_key = os.environ.get(spec.key_env)
        if not api_key:
            raise SpecError(f"model spec {spec.text!r}: the environment variable "
                            f"{spec.key_env} (key_env) is not set")
    return OpenAIBackend(spec.url, spec.name, timeout_s=settings.timeout_s, retry=retry,
                         min_tokens_per_s=settings.min_tokens_per_s,
                         concurrency=_requests_in_flight(settings, "openai"), spec=spec.text,
                         api_key=api_key)


# Requests in flight per kind when the config does not say. Why these numbers:
# - gguf 8: llama.cpp decodes 8 sequences in one batch for little more than the time of one,
#   and 16 gain little over 8 (benchmarks/gate_throughput.py measures it). Each sequence has
#   its own KV-cache stream, so memory grows with the count.
# - openai 8: llama.cpp's server (--parallel) and vLLM batch concurrent requests; a server
#   with fewer slots queues the rest, which costs nothing but the wait.
# - ollama 4: OLLAMA_NUM_PARALLEL is 4 by default where memory allows; more queue server-side.
# - hf 1: transformers generates one request at a time in this process.
BUILTIN_KINDS: tuple[BackendKind, ...] = (
    BackendKind("gguf", "gguf:PATH[+ADAPTER.gguf]", "llama.cpp in this process",
                _parse_gguf, _open_gguf, concurrency=8),
    BackendKind("ollama", "ollama:NAME", "an Ollama server (OLLAMA_HOST)",
                _parse_ollama, _open_ollama, concurrency=4),
    BackendKind("openai", "openai:URL[?key_env=VAR]#MODEL",
                "an OpenAI-compatible server (llama.cpp's server, vLLM, a hosted API)",
                _parse_openai, _open_openai, concurrency=8),
    BackendKind("hf", "hf:PATH[+ADAPTER]", "transformers in this process, a peft adapter",
                _parse_hf, _open_hf, concurrency=1),
)


@lru_cache(maxsize=1)
def backend_kinds() -> dict[str, BackendKind]:
    """The built-in kinds, then those other packages declare in the ``loragate.backends``
    entry-point group (a built-in prefix cannot be taken over)."""
    kinds = {kind.prefix: kind for kind in BUILTIN_KINDS}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        declared = point.load()
        if not isinstance(declared, BackendKind):
            raise SpecError(f"entry point {point.name!r} ({point.value}) in "
                            f"{ENTRY_POINT_GROUP} is not a loragate BackendKind")
        if declared.prefix in kinds:
            raise SpecError(f"entry point {point.name!r} ({point.value}) declares the "
                            f"backend kind {declared.prefix!r}, which is already taken")
        kinds[declared.prefix] = declared
    return kinds


def spec_forms() -> str:
    """The accepted spec forms, for errors: ``gguf:PATH[+ADAPTER.gguf], ollama:NAME, …``."""
    return ", ".join(kind.form for kind in backend_kinds().values())


def spec_help(what: str = "model under test") -> str:
    """An option's help text: ``model under test: gguf:PATH[+ADAPTER.gguf] | …``."""
    return f"{what}: " + " | ".join(kind.form for kind in backend_kinds().values())


def concurrency_defaults(kinds: tuple[BackendKind, ...] | None = None) -> str:
    """``gguf 8, ollama 4, openai 8, hf 1``: each kind's default requests in flight."""
    chosen = tuple(backend_kinds().values()) if kinds is None else kinds
    return ", ".join(f"{kind.prefix} {kind.concurrency}" for kind in chosen)


def default_concurrency(kind: str) -> int:
    """Requests in flight for a backend kind when the config does not say; 1 for a kind
    that is not registered."""
    declared = backend_kinds().get(kind)
    return declared.concurrency if declared else 1
