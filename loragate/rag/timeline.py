"""The PDCA timeline in SQLite (``pdca_timeline.db``): PDCAs and their PRECEDES/FOLLOWS links.

A PDCA document names its neighbours: ``PRECEDES: <next>`` and ``FOLLOWS: <previous>``. Both
declarations are stored as written (table ``pdca_link``); the view ``pdca_order`` turns them into
one ``(earlier, later)`` relation, so a chain is found whichever side declared the link.

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` lists the steps from
an empty file to the current version, and opening a store applies the missing ones in one
transaction each.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loragate.rag.corpus import PdcaSummary

# Version N is reached by running MIGRATIONS[N - 1]. Never edit a released step: add one.
MIGRATIONS: tuple[str, ...] = (
    # 1: PDCAs and the links as documents declare them.
    """
    CREATE TABLE pdca (
        pdca_id TEXT PRIMARY KEY,
        title   TEXT NOT NULL,
        topic   TEXT NOT NULL,
        date    TEXT NOT NULL,
        summary TEXT NOT NULL
    );
    CREATE TABLE pdca_link (
        from_id  TEXT NOT NULL,
        to_id    TEXT NOT NULL,
        relation TEXT NOT NULL CHECK (relation IN ('PRECEDES', 'FOLLOWS'))
    );
    """,
    # 2: content hashes make re-indexing idempotent; duplicate links are collapsed first so the
    # unique index can be created on a version-1 file that indexed the same corpus twice.
    """
    ALTER TABLE pdca ADD COLUMN content_hash TEXT;
    DELETE FROM pdca_link WHERE rowid NOT IN (
        SELECT min(rowid) FROM pdca_link GROUP BY from_id, to_id, relation
    );
    CREATE UNIQUE INDEX pdca_link_unique ON pdca_link (from_id, to_id, relation);
    CREATE INDEX pdca_topic_date ON pdca (topic, date);
    CREATE VIEW pdca_order (earlier, later) AS
        SELECT from_id, to_id FROM pdca_link WHERE relation = 'PRECEDES'
        UNION
        SELECT to_id, from_id FROM pdca_link WHERE relation = 'FOLLOWS';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# A chain longer than this is a cycle in the links, not a real history.
MAX_CHAIN = 1000


class TimelineError(RuntimeError):
    pass


@dataclass(frozen=True)
class PdcaRecord:
    pdca_id: str
    title: str
    topic: str
    date: str
    summary: str


def _record(row: sqlite3.Row) -> PdcaRecord:
    return PdcaRecord(row["pdca_id"], row["title"], row["topic"], row["date"], row["summary"])


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema to ``target``; returns the number of steps applied."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise TimelineError(
            f"timeline schema version {current} is newer than this loragate knows "
            f"({SCHEMA_VERSION}); upgrade loragate"
        )
    applied = 0
    for version in range(current + 1, target + 1):
        # executescript commits first; the explicit BEGIN makes each step all-or-nothing.
        conn.executescript(
            f"BEGIN; {MIGRATIONS[version - 1]} PRAGMA user_version = {version}; COMMIT;"
        )
        applied += 1
    return applied


