"""The published event contract (docs/events.md, "Contract" and "Versioning"): one draft 2020-12
JSON Schema per event type, the docs' examples follow theirs, a violating event is reported with
its type, id and the error's path (also when it went through the real Event Grid emulator into a
stack's topic log), a type without a schema fails loudly, and no schema breaks what its major
version promised (docs/events/schemas/majors.json)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from backup_chain.events import EVENT_TYPES, SCHEMA_MAJORS, data_schema_uri
from harness import event_contract
from harness.event_contract import (
    RECORD,
    SCHEMAS,
    TOPIC_LOG,
    TopicLogWatch,
    breaking_changes,
    data_fields,
    schema_path,
    violations,
)
from tests.integration.eg_support import start_emulator

EXAMPLES = SCHEMAS.parent
BASE = "https://backup-chain-local.azurewebsites.net/api/schemas/events"


def _schema(event_type: str) -> dict[str, Any]:
    return dict(json.loads(schema_path(event_type).read_text(encoding="utf-8")))


def _example(event_type: str) -> dict[str, Any]:
    return dict(json.loads((EXAMPLES / f"{event_type}.json").read_text(encoding="utf-8")))


def _paths(problems: list[str], event: dict[str, Any]) -> list[str]:
    """The error paths of ``problems``, each checked to name the event's type and id first."""
    head = f"{event['type']} {event['id']}: at "
    assert all(p.startswith(head) for p in problems), problems
    return [p.removeprefix(head).split(": ", 1)[0] for p in problems]


def test_every_type_has_one_schema_and_every_schema_is_a_type() -> None:
    assert sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_schema_is_draft_2020_12_strict_and_names_its_major(event_type: str) -> None:
    schema = _schema(event_type)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:backup-chain:events:{event_type}:v{SCHEMA_MAJORS[event_type]}"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["data"]["additionalProperties"] is False


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_example_follows_its_schema(event_type: str) -> None:
    example = _example(event_type)
    assert violations(example) == []
    assert example["dataschema"] == data_schema_uri(BASE, example["type"])


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_an_event_sent_without_dataschema_follows_its_schema(event_type: str) -> None:
    # The publishing activity sends no dataschema when it cannot name a base URL (a bad
    # EVENT_SCHEMA_BASE_URL, or neither it nor WEBSITE_HOSTNAME: activities/events.py); the event
    # still goes out, so the schema it is checked against must not require the attribute.
    example = _example(event_type)
    del example["dataschema"]
    assert violations(example) == []
    # A local stack always has a base URL (demo/stack.py): there the attribute is still required.
    assert _paths(violations(example, names_schema=True), example) == ["$"]


def _drop(event: dict[str, Any], *path: str) -> None:
    node: Any = event
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]


def _set(event: dict[str, Any], value: Any, *path: Any) -> None:
    node: Any = event
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


# (example type, change, the one path the violation is reported at)
BROKEN = [
    ("BackupFailed", lambda e: _drop(e, "data", "errorCode"), "$.data"),
    ("BackupFailed", lambda e: _set(e, "copy", "data", "phase"), "$.data.phase"),
    ("BackupFailed", lambda e: _set(e, "400201", "data", "azureErrorCode"), "$.data.azureErrorCode"),
    ("ChainStarted", lambda e: _set(e, 1, "data", "extra"), "$.data"),
    ("ChainStarted", lambda e: _set(e, "6", "data", "vmCount"), "$.data.vmCount"),
    ("ChainCompleted", lambda e: _set(e, "exploded", "data", "vms", 0, "outcome"), "$.data.vms[0].outcome"),
    # cancelled: jobsStillRunning is missing, and each VM's jobStatus, jobRunning and readError
    ("ChainCompleted", lambda e: _set(e, "cancelled", "data", "outcome"), "$.data $.data.vms[0] $.data.vms[1]"),
    ("GcOverdue", lambda e: _set(e, "nearLimit", "data", "finding"), "$.data.finding"),
    (
        "SnapshotCompleted",
        lambda e: _set(e, "2027-01-04 02:52", "data", "snapshotCompletedAt"),
        "$.data.snapshotCompletedAt",
    ),
    ("SnapshotCompleted", lambda e: _set(e, "/subscriptions/x/vm", "subject"), "$.subject"),
    ("BackupTriggered", lambda e: _set(e, BASE + "/BackupFailed/v1", "dataschema"), "$.dataschema"),
    ("BackupTriggered", lambda e: _set(e, "text/plain", "datacontenttype"), "$.datacontenttype"),
    ("UpstreamTimedOut", lambda e: _set(e, "yesterday", "time"), "$.time"),
]


@pytest.mark.parametrize(("event_type", "change", "path"), BROKEN, ids=[f"{t}-{p}" for t, _, p in BROKEN])
def test_a_violating_event_is_reported_with_type_id_and_path(event_type: str, change: Any, path: str) -> None:
    event = _example(event_type)
    change(event)
    assert sorted(set(_paths(violations(event), event))) == path.split()


def test_a_prefix_other_than_the_configured_one_is_reported() -> None:
    event = _example("ChainStarted")
    assert violations(event, "BackupChain.") == []
    assert _paths(violations(event, "Contoso.Backup."), event) == ["$.type"]


