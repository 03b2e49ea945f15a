"""The Durable HTTP API where Azure is stricter than a naive host: the instance and entity ids the
extension refuses, unknown entity names, paged instance queries and entity listings, and messages
that always fail (parked, not retried forever)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import requests

from devhost.store import Store
from tests.support.devhost_harness import DevHostProcess, wait_until

AT_RULE = "instanceId (Parameter 'Orchestration instance ids must not start with @.')"
CHAR_RULE = "instanceId (Parameter 'Orchestration instance ids must not contain /, \\, #, ?, or control characters.')"
LENGTH_RULE = "Instance ID lengths must not exceed 256 characters."


def _pages(host: DevHostProcess, path: str, params: dict[str, str]) -> list[requests.Response]:
    """Every page of a paged listing, following x-ms-continuation-token (bounded)."""
    pages: list[requests.Response] = []
    headers: dict[str, str] = {}
    for _ in range(50):
        response = host.mgmt("GET", path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response)
        token = response.headers["x-ms-continuation-token"]
        if token == "null":
            return pages
        headers = {"x-ms-continuation-token": token}
    raise AssertionError(f"{path} kept answering continuation tokens")


@pytest.mark.parametrize(
    ("instance_id", "message"),
    [
        ("@bad", AT_RULE),
        ("has#hash", CHAR_RULE),
        ("has?query", CHAR_RULE),
        ("back\\slash", CHAR_RULE),
        ("bell\x07", CHAR_RULE),
        ("x" * 257, LENGTH_RULE),
        ("\U0001f600" * 129, LENGTH_RULE),  # 258 UTF-16 code units, as .NET counts them
    ],
)
def test_start_with_an_id_the_extension_refuses_is_a_400_and_stores_nothing(
    host: DevHostProcess, instance_id: str, message: str
) -> None:
    path = quote(instance_id, safe="")
    response = host.mgmt("POST", f"orchestrators/chain/{path}", json={"steps": 1})
    assert response.status_code == 400, response.text
    assert response.json()["Message"] == message
    assert host.mgmt("GET", f"instances/{path}").status_code == 404
    assert host.mgmt("GET", "instances", params={"instanceIdPrefix": instance_id[:3]}).json() == []


def test_longest_accepted_id_runs_and_refused_ids_never_reach_the_dispatcher(host: DevHostProcess) -> None:
    longest = "y" * 256
    assert host.mgmt("POST", f"orchestrators/chain/{longest}", json={"steps": 1}).status_code == 202
    assert host.wait_status(longest)["output"] == [1]
    assert host.mgmt("POST", "orchestrators/chain/%40bad", json={"steps": 1}).status_code == 400
    # Raising an event looks the instance up first, as the extension does: none, so 404.
    assert host.mgmt("POST", "instances/%40bad/raiseEvent/go", json=1).status_code == 404
    assert "@bad" not in host.log()


def test_signal_to_an_unknown_entity_is_a_400_naming_the_known_ones(host: DevHostProcess) -> None:
    response = host.mgmt("POST", "entities/nope/k1", params={"op": "add"}, json=1)
    assert response.status_code == 400
    assert response.json()["Message"] == (
        "The function 'nope' doesn't exist, is disabled, or is not an entity function. Additional info: "
        "The following are the known entity functions: 'counter', 'journal'."
    )
    assert host.mgmt("GET", "entities/nope").json() == []
    assert host.mgmt("GET", "entities/nope/k1").status_code == 404


def test_signal_with_a_key_the_extension_refuses_is_a_400(host: DevHostProcess) -> None:
    response = host.mgmt("POST", "entities/counter/a%23b", params={"op": "add"}, json=1)
    assert response.status_code == 400
    assert response.json()["Message"] == (
        "entityKey (Parameter 'Entity keys must not contain /, \\, #, ?, or control characters.')"
    )
    assert host.mgmt("GET", "entities/counter/a%23b").status_code == 404


def test_entity_listing_pages_filters_by_last_operation_and_fetches_state(host: DevHostProcess) -> None:
    def exists(key: str) -> bool:
        return host.mgmt("GET", f"entities/counter/{key}").status_code == 200

    for i in range(3):  # through the real SDK client's signal_entity
        host.client("signal", f"list-{i}", {"op": "add", "input": i + 1})
    wait_until(lambda: all(exists(f"list-{i}") for i in range(3)), what="the first three counters")
    host.advance(60)
    for i in range(3, 5):
        host.client("signal", f"list-{i}", {"op": "add", "input": i + 1})
    wait_until(lambda: all(exists(f"list-{i}") for i in range(3, 5)), what="the last two counters")

    pages = _pages(host, "entities/counter", {"top": "2"})
    assert [len(p.json()) for p in pages] == [2, 2, 1]
    listed = [e for p in pages for e in p.json()]
    assert [e["entityId"] for e in listed] == [{"name": "counter", "key": f"list-{i}"} for i in range(5)]
    assert all("state" not in e for e in listed)
    first_time, last_time = listed[0]["lastOperationTime"], listed[4]["lastOperationTime"]
    assert first_time.startswith("2027-01-04T03:00:0") and last_time.startswith("2027-01-04T03:01:0")

    with_state = host.mgmt("GET", "entities/counter", params={"fetchState": "true"}).json()
    assert [e["state"] for e in with_state] == [1, 2, 3, 4, 5]
    recent = host.mgmt("GET", "entities/counter", params={"lastOperationTimeFrom": "2027-01-04T03:00:30Z"}).json()
    assert [e["entityId"]["key"] for e in recent] == ["list-3", "list-4"]
    older = host.mgmt("GET", "entities/counter", params={"lastOperationTimeTo": "2027-01-04T03:00:30Z"}).json()
    assert [e["entityId"]["key"] for e in older] == ["list-0", "list-1", "list-2"]


def test_instance_query_answers_pages_of_100_in_instance_id_order(host: DevHostProcess) -> None:
    # Created in reverse id order: the pages follow the ids (as the Azure Storage backend lists
    # its Instances table), not creation time.
    ids = [f"pg-{i:03d}" for i in range(105)]
    for instance_id in reversed(ids):
        assert host.mgmt("POST", f"orchestrators/wait_event/{instance_id}").status_code == 202
    wait_until(
        lambda: len(_listed(host, {"instanceIdPrefix": "pg-", "runtimeStatus": "Running", "top": "500"})) == 105,
        timeout=60,
        what="105 running instances",
    )
    pages = _pages(host, "instances", {"instanceIdPrefix": "pg-"})
    assert [len(p.json()) for p in pages] == [100, 5]
    assert [s["instanceId"] for p in pages for s in p.json()] == ids
    assert pages[0].headers["x-ms-continuation-token"] != "null"

    # The SDK's get_status_by sends one request and ignores the token: it sees the first page only.
    assert host.client("query", "x", {"prefix": "pg-"}) == ids[:100]

    assert len(host.mgmt("GET", "instances", params={"instanceIdPrefix": "pg-", "top": "abc"}).json()) == 100
    zero = host.mgmt("GET", "instances", params={"top": "0"})
    assert zero.status_code == 400 and "top" in zero.json()["Message"]
    forged = host.mgmt("GET", "instances", headers={"x-ms-continuation-token": "%%%"})
    assert forged.status_code == 400 and "x-ms-continuation-token" in forged.json()["Message"]


def _listed(host: DevHostProcess, params: dict[str, str]) -> list[dict[str, Any]]:
    return [s for p in _pages(host, "instances", params) for s in p.json()]


def test_a_message_that_always_fails_is_parked_after_five_attempts(host: DevHostProcess) -> None:
    # A message no entity can take (what an older devhost queued for an orchestration id "@bad").
    store = Store(host.state)
    try:
        with store.transaction() as db:
            store.enqueue(db, "@bad", "entity", {"id": "r1", "op": "add", "signal": True, "input": "1"}, visible_at=0)
    finally:
        store.close()

    def parked() -> list[dict[str, Any]]:
        body = host.call("GET", "/admin/host/status", key="master").json()
        return [m for m in body["parkedMessages"] if m["target"] == "@bad"]

    entry = wait_until(parked, timeout=30, what="the @bad message to be parked")[0]
    assert entry["failures"] == 5 and entry["kind"] == "entity"
    assert "'@bad' is not an entity id" in entry["error"]
    log = host.log()
    assert log.count("processing @bad failed (attempt") == 4
    assert log.count("parked 1 message(s) for instance @bad after 5 failed attempts") == 1
    assert "ERROR" in next(line for line in log.splitlines() if "parked 1 message(s) for instance @bad" in line)
    store = Store(host.state)
    try:
        with store.read() as db:
            assert store.messages_for(db, "@bad", float("inf")) == []
    finally:
        store.close()
