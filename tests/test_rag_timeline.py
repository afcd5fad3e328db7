"""The SQLite PDCA timeline: chains in order, topic history, migrations from older schemas."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from loragate.rag import corpus
from loragate.rag.corpus import PdcaSummary
from loragate.rag.timeline import (
    SCHEMA_VERSION,
    TimelineError,
    TimelineStore,
    migrate,
    records_ids,
    schema_version,
)

REDIS = [
    "2025-09-18-UTC-0900-redis-cache-plan",
    "2025-09-18-UTC-1400-redis-cache-build",
    "2025-09-19-UTC-1000-redis-cache-check",
]


@pytest.fixture
def timeline(tmp_path: Path):
    with TimelineStore(tmp_path / "pdca_timeline.db") as store:
        store.add_pdcas(corpus.PDCA_SUMMARIES)
        yield store


def test_chain_before_is_oldest_first_and_after_is_next_first(timeline: TimelineStore) -> None:
    assert records_ids(timeline.chain_before(REDIS[2])) == REDIS[:2]
    assert records_ids(timeline.chain_after(REDIS[0])) == REDIS[1:]
    assert records_ids(timeline.chain_before(REDIS[0])) == []
    assert records_ids(timeline.chain_after(REDIS[2])) == []
    middle = "2025-09-20-UTC-1300-empty-constructor-refactor"
    assert records_ids(timeline.chain_before(middle)) == [
        "2025-09-20-UTC-0830-empty-constructor-audit"]
    assert records_ids(timeline.chain_after(middle)) == [
        "2025-09-21-UTC-0915-empty-constructor-tests"]


def test_chain_follows_links_declared_on_one_side_only(tmp_path: Path) -> None:
    # c declares only FOLLOWS b; a declares only PRECEDES b: the chain is still a, b, c.
    pdcas = [
        PdcaSummary("a", "A", "t", "2025-01-03", "s", precedes="b"),
        PdcaSummary("b", "B", "t", "2025-01-01", "s"),
        PdcaSummary("c", "C", "t", "2025-01-02", "s", follows="b"),
    ]
    with TimelineStore(tmp_path / "t.db") as store:
        store.add_pdcas(pdcas)
        assert records_ids(store.chain_after("a")) == ["b", "c"]
        assert records_ids(store.chain_before("c")) == ["a", "b"]
        # Topic history orders by date, not by links.
        assert records_ids(store.topic_history("t")) == ["b", "c", "a"]


def test_a_cycle_in_the_links_terminates(tmp_path: Path) -> None:
    pdcas = [PdcaSummary("x", "X", "t", "1", "s", precedes="y"),
             PdcaSummary("y", "Y", "t", "2", "s", precedes="x")]
    with TimelineStore(tmp_path / "t.db") as store:
        store.add_pdcas(pdcas)
        assert records_ids(store.chain_after("x")) == ["y"]


def test_topic_history_and_unknown_pdca(timeline: TimelineStore) -> None:
    assert records_ids(timeline.topic_history("redis-cache")) == REDIS
    assert timeline.topic_history("nothing") == []
    with pytest.raises(KeyError, match="no PDCA 'missing'"):
        timeline.chain_after("missing")
    assert timeline.dangling_links() == []


def test_adding_the_same_pdcas_twice_changes_nothing(timeline: TimelineStore) -> None:
    assert timeline.add_pdcas(corpus.PDCA_SUMMARIES) == 0
    assert timeline.count() == len(corpus.PDCA_SUMMARIES)
    changed = PdcaSummary(REDIS[0], "Plan a Redis cache", "redis-cache", "2025-09-18-UTC-0900",
                          "new summary", precedes=REDIS[1])
    assert timeline.add_pdcas([changed]) == 1
    assert timeline.get(REDIS[0]).summary == "new summary"
    assert timeline.count() == len(corpus.PDCA_SUMMARIES)


def test_migration_from_version_1_keeps_data_and_collapses_duplicate_links(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    migrate(conn, target=1)
    assert schema_version(conn) == 1
    conn.execute("INSERT INTO pdca VALUES ('a', 'A', 't', '2025-01-01', 'first')")
    conn.execute("INSERT INTO pdca VALUES ('b', 'B', 't', '2025-01-02', 'second')")
    for _ in range(2):  # version 1 had no unique index: an old double index left duplicates
        conn.execute("INSERT INTO pdca_link VALUES ('a', 'b', 'PRECEDES')")
    conn.commit()
    conn.close()

    with TimelineStore(path) as store:
        assert store.migrations_applied == SCHEMA_VERSION - 1
        assert records_ids(store.chain_after("a")) == ["b"]
        assert store.get("a").summary == "first"
        links = store._conn.execute("SELECT count(*) FROM pdca_link").fetchone()[0]
        assert links == 1
        # The new column works: re-adding with a content hash updates in place.
        assert store.add_pdcas([PdcaSummary("a", "A", "t", "2025-01-01", "first",
                                            precedes="b")]) == 1
        assert store.add_pdcas([PdcaSummary("a", "A", "t", "2025-01-01", "first",
                                            precedes="b")]) == 0
    with TimelineStore(path) as again:
        assert again.migrations_applied == 0


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(TimelineError, match="newer than this loragate"):
        TimelineStore(path)
