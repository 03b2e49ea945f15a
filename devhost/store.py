"""The task hub: instances, history, queued messages, activity work items and entity state in
one SQLite database (WAL). Every state change of an episode commits in a single transaction, so a
process killed at any point restarts from a consistent hub."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_time REAL NOT NULL,
    last_updated_time REAL NOT NULL,
    parent_instance_id TEXT,
    parent_execution_id TEXT,
    parent_task_id INTEGER,
    version TEXT,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_created ON instances(created_time);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    execution_id TEXT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    visible_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_target ON messages(target, visible_at);
CREATE INDEX IF NOT EXISTS messages_visible ON messages(visible_at);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
    entity_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT,
    last_modified REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS message_failures (
    target TEXT PRIMARY KEY,
    failures INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS parked_messages (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    execution_id TEXT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    failures INTEGER NOT NULL,
    error TEXT NOT NULL,
    parked_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS timer_schedules (
    function_name TEXT PRIMARY KEY,
    last_fired REAL,
    next_due REAL
);
"""

TERMINAL = ("Completed", "Failed", "Terminated")


@dataclass
class InstanceRow:
    instance_id: str
    name: str
    execution_id: str
    status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: float
    last_updated_time: float
    parent_instance_id: str | None
    parent_execution_id: str | None
    parent_task_id: int | None
    version: str | None
    state: dict[str, Any]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class Message:
    id: int
    target: str
    execution_id: str | None
    kind: str
    payload: dict[str, Any]
    visible_at: float


