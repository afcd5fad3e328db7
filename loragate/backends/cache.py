"""Response cache: a SQLite file keyed by (backend kind, model digest, prompt, options).

A re-run of the gates re-scores from this file instead of generating again. The key holds
every generation option and the model's content digest, so an answer made with other options
or another model file is never served. Error responses are not stored: a timed-out sample is
generated again next time.

The file may be shared by pytest-xdist workers (separate processes): it runs in WAL mode with
a busy timeout, and each :class:`ResponseCache` counts its own hits and misses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loragate.backends.base import (
    GenerationOptions,
    Message,
    Prompt,
    Response,
    StreamItem,
    normalize_prompt,
    prompt_payload,
)

# Bump when the meaning of a stored row changes, so old rows stop matching.
CACHE_SCHEMA = 1


# -- the cache -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheStats:
    enabled: bool
    hits: int
    misses: int

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_ratio(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "hits": self.hits, "misses": self.misses,
                "hit_ratio": self.hit_ratio}


def cache_key(kind: str, digest: str, prompt: str | Sequence[Message],
              options: GenerationOptions, decoding: str | None = None) -> str:
    payload = {
        "schema": CACHE_SCHEMA,
        "kind": kind,
        "digest": digest,
        "prompt": prompt_payload(prompt),
        "options": options.to_dict(),
    }
    if decoding is not None:
        payload["decoding"] = decoding
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class CorruptCacheWarning(UserWarning):
    """The response cache file could not be read; it was moved aside and a fresh one begun."""


class CacheWriteWarning(UserWarning):
    """An answer could not be stored (disk full, file made read-only, I/O error): the answer
    is kept and used; the cache stops storing for the rest of the run."""


# SQLite's primary result codes for a file that is not (or no longer) a database. A busy or
# locked database (another xdist worker writing) is neither and is never moved aside.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)  # Python < 3.11 has no error codes; these are SQLite's own messages
    return "malformed" in text or "not a database" in text


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


_NUMBER = (int, float)
# What each stored field may hold: a row written by another version, or edited by hand, that
# breaks this is a miss rather than a Response whose arithmetic fails later in a gate.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,), "truncated": (bool,), "prompt_tokens": (int, type(None)),
    "completion_tokens": (int, type(None)), "ttft_s": (*_NUMBER, type(None)),
    "total_s": _NUMBER, "model_digest": (str,), "cached": (bool,),
    "error": (str, type(None)), "attempts": (int,), "in_flight": (int, type(None)),
    "queue_s": (*_NUMBER, type(None)),
}


def _stored_response(raw: object) -> Response | None:
    """The Response a row holds, or None when the row is not one this version can use."""
    try:
        data = json.loads(raw) if isinstance(raw, str | bytes) else None
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("finish_reason") not in ("stop", "length"):
        return None
    if "text" not in data or any(
        name in data and not isinstance(data[name], kinds) for name, kinds in _FIELD_TYPES.items()
    ):
        return None
    return Response.from_dict(data)


class ResponseCache:
    """SQLite-backed store of successful responses. ``enabled=False`` stores and finds nothing.

    A file that is not a readable SQLite database (garbage, truncated, a page overwritten, a
    folder in its place) is moved aside to ``<name>.corrupt-<timestamp>`` with a
    :class:`CorruptCacheWarning` naming both paths, and an empty cache takes its place: a
    cache only saves time, so losing it must not stop a gate run. A row that does not decode is
    a miss, and the next ``put`` of its key replaces it.
    """

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._opened: tuple[int, int] | None = None
        self.write_failure: str | None = None
        if enabled:
            self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            if not (self.path.is_dir() or _is_corruption(exc)):
                raise sqlite3.DatabaseError(
                    f"{self.path}: cannot open response cache: {exc}") from exc
            self._move_aside(exc)
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            raise sqlite3.DatabaseError(
                f"{self.path}: cannot open response cache: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        # The identity is taken before connecting: recovery moves aside only the file this
        # connection opened, never a fresh one another process has already put in its place.
        self._opened = _identity(self.path)
        conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, digest TEXT NOT NULL, response TEXT NOT NULL,"
                " created REAL NOT NULL)"
            )
            conn.commit()
            # Reads every page's structure (milliseconds for a cache of thousands of answers),
            # so a truncated file or an overwritten page shows now, not mid-run.
            problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {problem}")
        except BaseException:
            conn.close()
            raise
        if self._opened is None:
            self._opened = _identity(self.path)
        return conn

    def _move_aside(self, exc: BaseException) -> None:
        if self._opened is not None and _identity(self.path) != self._opened:
            return  # another process already replaced it
        if not self.path.exists():
            return
        aside = self._aside_name()
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            # A write-ahead log belongs to the old file; replayed onto a fresh one it would
            # corrupt it again.
            companion = Path(f"{self.path}{suffix}")
            if companion.exists():
                os.replace(companion, Path(f"{aside}{suffix}"))
        reason = " ".join(str(exc).split())  # quick_check's report spans lines
        warnings.warn(CorruptCacheWarning(
            f"response cache {self.path} is unreadable ({reason}); moved it to {aside} and "
            "started an empty cache (answers will be generated again)"
        ), stacklevel=4)

    def _aside_name(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        candidate = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        number = 1
        while candidate.exists():
            number += 1
            candidate = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{number}")
        return candidate

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Called with the lock held, after a use of the connection found corruption."""
        if not _is_corruption(exc):
            raise exc
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._move_aside(exc)
        self._conn = self._connect()

    def get(self, key: str) -> Response | None:
        if self._conn is None:
            return None
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT response FROM responses WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                row = None
            response = _stored_response(row[0]) if row is not None else None
            if response is None:
                self._misses += 1
                return None
            self._hits += 1
        return response.replace(cached=True)

    def put(self, key: str, response: Response) -> None:
        """Store a successful answer. A store that fails for a reason other than a corrupt
        file (disk full, read-only, I/O error) warns once and stops storing: the answer itself
        is already in hand, and a cache only saves time."""
        if self._conn is None or not response.ok or self.write_failure is not None:
            return
        stored = json.dumps(response.replace(cached=False).to_dict(), sort_keys=True)
        row = (key, response.model_digest, stored, time.time())
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO responses (key, digest, response, created)"
                        " VALUES (?, ?, ?, ?)", row,
                    )
                    self._conn.commit()
                    return
                except sqlite3.DatabaseError as exc:
                    if attempt == 2 or not _is_corruption(exc):
                        self._stop_writing(exc)
                        return
                    self._recover(exc)

    def _stop_writing(self, exc: sqlite3.DatabaseError) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self._conn is not None:
                self._conn.rollback()
        self.write_failure = " ".join(str(exc).split())
        warnings.warn(CacheWriteWarning(
            f"response cache {self.path}: cannot store answers ({self.write_failure}); the "
            "run goes on without storing them (they will be generated again next time)"
        ), stacklevel=4)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.enabled, self._hits, self._misses)

    def __len__(self) -> int:
        if self._conn is None:
            return 0
        with self._lock:
            try:
                return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return 0

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"ResponseCache({os.fspath(self.path)!r}, {state})"


