"""Every published event names its schema (CloudEvents ``dataschema``), and that URL resolves on
the app itself without a key to the very schema the event follows (docs/events.md, "Contract")."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from backup_chain.events import SCHEMA_MAJORS, schema_type
from harness.chain_stack import chain, running_stack, scenario, types_for, vm
from harness.event_contract import TopicLogWatch, assert_contract, schema_path


def test_each_events_dataschema_is_served_anonymously_and_is_its_schema(
    tmp_path: Path, published_event_watch: TopicLogWatch
) -> None:
    checked = published_event_watch.checked
    with running_stack(tmp_path, scenario([vm("ds01")]), [chain("schemas", ["ds01"])]) as stack:
        assert stack.api("POST", "chains/schemas/runs", {"runId": "s1"}).status_code == 202
        stack.run_until(lambda: "ChainCompleted" in types_for(stack.downstream()), step=30, what="the run to end")
        events = stack.downstream()
        assert assert_contract(events) == 6
        # The session's check (tests/conftest.py) sees this stack's topic log: the same six events.
        assert published_event_watch.new_violations() == []
        assert published_event_watch.checked - checked == 6
        base = f"{stack.devhost.url}/api/schemas/events"
        for event in events:
            name = schema_type(event["type"])
            assert event["dataschema"] == f"{base}/{name}/v{SCHEMA_MAJORS[name]}"
            served = requests.get(event["dataschema"], timeout=30)  # no function key
            assert served.status_code == 200, served.text
            assert served.headers["Content-Type"].startswith("application/schema+json")
            assert served.json() == json.loads(schema_path(name).read_text(encoding="utf-8"))

        # A type the app does not publish, or a major it does not serve: 404 naming the field.
        unknown = requests.get(f"{base}/ChainExploded/v1", timeout=30)
        assert (unknown.status_code, unknown.json()["field"]) == (404, "type")
        old = requests.get(f"{base}/ChainStarted/v2", timeout=30)
        assert (old.status_code, old.json()["field"]) == (404, "version")
        assert "it is at v1" in old.json()["detail"]
