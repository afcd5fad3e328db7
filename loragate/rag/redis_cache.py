"""A Redis cache for embeddings and retrieval results that never fails a query.

Every Redis call goes through :meth:`RedisCache._call`: a Redis error turns into a cache miss,
the first error of an outage emits exactly one :class:`RedisUnavailableWarning`, and the cache
then leaves Redis alone for ``retry_after_s`` so a dead server does not add a timeout to every
query. When a later call succeeds the outage is over, and a new one would warn again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from loragate.config import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

REDIS_URL_ENV = "REDIS_URL"


class RedisUnavailableWarning(UserWarning):
    """Redis could not be reached; retrieval goes on without the cache."""


REDIS_SCHEMES = ("redis", "rediss", "unix")
REDIS_URL_FORMS = "redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix:///PATH.sock"


class RedisUrlError(ConfigError):
    """A Redis URL that redis-py cannot use; the message names where it was set and its value."""


def check_redis_url(url: str, source: str) -> str:
    """``url`` when redis-py can connect with it; else :class:`RedisUrlError` naming ``source``
    (``REDIS_URL``, ``rag.redis_url``, ``--redis-url``) and the value.

    redis-py's own error ("Redis URL must specify one of the following schemes") names neither,
    and a port or database that is not a number fails only at the first command.
    """
    problem = _redis_url_problem(url)
    if problem is not None:
        raise RedisUrlError(
            f"{source}={url!r} is not a Redis URL: {problem}; expected {REDIS_URL_FORMS} "
            "(e.g. redis://127.0.0.1:6379/0)"
        )
    return url


def _redis_url_problem(url: str) -> str | None:
    parts = urlsplit(url.strip())
    if not parts.scheme or "://" not in url:
        return "it has no scheme:// part"
    if parts.scheme not in REDIS_SCHEMES:
        return f"scheme {parts.scheme!r} is not one of {', '.join(REDIS_SCHEMES)}"
    if parts.scheme == "unix":
        return None if parts.path else "a unix:// URL needs the socket's path"
    try:
        port = parts.port
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if port == 0:
        return "its port is not a number from 1 to 65535"
    database = parts.path.strip("/")
    if database and not database.isdigit():
        return f"the database after the host must be a number, not {database!r}"
    from redis import ConnectionPool

    try:
        ConnectionPool.from_url(url)  # parses only: no connection is made
    except ValueError as exc:
        return str(exc)
    return None


def resolve_redis_url(configured: str | None, configured_name: str = "rag.redis_url"
                      ) -> str | None:
    """The configured URL, else ``$REDIS_URL``, else None (no cache); a value that is not a
    Redis URL is a :class:`RedisUrlError` naming the setting it came from."""
    if configured:
        return check_redis_url(configured, configured_name)
    from_env = os.environ.get(REDIS_URL_ENV)
    return check_redis_url(from_env, REDIS_URL_ENV) if from_env else None


def _digest(*parts: Any) -> str:
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0


class RedisCache:
    """Embedding and retrieval cache on one Redis database, shared by all loragate processes."""

    def __init__(self, url: str, *, namespace: str = "loragate", socket_timeout_s: float = 0.5,
                 retry_after_s: float = 30.0, result_ttl_s: int | None = 7 * 24 * 3600) -> None:
        import redis

        self.url = check_redis_url(url, "Redis URL")
        self.namespace = namespace
        self.retry_after_s = retry_after_s
        self.result_ttl_s = result_ttl_s
        self.stats = CacheStats()
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s,
            retry_on_timeout=False,
        )
        self._skip_until = 0.0
        self._in_outage = False

    @property
    def available(self) -> bool:
        """Whether Redis answers a PING now (also ends or starts an outage)."""
        return bool(self._call(lambda c: c.ping(), False))

    def _call(self, operation: Callable[[Any], T], fallback: T) -> T:
        if time.monotonic() < self._skip_until:
            return fallback
        try:
            result = operation(self._client)
        except self._errors as exc:
            self.stats.errors += 1
            self._skip_until = time.monotonic() + self.retry_after_s
            if not self._in_outage:
                self._in_outage = True
                warnings.warn(
                    RedisUnavailableWarning(
                        f"Redis at {self.url} is unavailable ({type(exc).__name__}: {exc}); "
                        f"retrieval continues without the cache"
                    ),
                    stacklevel=3,
                )
            return fallback
        if self._in_outage:
            self._in_outage = False
            log.info("Redis at %s is reachable again; caching resumes", self.url)
        return result

    # -- embeddings -------------------------------------------------------------------------

    def _embedding_key(self, model_id: str, text: str) -> str:
        return f"{self.namespace}:emb:{_digest(model_id, text)}"

    def get_embeddings(self, model_id: str, texts: Sequence[str]) -> list[np.ndarray | None]:
        keys = [self._embedding_key(model_id, t) for t in texts]
        raw = self._call(lambda c: c.mget(keys), [None] * len(keys))
        vectors = [None if blob is None else np.frombuffer(blob, dtype=np.float32) for blob in raw]
        hits = sum(v is not None for v in vectors)
        self.stats.hits += hits
        self.stats.misses += len(vectors) - hits
        return vectors

    def set_embeddings(self, model_id: str, texts: Sequence[str],
                       vectors: Sequence[np.ndarray]) -> None:
        mapping = {
            self._embedding_key(model_id, t): np.asarray(v, dtype=np.float32).tobytes()
            for t, v in zip(texts, vectors, strict=True)
        }
        if mapping:
            self._call(lambda c: c.mset(mapping), None)

    def count_embeddings(self) -> int:
        return int(self._call(
            lambda c: sum(1 for _ in c.scan_iter(match=f"{self.namespace}:emb:*", count=500)), 0
        ))

    # -- retrieval results ------------------------------------------------------------------

    def result_key(self, *parts: Any) -> str:
        return f"{self.namespace}:ret:{_digest(*parts)}"

    def get_result(self, key: str) -> Any | None:
        raw = self._call(lambda c: c.get(key), None)
        if raw is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return json.loads(raw)

    def set_result(self, key: str, value: Any) -> None:
        payload = json.dumps(value, ensure_ascii=False)
        self._call(lambda c: c.set(key, payload, ex=self.result_ttl_s), None)

    def close(self) -> None:
        self._client.close()


def connect_cache(configured_url: str | None, **kwargs: Any) -> RedisCache | None:
    """A cache for the configured URL or ``$REDIS_URL``; None when neither names one."""
    url = resolve_redis_url(configured_url)
    if url is None:
        log.info("no Redis configured (rag.redis_url or %s): retrieval runs uncached",
                 REDIS_URL_ENV)
        return None
    return RedisCache(url, **kwargs)