class CachedBackend:
    """A backend answering from a :class:`ResponseCache` first, generating only on a miss.

    Answers generated by :meth:`generate_batch` (the gate's answers-ahead) are also held in
    memory until an item asks for them: the item gets them as generated in this run
    (``cached=False``, timings of this run), with or without a persistent cache, so batching
    works under ``--no-cache`` and a cold run's figures count them as generated, not reused.

    ``decoding`` goes into the cache key when set: llama.cpp's batched decoding does not give
    token-for-token the one-at-a-time answer, so the two are stored apart and a run reuses only
    answers made the way it makes them (the plugin sets it from the run's concurrency).
    """

    def __init__(self, inner: Any, cache: ResponseCache, decoding: str | None = None) -> None:
        self.inner = inner
        self.cache = cache
        self.spec = inner.spec
        self.decoding = decoding
        self._fresh: dict[str, Response] = {}
        self._fresh_lock = threading.Lock()

    @property
    def digest(self) -> str:
        return self.inner.digest

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def in_process(self) -> bool:
        return bool(getattr(self.inner, "in_process", False))

    def key(self, prompt: Prompt, options: GenerationOptions | None = None) -> str:
        return cache_key(self.kind, self.digest, normalize_prompt(prompt),
                         options or GenerationOptions(), decoding=self.decoding)

    def generate(self, prompt: Prompt, options: GenerationOptions | None = None) -> Response:
        key = self.key(prompt, options)
        with self._fresh_lock:
            fresh = self._fresh.pop(key, None)
        if fresh is not None:
            return fresh
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        response = self.inner.generate(prompt, options)
        self.cache.put(key, response)
        return response

    def generate_batch(
        self,
        items: Sequence[Prompt],
        options: GenerationOptions | None = None,
        concurrency: int | None = None,
    ) -> list[Response]:
        keys = [self.key(item, options) for item in items]
        results: list[Response | None] = [self.cache.get(key) for key in keys]
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            fresh = self.inner.generate_batch([items[i] for i in missing], options, concurrency)
            for index, response in zip(missing, fresh, strict=True):
                if response.ok:  # an error goes to the caller, not to a later generate()
                    self.store_generated(keys[index], response)
                results[index] = response
        return [r for r in results if r is not None]

    def store_generated(self, key: str, response: Response) -> None:
        """An answer generated ahead of the item that will ask for it: stored in the cache
        (when it is enabled and writable; never an error) and held for that item, which gets
        it as generated in this run. An error is held too: it already went through the retry
        policy, and asking again one at a time would double the time a failing server takes
        (six attempts per sample instead of three)."""
        if response.ok:
            self.cache.put(key, response)
        with self._fresh_lock:
            self._fresh[key] = response

    def stream(self, prompt: Prompt, options: GenerationOptions | None = None
               ) -> Iterator[StreamItem]:
        return self.inner.stream(prompt, options)

    def describe(self) -> dict[str, Any]:
        info = dict(self.inner.describe())
        info["cache"] = {"path": os.fspath(self.cache.path), **self.cache.stats().to_dict()}
        return info

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> CachedBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