class TimelineStore:
    """The SQLite timeline. Open with a path; the schema is created or migrated on open."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path)
        self._conn.row_factory = sqlite3.Row
        self.migrations_applied = migrate(self._conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> TimelineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_pdcas(self, pdcas: Iterable[PdcaSummary]) -> int:
        """Insert or update PDCAs and their links; returns how many PDCAs were new or changed."""
        changed = 0
        with self._conn:
            for pdca in pdcas:
                changed += self._upsert_pdca(pdca)
                self._add_links(pdca)
        return changed

    def _upsert_pdca(self, pdca: PdcaSummary) -> int:
        row = self._conn.execute(
            "SELECT content_hash FROM pdca WHERE pdca_id = ?", (pdca.pdca_id,)
        ).fetchone()
        if row is not None and row["content_hash"] == pdca.id:
            return 0
        self._conn.execute(
            "INSERT INTO pdca (pdca_id, title, topic, date, summary, content_hash) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pdca_id) DO UPDATE SET "
            "title = excluded.title, topic = excluded.topic, date = excluded.date, "
            "summary = excluded.summary, content_hash = excluded.content_hash",
            (pdca.pdca_id, pdca.title, pdca.topic, pdca.date, pdca.summary, pdca.id),
        )
        return 1

    def _add_links(self, pdca: PdcaSummary) -> None:
        for relation, other in (("PRECEDES", pdca.precedes), ("FOLLOWS", pdca.follows)):
            if other:
                self._conn.execute(
                    "INSERT OR IGNORE INTO pdca_link (from_id, to_id, relation) VALUES (?, ?, ?)",
                    (pdca.pdca_id, other, relation),
                )

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM pdca").fetchone()[0])

    def get(self, pdca_id: str) -> PdcaRecord | None:
        row = self._conn.execute(
            "SELECT pdca_id, title, topic, date, summary FROM pdca WHERE pdca_id = ?", (pdca_id,)
        ).fetchone()
        return _record(row) if row else None

    def topic_history(self, topic: str) -> list[PdcaRecord]:
        """All PDCAs of a topic, oldest first."""
        rows = self._conn.execute(
            "SELECT pdca_id, title, topic, date, summary FROM pdca WHERE topic = ? "
            "ORDER BY date, pdca_id", (topic,)
        ).fetchall()
        return [_record(r) for r in rows]

    def chain_before(self, pdca_id: str) -> list[PdcaRecord]:
        """The PDCAs that lead to ``pdca_id``, oldest first (the PDCA itself excluded)."""
        return list(reversed(self._walk(pdca_id, forward=False)))

    def chain_after(self, pdca_id: str) -> list[PdcaRecord]:
        """The PDCAs that come after ``pdca_id``, next first (the PDCA itself excluded)."""
        return self._walk(pdca_id, forward=True)

    def _walk(self, pdca_id: str, *, forward: bool) -> list[PdcaRecord]:
        if self.get(pdca_id) is None:
            raise KeyError(f"no PDCA {pdca_id!r} in {self.path}")
        step_from, step_to = ("earlier", "later") if forward else ("later", "earlier")
        # Nearest first; MIN(depth) keeps one row per PDCA even if the links loop.
        rows = self._conn.execute(
            f"""
            WITH RECURSIVE walk (pdca_id, depth) AS (
                SELECT {step_to}, 1 FROM pdca_order WHERE {step_from} = :start
                UNION
                SELECT o.{step_to}, w.depth + 1 FROM pdca_order o
                    JOIN walk w ON o.{step_from} = w.pdca_id
                    WHERE w.depth < :limit
            )
            SELECT p.pdca_id, p.title, p.topic, p.date, p.summary, MIN(w.depth) AS depth
            FROM walk w JOIN pdca p ON p.pdca_id = w.pdca_id
            WHERE p.pdca_id != :start
            GROUP BY p.pdca_id ORDER BY depth, p.date
            """,
            {"start": pdca_id, "limit": MAX_CHAIN},
        ).fetchall()
        return [_record(r) for r in rows]

    def dangling_links(self) -> list[tuple[str, str, str]]:
        """Links that name a PDCA the timeline does not hold: ``(from_id, relation, to_id)``."""
        rows = self._conn.execute(
            "SELECT from_id, relation, to_id FROM pdca_link "
            "WHERE to_id NOT IN (SELECT pdca_id FROM pdca) ORDER BY from_id"
        ).fetchall()
        return [tuple(r) for r in rows]


def open_timeline(path: Path | str) -> TimelineStore:
    return TimelineStore(path)


def records_ids(records: Sequence[PdcaRecord]) -> list[str]:
    return [r.pdca_id for r in records]
