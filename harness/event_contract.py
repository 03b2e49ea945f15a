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


def violations(
    event: Mapping[str, Any], prefix: str | None = DEFAULT_PREFIX, *, names_schema: bool = False
) -> list[str]:
    """What is wrong with one event, one line each naming its type, id and the error's path in
    the event; ``prefix`` (the app's eventTypePrefix) is checked when given. ``names_schema``: the
    sender had a schema base URL (every local stack sets one), so ``dataschema``, optional in the
    schemas (an app without a base URL sends none), must be there."""
    cloud_type, event_id = str(event.get("type")), str(event.get("id"))
    where = f"{cloud_type} {event_id}"
    try:
        event_type = schema_type(cloud_type)
    except ValueError:
        return [f"{where}: not a type the app publishes (backup_chain.events.EVENT_TYPES)"]
    found = validator(event_type)
    if found is None:
        return [f"{where}: no schema for {event_type}: add docs/events/schemas/{schema_path(event_type).name}"]
    problems = [
        f"{where}: at {error.json_path}: {error.message}"
        for error in sorted(found.iter_errors(dict(event)), key=lambda e: list(e.absolute_path))
    ]
    if prefix is not None and cloud_type != prefix + event_type:
        problems.append(f"{where}: at $.type: expected the configured prefix {prefix!r} + {event_type!r}")
    if names_schema and "dataschema" not in event:
        problems.append(f"{where}: at $: no dataschema, though the sender was given a schema base URL")
    return problems


def all_violations(
    events: Iterable[Mapping[str, Any]], prefix: str | None = DEFAULT_PREFIX, *, names_schema: bool = False
) -> list[str]:
    return [problem for event in events for problem in violations(event, prefix, names_schema=names_schema)]


def assert_contract(
    events: Iterable[Mapping[str, Any]],
    prefix: str | None = DEFAULT_PREFIX,
    what: str = "",
    *,
    names_schema: bool = False,
) -> int:
    """Fail naming every violation; the number of events checked otherwise."""
    listed = list(events)
    problems = all_violations(listed, prefix, names_schema=names_schema)
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
        found: set[Path] = set()
        for depth in range(1, STACK_DEPTHS + 1):
            pattern = "/".join(["*"] * depth) + "/" + TOPIC_LOG.as_posix()
            # resolved: pytest links "<name>current" to a test's directory, so one log has two paths
            found.update(path.resolve() for path in self.root.glob(pattern))
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
            # One record per b"\n": str.splitlines would also split at U+2028 and the like, which
            # an event's data may hold raw (the emulator writes JSON with ensure_ascii=False).
            events = [json.loads(line)["event"] for line in complete.split(b"\n") if line.strip()]
            self.checked += len(events)
            prefix = stack_prefix(base)
            found = all_violations(events, prefix, names_schema=True)  # demo/stack.py sets EVENT_SCHEMA_BASE_URL
            problems.extend(f"{problem} (stack {base.name})" for problem in found)
        return problems


def stack_prefix(base: Path) -> str:
    """The eventTypePrefix of the stack at ``base`` (its chains.json, as devhost loads it)."""
    path = base / STACK_CONFIG
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return str(config.get("eventTypePrefix", DEFAULT_PREFIX)) if isinstance(config, dict) else DEFAULT_PREFIX


# --- versioning (docs/events.md, "Versioning") --------------------------------------------------
RECORD = SCHEMAS / "majors.json"  # each type's data fields as each major version promised them
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(schema, schema["$defs"][ref.removeprefix("#/$defs/")])
    return node


def field_shape(schema: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    """A data field's JSON types and, where the schema closes them, its values."""
    node = _resolve(schema, node)
    types: set[str] = set()
    values: set[Any] | None = None
    if "anyOf" in node or "oneOf" in node:
        for part in node.get("anyOf", node.get("oneOf", [])):
            part_shape = field_shape(schema, part)
            types |= set(part_shape["types"])
            if "enum" in part_shape:
                values = (values or set()) | set(part_shape["enum"])
    elif "const" in node or "enum" in node:
        values = {node["const"]} if "const" in node else set(node["enum"])
        types = {_JSON_TYPES[type(v)] for v in values}
    elif "type" in node:
        types = {node["type"]} if isinstance(node["type"], str) else set(node["type"])
    else:
        types = {"any"}
    shape: dict[str, Any] = {"types": sorted(types)}
    if values is not None:
        shape["enum"] = sorted(values, key=str)
    return shape


def data_fields(schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each data field's shape and whether it is required: what a major version promises."""
    data = schema["properties"]["data"]
    required = set(data.get("required", []))
    return {
        name: {**field_shape(schema, node), "required": name in required} for name, node in data["properties"].items()
    }


def breaking_changes(promised: Mapping[str, Mapping[str, Any]], schema: Mapping[str, Any]) -> list[str]:
    """How ``schema`` breaks what its major version promised: a field removed or renamed, no
    longer required, of other JSON types, or without a value it had."""
    now = data_fields(schema)
    problems = []
    for name, was in promised.items():
        found = now.get(name)
        if found is None:
            problems.append(f"data.{name}: removed or renamed")
            continue
        if was["required"] and not found["required"]:
            problems.append(f"data.{name}: no longer required")
        if found["types"] != was["types"]:
            problems.append(f"data.{name}: JSON types {was['types']} became {found['types']}")
        dropped = [v for v in was.get("enum", []) if v not in found.get("enum", was.get("enum", []))]
        if dropped:
            problems.append(f"data.{name}: values {dropped} dropped")
    return problems
