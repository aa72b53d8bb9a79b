"""The ledger: a SQLite file in the state directory that records every attempt, step and write.

Each row is committed before the work it describes starts and again when it
ends, so a pass that dies at any point leaves enough behind for the next pass
to resume. A step marked started but never finished shows that the process
died while it ran. Writes to GLPI, the artifact and the memory sink are
"effects" with a unique key; an effect is at most once in effect because the
next try first checks whether the earlier one landed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    ticket_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    run_marker TEXT NOT NULL,
    state TEXT NOT NULL,            -- open | solved | pending
    kind TEXT NOT NULL DEFAULT 'ok',
    recovered INTEGER NOT NULL DEFAULT 0,  -- 1: rebuilt from the ticket timeline after the ledger was lost
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (ticket_id, attempt)
);
CREATE TABLE IF NOT EXISTS steps (
    ticket_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    step_index INTEGER NOT NULL,
    action TEXT NOT NULL,
    changes_state INTEGER NOT NULL,
    state TEXT NOT NULL,            -- started | finished
    ok INTEGER,
    result_json TEXT,
    started_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (ticket_id, attempt, step_index)
);
CREATE TABLE IF NOT EXISTS effects (
    key TEXT PRIMARY KEY,           -- e.g. t17-a2-claimed
    ticket_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    kind TEXT NOT NULL,             -- followup | solution | status | artifact | memory
    payload_json TEXT NOT NULL,
    state TEXT NOT NULL,            -- pending | done
    tries INTEGER NOT NULL DEFAULT 0,
    next_try_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    result_json TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    value_json TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Seconds to wait before retrying a failed effect: 1 min, 2 min, 4 min ... capped at 1 h.
RETRY_BASE_S = 60.0
RETRY_MAX_S = 3600.0


@dataclass(frozen=True)
class Attempt:
    ticket_id: int
    attempt: int
    run_marker: str
    state: str
    kind: str
    recovered: bool = False


@dataclass(frozen=True)
class StepRecord:
    step_index: int
    action: str
    changes_state: bool
    state: str
    ok: bool | None
    result: dict[str, Any] | None


@dataclass(frozen=True)
class Effect:
    key: str
    ticket_id: int
    attempt: int
    kind: str
    payload: dict[str, Any]
    state: str
    tries: int
    next_try_at: float
    last_error: str | None


class Ledger:
    """One SQLite connection to `<state_dir>/ledger.sqlite3`; every method commits before returning."""

    def __init__(self, path: Path, *, clock=time.time) -> None:
        self.path = path
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Step results can quote remote output, so only the bot's user may read the ledger.
        # SQLite gives its -wal and -shm files the database file's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # attempts

    def latest_attempt(self, ticket_id: int) -> Attempt | None:
        row = self._db.execute(
            "SELECT ticket_id, attempt, run_marker, state, kind, recovered FROM attempts "
            "WHERE ticket_id = ? ORDER BY attempt DESC LIMIT 1",
            (ticket_id,),
        ).fetchone()
        return _attempt(row) if row else None

    def open_attempt(self, ticket_id: int, attempt: int, run_marker: str, *, recovered: bool = False) -> Attempt:
        now = self._clock()
        self._db.execute(
            "INSERT OR IGNORE INTO attempts "
            "(ticket_id, attempt, run_marker, state, kind, recovered, started_at, updated_at) "
            "VALUES (?, ?, ?, 'open', 'ok', ?, ?, ?)",
            (ticket_id, attempt, run_marker, int(recovered), now, now),
        )
        found = self.latest_attempt(ticket_id)
        assert found is not None
        return found

    def close_attempt(self, ticket_id: int, attempt: int, state: str, kind: str) -> None:
        self._db.execute(
            "UPDATE attempts SET state = ?, kind = ?, updated_at = ? WHERE ticket_id = ? AND attempt = ?",
            (state, kind, self._clock(), ticket_id, attempt),
        )

    def open_attempts(self) -> list[Attempt]:
        rows = self._db.execute(
            "SELECT ticket_id, attempt, run_marker, state, kind, recovered FROM attempts "
            "WHERE state = 'open' ORDER BY ticket_id"
        ).fetchall()
        return [_attempt(row) for row in rows]

    # steps

    def step_started(self, ticket_id: int, attempt: int, step_index: int, action: str, changes_state: bool) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO steps (ticket_id, attempt, step_index, action, changes_state, state, started_at) "
            "VALUES (?, ?, ?, ?, ?, 'started', ?)",
            (ticket_id, attempt, step_index, action, int(changes_state), self._clock()),
        )

    def step_finished(self, ticket_id: int, attempt: int, step_index: int, ok: bool, result: dict[str, Any]) -> None:
        self._db.execute(
            "UPDATE steps SET state = 'finished', ok = ?, result_json = ?, finished_at = ? "
            "WHERE ticket_id = ? AND attempt = ? AND step_index = ?",
            (int(ok), json.dumps(result), self._clock(), ticket_id, attempt, step_index),
        )

    def steps(self, ticket_id: int, attempt: int) -> list[StepRecord]:
        rows = self._db.execute(
            "SELECT step_index, action, changes_state, state, ok, result_json FROM steps "
            "WHERE ticket_id = ? AND attempt = ? ORDER BY step_index",
            (ticket_id, attempt),
        ).fetchall()
        return [
            StepRecord(
                step_index=row[0],
                action=row[1],
                changes_state=bool(row[2]),
                state=row[3],
                ok=None if row[4] is None else bool(row[4]),
                result=json.loads(row[5]) if row[5] else None,
            )
            for row in rows
        ]

    # effects

    def effect(self, key: str) -> Effect | None:
        row = self._db.execute(
            "SELECT key, ticket_id, attempt, kind, payload_json, state, tries, next_try_at, last_error "
            "FROM effects WHERE key = ?",
            (key,),
        ).fetchone()
        return _effect(row) if row else None

    def add_effect(self, key: str, ticket_id: int, attempt: int, kind: str, payload: dict[str, Any]) -> Effect:
        """Record an intended write; an existing effect with the same key is kept as it is."""
        now = self._clock()
        self._db.execute(
            "INSERT OR IGNORE INTO effects (key, ticket_id, attempt, kind, payload_json, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
            (key, ticket_id, attempt, kind, json.dumps(payload), now, now),
        )
        found = self.effect(key)
        assert found is not None
        return found

    def effect_trying(self, key: str) -> None:
        """Count a try before it is sent, so a crash mid-send leaves tries > 0 behind."""
        self._db.execute(
            "UPDATE effects SET tries = tries + 1, updated_at = ? WHERE key = ?", (self._clock(), key)
        )

    def effect_done(self, key: str, result: dict[str, Any] | None = None) -> None:
        self._db.execute(
            "UPDATE effects SET state = 'done', last_error = NULL, result_json = ?, updated_at = ? WHERE key = ?",
            (json.dumps(result or {}), self._clock(), key),
        )

    def effect_failed(self, key: str, error: str) -> None:
        """Keep the effect pending and schedule its next try with exponential backoff."""
        effect = self.effect(key)
        tries = effect.tries if effect else 1
        delay = min(RETRY_MAX_S, RETRY_BASE_S * (2 ** max(0, tries - 1)))
        self._db.execute(
            "UPDATE effects SET last_error = ?, next_try_at = ?, updated_at = ? WHERE key = ?",
            (error[:2000], self._clock() + delay, self._clock(), key),
        )

    def pending_effects(self, *, due_only: bool = True) -> list[Effect]:
        query = (
            "SELECT key, ticket_id, attempt, kind, payload_json, state, tries, next_try_at, last_error "
            "FROM effects WHERE state = 'pending'"
        )
        params: tuple[Any, ...] = ()
        if due_only:
            query += " AND next_try_at <= ?"
            params = (self._clock(),)
        rows = self._db.execute(query + " ORDER BY created_at, key", params).fetchall()
        return [_effect(row) for row in rows]

    def has_pending_effects(self, ticket_id: int, attempt: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM effects WHERE ticket_id = ? AND attempt = ? AND state = 'pending' LIMIT 1",
            (ticket_id, attempt),
        ).fetchone()
        return row is not None

    # cache

    def cached(self, key: str) -> Any:
        row = self._db.execute("SELECT value_json FROM cache WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def cache(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO cache (key, value_json, updated_at) VALUES (?, ?, ?)",
            (key, json.dumps(value), self._clock()),
        )


def _attempt(row: tuple[Any, ...]) -> Attempt:
    return Attempt(
        ticket_id=row[0], attempt=row[1], run_marker=row[2], state=row[3], kind=row[4], recovered=bool(row[5])
    )


def _effect(row: tuple[Any, ...]) -> Effect:
    return Effect(
        key=row[0],
        ticket_id=row[1],
        attempt=row[2],
        kind=row[3],
        payload=json.loads(row[4]),
        state=row[5],
        tries=row[6],
        next_try_at=row[7],
        last_error=row[8],
    )
