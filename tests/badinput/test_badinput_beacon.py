"""Bad beacons posted to devhost's Event Grid webhook for ``beacon_event`` as Event Grid delivers
them: each malformed one is acknowledged (2xx: redelivering could never help), logged at ERROR
naming its field, and changes nothing (no job read, nothing published); a good one for a VM in no
run is acknowledged too and changes nothing either."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from demo.stack import Stack, vault_id, vm_id
from harness.chain_stack import chain, next_weekday_at, scenario, start_stack, vm

TYPE = "BackupChain.Beacon.SnapshotTaken"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("beacon-badinput")
    running = start_stack(
        base, scenario([vm("app01")]), [chain("nightly", ["app01"], beacons=True)], start=next_weekday_at(3, 10)
    )
    try:
        yield running
    finally:
        running.stop()


def _event(**over: Any) -> dict[str, Any]:
    event = {"specversion": "1.0", "id": secrets.token_hex(8), "type": TYPE, "source": vm_id("app01")}
    event["time"] = "2027-01-07T10:00:00Z"
    return {**event, **over}


def _deliver(stack: Stack, event: dict[str, Any]) -> requests.Response:
    return stack.session.post(
        f"{stack.devhost.url}/runtime/webhooks/eventgrid",
        params={"functionName": "beacon_event", "code": stack.keys["eventgrid_extension"]},
        data=json.dumps([event]),
        headers={"Content-Type": "application/cloudevents-batch+json; charset=utf-8", "aeg-event-type": "Notification"},
        timeout=60,
    )


def _log(stack: Stack) -> str:
    return Path(stack.base / "devhost.log").read_text(errors="replace")


def _job_reads(stack: Stack) -> int:
    return int(stack.admin("recoveryservices", "GET", "/admin/requests")["byOperation"].get("JobDetails_Get", 0))


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"type": "BackupChain.SnapshotCompleted"}, "type"),
        ({"source": vault_id("v1")}, "source"),
        ({"source": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a;b"}, "source"),
        ({"time": "1999-12-31T23:59:59Z"}, "time"),
        ({"data": {"pad": "x" * 5000}}, "data"),
        ({"id": "i" * 200}, "id"),
    ],
)
def test_a_malformed_beacon_is_acknowledged_logged_by_field_and_changes_nothing(
    stack: Stack, over: dict[str, Any], field: str
) -> None:
    reads, published = _job_reads(stack), len(stack.downstream())
    event = _event(**over)
    response = _deliver(stack, event)
    assert 200 <= response.status_code < 300, response.text
    stack.settle()
    shown = str(event["id"])[:128]
    lines = [line for line in _log(stack).splitlines() if "ERROR" in line and f"beacon {shown!a}" in line]
    assert len(lines) == 1 and f"beacon {field}:" in lines[0], lines
    assert _job_reads(stack) == reads and len(stack.downstream()) == published


def test_a_good_beacon_for_a_vm_in_no_run_changes_nothing(stack: Stack) -> None:
    reads, published = _job_reads(stack), len(stack.downstream())
    event = _event()
    assert 200 <= _deliver(stack, event).status_code < 300
    stack.settle()
    log = _log(stack)
    assert f"beacon {event['id']} for {vm_id('app01')} changed nothing: unwatched" in log
    assert _job_reads(stack) == reads and len(stack.downstream()) == published