def test_a_type_the_app_does_not_publish_or_without_schema_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = {**_example("ChainStarted"), "type": "BackupChain.ChainExploded"}
    assert violations(unknown) == [
        f"BackupChain.ChainExploded {unknown['id']}: not a type the app publishes (backup_chain.events.EVENT_TYPES)"
    ]
    # A type added to EVENT_TYPES before its schema (another change's new type): named, not skipped.
    monkeypatch.setattr(event_contract, "SCHEMAS", tmp_path)
    event_contract.validator.cache_clear()
    try:
        event = _example("ChainStarted")
        assert violations(event) == [
            f"BackupChain.ChainStarted {event['id']}: no schema for ChainStarted: add "
            "docs/events/schemas/ChainStarted.schema.json"
        ]
    finally:
        event_contract.validator.cache_clear()


def test_the_watch_catches_a_violating_event_a_real_topic_accepted(tmp_path: Path) -> None:
    """The session's check (tests/conftest.py) on a stack layout: events published with the real
    azure-eventgrid client to the real Event Grid emulator, read back from its topic log."""
    from azure.core.credentials import AzureKeyCredential
    from azure.core.messaging import CloudEvent
    from azure.eventgrid import EventGridPublisherClient
    from dateutil.parser import isoparse

    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "chains.json").write_text(json.dumps({"eventTypePrefix": "BackupChain.", "chains": []}))
    emulator = start_emulator(stack, {"topics": [{"name": "downstream", "inputSchema": "CloudEventSchemaV1_0"}]})
    log = stack / TOPIC_LOG
    try:
        # start_emulator keeps its state in <tmp>/state; a stack's is <base>/eg (demo/stack.py).
        good, bad = _example("BackupTriggered"), _example("BackupFailed")
        bad["data"]["phase"] = "copy"
        topic = emulator.topic("downstream")
        client = EventGridPublisherClient(topic["endpoint"], AzureKeyCredential(topic["key"]))
        sent = [
            CloudEvent(
                source=e["source"],
                type=e["type"],
                subject=e["subject"],
                id=e["id"],
                time=isoparse(e["time"]),
                data=e["data"],
                datacontenttype=e["datacontenttype"],
                dataschema=e["dataschema"],
            )
            for e in (good, bad)
        ]
        client.send(sent, connection_verify=emulator.ca)
        accepted = stack / "state" / "events" / "downstream.jsonl"
        log.parent.mkdir(parents=True)
        os.replace(accepted, log)
        watch = TopicLogWatch(tmp_path)
        assert watch.new_violations() == [
            f"BackupChain.BackupFailed {bad['id']}: at $.data.phase: "
            "'copy' is not one of ['trigger', 'snapshot', 'transfer'] (stack stack)"
        ]
        assert watch.checked == 2  # both, as the topic kept them (dataschema included)
        assert watch.new_violations() == []  # each event is checked once
    finally:
        emulator.service.stop()
        log.unlink(missing_ok=True)  # the session's own watch must not report this test's bad event


def test_every_type_has_a_record_of_its_current_major() -> None:
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    missing = {t: data_fields(_schema(t)) for t in EVENT_TYPES if str(SCHEMA_MAJORS[t]) not in record.get(t, {})}
    assert missing == {}, (
        "record each new type's (or major's) fields in docs/events/schemas/majors.json: "
        + json.dumps({t: {str(SCHEMA_MAJORS[t]): fields} for t, fields in missing.items()})
    )


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_schema_keeps_what_its_major_promised(event_type: str) -> None:
    promised = json.loads(RECORD.read_text(encoding="utf-8")).get(event_type, {}).get(str(SCHEMA_MAJORS[event_type]))
    assert promised is not None
    assert breaking_changes(promised, _schema(event_type)) == []


def test_breaking_changes_are_named_and_compatible_ones_pass() -> None:
    schema = _schema("BackupFailed")
    promised = data_fields(schema)
    compatible = copy.deepcopy(schema)
    compatible["properties"]["data"]["properties"]["retryAfter"] = {"type": "integer"}  # a new optional field
    compatible["properties"]["data"]["properties"]["phase"]["enum"].append("restore")  # a new value
    assert breaking_changes(promised, compatible) == []
    broken = copy.deepcopy(schema)
    data = broken["properties"]["data"]
    data["properties"]["code"] = data["properties"].pop("errorCode")  # renamed
    data["required"] = [("code" if k == "errorCode" else k) for k in data["required"] if k != "message"]
    data["properties"]["azureErrorCode"] = {"type": "string"}
    data["properties"]["phase"]["enum"].remove("transfer")
    assert breaking_changes(promised, broken) == [
        "data.phase: values ['transfer'] dropped",
        "data.errorCode: removed or renamed",
        "data.azureErrorCode: JSON types ['integer', 'null'] became ['string']",
        "data.message: no longer required",
    ]


def test_the_watch_reads_whole_records_only_and_keeps_raw_line_separators_in_data(tmp_path: Path) -> None:
    """A record is one b"\\n"-ended line of the emulator's log (JSON with ensure_ascii=False): an
    upstream detail holding U+2028 stays one record, and a line still being written waits."""
    event = _example("UpstreamReceived")
    event["data"]["detail"] = {"note": "line\u2028separator\u0085next"}
    log = tmp_path / "stack" / TOPIC_LOG
    log.parent.mkdir(parents=True)
    line = json.dumps({"receivedAt": event["time"], "event": event}, ensure_ascii=False).encode()
    log.write_bytes(line + b"\n" + line[:40])
    watch = TopicLogWatch(tmp_path)
    try:
        assert (watch.new_violations(), watch.checked) == ([], 1)
        with open(log, "ab") as handle:
            handle.write(line[40:] + b"\n")
        assert (watch.new_violations(), watch.checked) == ([], 2)
    finally:
        log.unlink()