@dataclass
class ActivityItem:
    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across a killed process in WAL mode (only power loss could drop the
        # last commits), which is the crash model devhost promises.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    # --- instances ----------------------------------------------------------------------------
    @staticmethod
    def _instance(row: sqlite3.Row) -> InstanceRow:
        data = dict(row)
        data["state"] = json.loads(data["state"])
        return InstanceRow(**data)

    def get_instance(self, instance_id: str, db: sqlite3.Connection | None = None) -> InstanceRow | None:
        with self.read() as conn:
            row = (db or conn).execute("SELECT * FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
        return self._instance(row) if row else None

    def put_instance(self, db: sqlite3.Connection, inst: InstanceRow) -> None:
        db.execute(
            "INSERT OR REPLACE INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                inst.instance_id,
                inst.name,
                inst.execution_id,
                inst.status,
                inst.input,
                inst.output,
                inst.custom_status,
                inst.created_time,
                inst.last_updated_time,
                inst.parent_instance_id,
                inst.parent_execution_id,
                inst.parent_task_id,
                inst.version,
                json.dumps(inst.state),
            ),
        )

    def query_instances(
        self,
        *,
        statuses: list[str] | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        prefix: str | None = None,
        limit: int | None = None,
        after_id: str | None = None,
    ) -> list[InstanceRow]:
        """Matching instances in instance-id order (as the Azure Storage backend's Instances table,
        keyed by instance id, lists them), the page after ``after_id`` when given."""
        sql = "SELECT * FROM instances WHERE 1=1"
        args: list[Any] = []
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args += statuses
        if created_from is not None:
            sql += " AND created_time >= ?"
            args.append(created_from)
        if created_to is not None:
            sql += " AND created_time <= ?"
            args.append(created_to)
        if prefix:
            sql += " AND substr(instance_id, 1, ?) = ?"
            args += [len(prefix), prefix]
        if after_id is not None:
            sql += " AND instance_id > ?"
            args.append(after_id)
        sql += " ORDER BY instance_id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self.read() as db:
            return [self._instance(r) for r in db.execute(sql, args).fetchall()]

    def delete_instance(self, db: sqlite3.Connection, instance_id: str) -> None:
        db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))
        db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))
        db.execute("DELETE FROM messages WHERE target = ?", (instance_id,))
        db.execute("DELETE FROM activities WHERE instance_id = ?", (instance_id,))

    # --- history ------------------------------------------------------------------------------
    def history(self, instance_id: str, db: sqlite3.Connection | None = None) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = (
                (db or conn)
                .execute("SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,))
                .fetchall()
            )
        return [json.loads(r["event"]) for r in rows]

    def append_history(self, db: sqlite3.Connection, instance_id: str, events: list[dict[str, Any]]) -> None:
        start = db.execute(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM history WHERE instance_id = ?", (instance_id,)
        ).fetchone()[0]
        db.executemany(
            "INSERT INTO history VALUES (?,?,?)",
            [(instance_id, start + i, json.dumps(e)) for i, e in enumerate(events)],
        )

    def reset_history(self, db: sqlite3.Connection, instance_id: str) -> None:
        db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))

    # --- messages -----------------------------------------------------------------------------
    def enqueue(
        self,
        db: sqlite3.Connection,
        target: str,
        kind: str,
        payload: dict[str, Any],
        *,
        visible_at: float,
        execution_id: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO messages (target, execution_id, kind, payload, visible_at) VALUES (?,?,?,?,?)",
            (target, execution_id, kind, json.dumps(payload), visible_at),
        )

    def deliver(
        self,
        db: sqlite3.Connection,
        instance_id: str,
        event: dict[str, Any],
        *,
        visible_at: float,
        execution_id: str | None = None,
        order: int | None = None,
    ) -> None:
        """Queue a history event for an orchestration (``order`` < 0 puts it ahead of others in
        the episode that delivers it)."""
        payload: dict[str, Any] = {"event": event}
        if order is not None:
            payload["order"] = order
        self.enqueue(db, instance_id, "event", payload, visible_at=visible_at, execution_id=execution_id)

    def ready_targets(self, now: float, limit: int = 500) -> list[str]:
        with self.read() as db:
            rows = db.execute(
                "SELECT target, MIN(id) AS first FROM messages WHERE visible_at <= ? "
                "GROUP BY target ORDER BY first LIMIT ?",
                (now, limit),
            ).fetchall()
        return [r["target"] for r in rows]

    def backlog(self, now: float) -> tuple[int, int]:
        """(messages ready to process, activity work items) — zero and zero means idle."""
        with self.read() as db:
            ready = db.execute("SELECT COUNT(*) FROM messages WHERE visible_at <= ?", (now,)).fetchone()[0]
            activities = db.execute("SELECT COUNT(*) FROM activities").fetchone()[0]
        return int(ready), int(activities)

    def next_visible_at(self) -> float | None:
        with self.read() as db:
            value = db.execute("SELECT MIN(visible_at) FROM messages").fetchone()[0]
        return float(value) if value is not None else None

    def messages_for(self, db: sqlite3.Connection, target: str, now: float) -> list[Message]:
        rows = db.execute(
            "SELECT * FROM messages WHERE target = ? AND visible_at <= ? ORDER BY id", (target, now)
        ).fetchall()
        return [
            Message(r["id"], r["target"], r["execution_id"], r["kind"], json.loads(r["payload"]), r["visible_at"])
            for r in rows
        ]

    def delete_messages(self, db: sqlite3.Connection, ids: list[int]) -> None:
        db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    def postpone_messages(self, db: sqlite3.Connection, ids: list[int], visible_at: float) -> None:
        """Hide messages until ``visible_at`` (a work item abandoned to be retried later)."""
        db.executemany("UPDATE messages SET visible_at = ? WHERE id = ?", [(visible_at, i) for i in ids])

    # --- activities ---------------------------------------------------------------------------
    def add_activity(
        self,
        db: sqlite3.Connection,
        instance_id: str,
        execution_id: str,
        task_id: int,
        name: str,
        input_: str | None,
        now: float,
    ) -> None:
        db.execute(
            "INSERT INTO activities (instance_id, execution_id, task_id, name, input, created) VALUES (?,?,?,?,?,?)",
            (instance_id, execution_id, task_id, name, input_, now),
        )

    def pending_activities(self, exclude: set[int], limit: int) -> list[ActivityItem]:
        with self.read() as db:
            rows = db.execute("SELECT * FROM activities ORDER BY id LIMIT ?", (limit + len(exclude),)).fetchall()
        items = [
            ActivityItem(r["id"], r["instance_id"], r["execution_id"], r["task_id"], r["name"], r["input"])
            for r in rows
            if r["id"] not in exclude
        ]
        return items[:limit]

    def delete_activity(self, db: sqlite3.Connection, item_id: int) -> bool:
        return db.execute("DELETE FROM activities WHERE id = ?", (item_id,)).rowcount > 0

    # --- entities -----------------------------------------------------------------------------
    def entity_state(self, entity_id: str, db: sqlite3.Connection | None = None) -> str | None:
        with self.read() as conn:
            row = (db or conn).execute("SELECT state FROM entities WHERE entity_id = ?", (entity_id,)).fetchone()
        return row["state"] if row else None

    def put_entity(
        self, db: sqlite3.Connection, entity_id: str, name: str, key: str, state: str | None, now: float
    ) -> None:
        if state is None:
            db.execute("DELETE FROM entities WHERE entity_id = ?", (entity_id,))
        else:
            db.execute("INSERT OR REPLACE INTO entities VALUES (?,?,?,?,?)", (entity_id, name, key, state, now))

    def list_entities(
        self,
        name: str,
        *,
        operated_from: float | None = None,
        operated_to: float | None = None,
        after_id: str | None = None,
        limit: int,
    ) -> list[sqlite3.Row]:
        """Existing entities named ``name`` in entity-id order, the page after ``after_id``."""
        sql = "SELECT * FROM entities WHERE name = ?"
        args: list[Any] = [name]
        if operated_from is not None:
            sql += " AND last_modified >= ?"
            args.append(operated_from)
        if operated_to is not None:
            sql += " AND last_modified <= ?"
            args.append(operated_to)
        if after_id is not None:
            sql += " AND entity_id > ?"
            args.append(after_id)
        sql += " ORDER BY entity_id LIMIT ?"
        args.append(limit)
        with self.read() as db:
            return list(db.execute(sql, args).fetchall())

    # --- poison messages ----------------------------------------------------------------------
    def count_failure(self, target: str) -> int:
        """Record one failed attempt at ``target``'s messages; returns the failures so far."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO message_failures VALUES (?, 1) ON CONFLICT(target) DO UPDATE SET failures = failures + 1",
                (target,),
            )
            return int(db.execute("SELECT failures FROM message_failures WHERE target = ?", (target,)).fetchone()[0])

    def failing_targets(self) -> set[str]:
        with self.read() as db:
            return {r["target"] for r in db.execute("SELECT target FROM message_failures").fetchall()}

    def clear_failures(self, target: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM message_failures WHERE target = ?", (target,))

    def park_messages(self, target: str, now: float, failures: int, error: str) -> int:
        """Move ``target``'s visible messages out of the queue into ``parked_messages``."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT * FROM messages WHERE target = ? AND visible_at <= ? ORDER BY id", (target, now)
            ).fetchall()
            db.executemany(
                "INSERT INTO parked_messages VALUES (?,?,?,?,?,?,?,?)",
                [(r["id"], target, r["execution_id"], r["kind"], r["payload"], failures, error, now) for r in rows],
            )
            db.executemany("DELETE FROM messages WHERE id = ?", [(r["id"],) for r in rows])
            db.execute("DELETE FROM message_failures WHERE target = ?", (target,))
        return len(rows)

    def parked(self) -> list[dict[str, Any]]:
        with self.read() as db:
            rows = db.execute("SELECT * FROM parked_messages ORDER BY id").fetchall()
        return [
            {
                "id": r["id"],
                "target": r["target"],
                "kind": r["kind"],
                "failures": r["failures"],
                "error": r["error"],
                "parkedAt": r["parked_at"],
            }
            for r in rows
        ]

    # --- timer trigger bookkeeping ------------------------------------------------------------
    def timer_schedule(self, function_name: str) -> tuple[float | None, float | None]:
        with self.read() as db:
            row = db.execute(
                "SELECT last_fired, next_due FROM timer_schedules WHERE function_name = ?", (function_name,)
            ).fetchone()
        return (row["last_fired"], row["next_due"]) if row else (None, None)

    def set_timer_schedule(self, function_name: str, last_fired: float | None, next_due: float) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO timer_schedules VALUES (?,?,?)", (function_name, last_fired, next_due))
