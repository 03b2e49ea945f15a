"""The published event contract, checked: every downstream event against its type's JSON Schema
(docs/events/schemas/<Type>.schema.json, docs/events.md). Used by the test session to check
every event each local stack's Event Grid topic accepted (tests/conftest.py), and by tests that
hold events in hand (the main job's, the docs' examples)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from backup_chain.events import schema_type

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "docs" / "events" / "schemas"
DEFAULT_PREFIX = "BackupChain."  # the configuration's default eventTypePrefix
# Where a local stack (demo/stack.py) keeps what its downstream topic accepted, and its chains.
TOPIC_LOG = Path("eg") / "events" / "downstream.jsonl"
STACK_CONFIG = "chains.json"
STACK_DEPTHS = 3  # a stack's base is at most this deep below the test session's temporary root


def schema_path(event_type: str) -> Path:
    return SCHEMAS / f"{event_type}.schema.json"


@cache
def validator(event_type: str) -> Draft202012Validator | None:
    path = schema_path(event_type)
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def violations(event: Mapping[str, Any], prefix: str | None = DEFAULT_PREFIX) -> list[str]:
    """What is wrong with one event, one line each naming its type, id and the error's path in
    the event; ``prefix`` (the app's eventTypePrefix) is checked when given."""
    cloud_type, event_id = str(event.get("type")), str(event.get("id"))
    where = f"{cloud_type} {event_id}"
    try:
        event_type = schema_type(cloud_type)
    except ValueError:
        return [f"{where}: not a type the app publishes (backup_chain.events.EVENT_TYPES)"]
    found = validator(event_type)
    if found is None:
        return [f"{where}: no schema for {event_type}: add {schema_path(event_type).relative_to(REPO)}"]
    problems = [
        f"{where}: at {error.json_path}: {error.message}"
        for error in sorted(found.iter_errors(dict(event)), key=lambda e: list(e.absolute_path))
    ]
    if prefix is not None and cloud_type != prefix + event_type:
        problems.append(f"{where}: at $.type: expected the configured prefix {prefix!r} + {event_type!r}")
    return problems


def all_violations(events: Iterable[Mapping[str, Any]], prefix: str | None = DEFAULT_PREFIX) -> list[str]:
    return [problem for event in events for problem in violations(event, prefix)]


def assert_contract(events: Iterable[Mapping[str, Any]], prefix: str | None = DEFAULT_PREFIX, what: str = "") -> int:
    """Fail naming every violation; the number of events checked otherwise."""
    listed = list(events)
    problems = all_violations(listed, prefix)
    if problems:
        raise AssertionError(
            f"{len(problems)} contract violations in published events{what}:\n" + "\n".join(problems[:50])
        )
    return len(listed)


@dataclass
class TopicLogWatch:
    """Follows every local stack's downstream topic log under ``root`` (the test session's
    temporary directory): :meth:`new_violations` checks the events accepted since its last call."""

    root: Path
    offsets: dict[Path, int] = field(default_factory=dict)
    checked: int = 0

    def logs(self) -> list[Path]:
        found: list[Path] = []
        for depth in range(1, STACK_DEPTHS + 1):
            found.extend(self.root.glob("/".join(["*"] * depth) + "/" + TOPIC_LOG.as_posix()))
        return sorted(found)

    def new_violations(self) -> list[str]:
        problems: list[str] = []
        for log in self.logs():
            base = log.parents[len(TOPIC_LOG.parts) - 1]
            with open(log, "rb") as handle:
                handle.seek(self.offsets.get(log, 0))
                chunk = handle.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read next time
            self.offsets[log] = self.offsets.get(log, 0) + len(complete)
            events = [json.loads(line)["event"] for line in complete.decode("utf-8").splitlines() if line.strip()]
            self.checked += len(events)
            prefix = stack_prefix(base)
            problems.extend(f"{problem} (stack {base.name})" for problem in all_violations(events, prefix))
        return problems


def stack_prefix(base: Path) -> str:
    """The eventTypePrefix of the stack at ``base`` (its chains.json, as devhost loads it)."""
    path = base / STACK_CONFIG
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return str(config.get("eventTypePrefix", DEFAULT_PREFIX)) if isinstance(config, dict) else DEFAULT_PREFIX
