"""Model backends: one protocol for llama.cpp in process, Ollama, OpenAI-compatible servers
and transformers, with a SQLite response cache. Open one from a model spec with
:func:`open_backend`.
"""

from loragate.backends.base import (
    Backend,
    BaseBackend,
    GenerationOptions,
    Message,
    Response,
    StreamEnd,
)
from loragate.backends.cache import CachedBackend, CacheStats, ResponseCache
from loragate.backends.faults import (
    BackendError,
    BackendUnavailable,
    RetryPolicy,
    SampleError,
    TransientError,
)
from loragate.backends.spec import ModelFileNotFound, ModelSpec, SpecError, open_backend, parse_spec

__all__ = [
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "BaseBackend",
    "CacheStats",
    "CachedBackend",
    "GenerationOptions",
    "Message",
    "ModelFileNotFound",
    "ModelSpec",
    "Response",
    "ResponseCache",
    "RetryPolicy",
    "SampleError",
    "SpecError",
    "StreamEnd",
    "TransientError",
    "open_backend",
    "parse_spec",
]
