"""People across devices (`insights.sessions_sql`'s person map): identify and login link an
anonymous id to a user id, an alias links a previous id, a shared device belongs to its first
user; each session's person and the `persons` view, over hand-made parts (DuckDB in memory)."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from insights import sessions_sql

T0 = datetime(2026, 12, 1, 10)
# (session, anonymous id, user id, hours after T0)
PARTS = [
    ("s1", "phone", None, 0),  # browsing anonymously on a phone
    ("s2", "phone", "u1", 1),  # identify on the phone
    ("s3", "laptop", "u1", 2),  # login on a laptop
    ("s4", "laptop", None, 3),  # the laptop later, logged out
    ("s5", "kiosk", "u2", 4),  # a shared device: first u2 ...
    ("s6", "kiosk", "u3", 5),  # ... then u3
    ("s7", "tablet", "u4", 6),  # an alias call: u4 was old-u4
    ("s8", None, "old-u4", 0),
    ("s9", "stranger", None, 7),
]


def connection() -> duckdb.DuckDBPyConnection:
    found = duckdb.connect()
    found.execute(
        "CREATE MACRO json_extract_scalar(document, path) AS json_extract_string(document, path)"
    )
    found.execute(
        "CREATE TABLE session_parts (session_id VARCHAR, anonymous_id VARCHAR, "
        "user_id VARCHAR, first_at TIMESTAMP, started_at TIMESTAMP, ended_at TIMESTAMP)"
    )
    for session, anonymous, user, hours in PARTS:
        at = T0 + timedelta(hours=hours)
        found.execute(
            "INSERT INTO session_parts VALUES (?, ?, ?, ?, ?, ?)",
            [session, anonymous, user, at, at, at + timedelta(minutes=5)],
        )
    found.execute(
        "CREATE TABLE custom_events AS SELECT 's7' AS session_id, "
        f"TIMESTAMP '{T0 + timedelta(hours=6)}' AS event_time, "
        """'{"call": "alias", "previousId": "old-u4"}' AS properties"""
    )
    found.execute(f"CREATE VIEW identities AS {sessions_sql.identities_select()}")
    return found


def test_each_session_is_its_person_across_devices() -> None:
    found = connection().execute(
        f"SELECT s.session_id, {sessions_sql.person_of()} "
        f"FROM {sessions_sql.with_people('session_parts')} ORDER BY 1"
    )
    assert dict(found.fetchall()) == {
        "s1": "u1",  # the phone before its identify
        "s2": "u1",
        "s3": "u1",
        "s4": "u1",  # the laptop after logging out
        "s5": "u2",
        "s6": "u3",  # a user id is its own person; the kiosk's anonymous visits are u2's
        "s7": "u4",
        "s8": "u4",  # the previous id, aliased
        "s9": "stranger",
    }


def test_persons_lists_the_ids_each_person_joins() -> None:
    found = connection().execute(
        f"SELECT person_id, list_sort(ids), first_seen, last_seen FROM ("
        f"{sessions_sql.persons_select('session_parts')}) ORDER BY 1"
    )
    rows = {person: (ids, first, last) for person, ids, first, last in found.fetchall()}
    assert set(rows) == {"u1", "u2", "u3", "u4"}
    assert rows["u1"] == (["laptop", "phone"], T0, T0 + timedelta(hours=3, minutes=5))
    assert rows["u4"][0] == ["old-u4", "tablet"]  # the id an alias named as its previous one
