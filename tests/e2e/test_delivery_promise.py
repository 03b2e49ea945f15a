"""Downstream delivery is a promise (docs/events.md), on the real stack: the downstream topic
refuses the app (403, 401), is unreachable for hours (across the upstream event and the run's
first publish), or its emulator is SIGKILLed and restarted. Backups happen regardless, nothing is
dropped, refusals are loud and visible on the run, and every event arrives later, once, in order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from demo.stack import Stack
from harness.chain_stack import (
    PREFIX,
    chain,
    deliver_upstream,
    jobs,
    kinds,
    one,
    parse_time,
    records,
    run_events,
    scenario,
    start_stack,
    vm,
)

MONDAY = datetime(2027, 1, 4, 0, 0, tzinfo=timezone.utc)
PER_VM = ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
CHAIN_KINDS = ["ChainStarted", "UpstreamReceived", "ChainCompleted"]
FAST: dict[str, Any] = {"snapshot": (5.0, 6.0), "transfer": (8.0, 10.0)}
GROUPS = {
    "refused": ["ref1", "ref2"],
    "swept": ["swp1"],
    "dark": ["dark1", "dark2"],
    "killed": ["kil1", "kil2"],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [vm(name, **FAST) for names in GROUPS.values() for name in names]
    upstream = {"eventType": "Contoso.Dark.Done", "subject": "/jobs/dark", "timeout": "PT6H"}
    chains = [chain(name, names) for name, names in GROUPS.items() if name != "dark"]
    chains.append(chain("dark", GROUPS["dark"], upstream=upstream))
    base: Path = tmp_path_factory.mktemp("delivery-promise")
    # Transient failures are retried for 2 h here (24 h by default), so one test sees the horizon.
    running = start_stack(base, scenario(vms), chains, start=MONDAY, delivery={"retryFor": "PT2H"})
    try:
        yield running
    finally:
        running.stop()


def _fault(stack: Stack, **body: Any) -> None:
    stack.admin("eventgrid", "POST", "/admin/faults", json={"topic": "downstream", **body})


def _run(stack: Stack, chain_name: str, run_id: str) -> dict[str, Any]:
    response = stack.api("GET", f"chains/{chain_name}/runs/{run_id}")
    response.raise_for_status()
    return dict(response.json())


def _finished(stack: Stack, chain_name: str, run_id: str) -> dict[str, Any]:
    """Advance until the run's orchestration completed (downstream may have heard nothing)."""
    return dict(
        stack.run_until(
            lambda: (r := _run(stack, chain_name, run_id))["runtimeStatus"] == "Completed" and r,
            step=60,
            limit=3 * 3600,
            what=f"run {run_id} to finish",
        )
    )


def _backed_up(stack: Stack, names: list[str]) -> None:
    for name in names:
        found = jobs(stack, name)
        assert len(found) == 1 and found[0]["status"] == "Completed", (name, found)


def _received(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """The run's downstream events in the order the topic received them (``receivedAt``)."""
    kept = [r for r in records(stack) if (r["event"].get("data") or {}).get("runId") == run_id]
    return [r["event"] for r in sorted(kept, key=lambda r: parse_time(r["receivedAt"]))]


def _assert_delivered_in_order(stack: Stack, run_id: str, events: list[dict[str, Any]], names: list[str]) -> None:
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "an event reached downstream twice"
    assert kinds(events) == CHAIN_KINDS
    for name in names:
        assert kinds(events, name) == PER_VM, name
    assert one(events, "ChainCompleted")["data"]["outcome"] == "completed"
    # As the topic received them: the run's kept chain events first (no VM event overtakes them),
    # each VM's lifecycle in order, ChainCompleted after every VM's events.
    received = _received(stack, run_id)
    assert sorted(e["id"] for e in received) == sorted(ids)
    types = [str(e["type"]).removeprefix(PREFIX) for e in received]
    assert types[:2] == CHAIN_KINDS[:2], types
    assert types[-1] == "ChainCompleted", types
    for name in names:
        assert kinds(received, name) == PER_VM, (name, types)


def _log(stack: Stack) -> str:
    return (stack.base / "devhost.log").read_text(errors="replace")


@pytest.mark.slow
def test_refused_topic_keeps_every_event_loudly_and_the_operator_route_delivers_them_in_order(stack: Stack) -> None:
    names = GROUPS["refused"]
    _fault(stack, status=403)
    try:
        assert stack.api("POST", "chains/refused/runs", {"runId": "r-403"}).status_code == 202
        run = _finished(stack, "refused", "r-403")
    finally:
        _fault(stack)
    _backed_up(stack, names)
    assert run_events(stack, "r-403") == []
    # Backups all completed, yet the run does not report plain success: 9 events were refused.
    assert run["outcome"] == "completedWithUndeliveredEvents" and run["delivery"] == "undelivered"
    assert run["output"]["outcome"] == "completedWithUndeliveredEvents"
    assert len(run["undelivered"]) == len(CHAIN_KINDS) + len(PER_VM) * len(names)
    assert all("HTTP 403" in u["reason"] for u in run["undelivered"])
    log = _log(stack)
    for item in run["undelivered"]:  # loud, once per event (not once per retry)
        lines = [line for line in log.splitlines() if f"ERROR backup_chain: downstream event {item['id']} " in line]
        assert len(lines) == 1 and "undelivered: HTTP 403 Forbidden" in lines[0], lines
    assert [r["outcome"] for r in stack.api("GET", "chains/refused/runs").json()["runs"]] == [
        "completedWithUndeliveredEvents"
    ]
    listed = stack.api("GET", "deliveries").json()["runs"]
    assert any(r["key"] == "refused:r-403" and len(r["undelivered"]) == 9 for r in listed)

    # The role is granted again: the operator's route sends them, oldest first, once each.
    retried = stack.api("POST", "chains/refused/runs/r-403/deliveries/retry")
    assert retried.status_code == 202 and retried.json()["retried"] == 9
    stack.settle()
    events = run_events(stack, "r-403")
    _assert_delivered_in_order(stack, "r-403", events, names)
    run = _run(stack, "refused", "r-403")
    assert run["outcome"] == "completed" and run["delivery"] == "delivered" and run["undelivered"] == []
    assert [r["outcome"] for r in stack.api("GET", "chains/refused/runs").json()["runs"]] == ["completed"]
    # Asking again sends nothing twice.
    assert stack.api("POST", "deliveries/retry").json()["events"] == 0
    stack.settle()
    assert run_events(stack, "r-403") == events


@pytest.mark.slow
def test_the_sweep_delivers_refused_events_by_itself_once_the_topic_accepts(stack: Stack) -> None:
    _fault(stack, status=401)
    try:
        assert stack.api("POST", "chains/swept/runs", {"runId": "r-401"}).status_code == 202
        run = _finished(stack, "swept", "r-401")
        assert run["delivery"] == "undelivered" and all("HTTP 401" in u["reason"] for u in run["undelivered"])
    finally:
        _fault(stack)
    events = stack.run_until(
        lambda: (found := run_events(stack, "r-401")) and len(found) == 6 and found,
        step=120,
        limit=1800,
        what="the delivery sweep to deliver r-401",
    )
    _assert_delivered_in_order(stack, "r-401", events, GROUPS["swept"])
    assert _run(stack, "swept", "r-401")["outcome"] == "completed"


@pytest.mark.slow
def test_topic_unreachable_for_hours_across_the_run_start_and_upstream_costs_nothing(stack: Stack) -> None:
    names = GROUPS["dark"]
    _fault(stack, mode="unreachable")
    try:
        # The first publish (ChainStarted) fails: the run still waits for upstream and backs up.
        assert stack.api("POST", "chains/dark/runs", {"runId": "r-dark", "waitForUpstream": True}).status_code == 202
        stack.run_until(
            lambda: _run(stack, "dark", "r-dark")["phase"] == "waitingForUpstream", step=30, what="the run to wait"
        )
        stack.advance(3600)
        deliver_upstream(stack, "Contoso.Dark.Done", "/jobs/dark", {"status": "Succeeded"})
        _finished(stack, "dark", "r-dark")
        _backed_up(stack, names)
        # Over an hour down (far beyond the old 8 x 10 s): still retried, nothing lost or refused.
        run = _run(stack, "dark", "r-dark")
        assert run_events(stack, "r-dark") == []
        assert run["delivery"] == "pending" and run["outcome"] == "completedWithUndeliveredEvents"
        assert len(run["pendingDelivery"]) == len(CHAIN_KINDS) + len(PER_VM) * len(names)
        assert all("NetworkError" in p["reason"] for p in run["pendingDelivery"])
        for _ in range(4):  # two more hours down: past delivery.retryFor (2 h here)
            stack.advance(1800)
            stack.settle()
        run = _run(stack, "dark", "r-dark")
        assert run["delivery"] == "undelivered" and len(run["undelivered"]) == 9
        assert all(u["reason"].startswith("not accepted within 7200 s") for u in run["undelivered"])
        assert f"downstream event {run['undelivered'][0]['id']} " in _log(stack)
    finally:
        _fault(stack)
    # The topic is back: the sweep sends them, oldest first, once each.
    events = stack.run_until(
        lambda: (found := run_events(stack, "r-dark")) and len(found) == 9 and found,
        step=60,
        limit=1800,
        what="r-dark's events after the outage",
    )
    _assert_delivered_in_order(stack, "r-dark", events, names)
    assert _run(stack, "dark", "r-dark")["outcome"] == "completed"


@pytest.mark.slow
def test_event_grid_killed_mid_run_and_restarted_loses_nothing(stack: Stack) -> None:
    names = GROUPS["killed"]
    assert stack.api("POST", "chains/killed/runs", {"runId": "r-kill"}).status_code == 202
    stack.run_until(
        lambda: len(kinds(run_events(stack, "r-kill"), names[0])) >= 1, step=15, what="the first BackupTriggered"
    )
    before = run_events(stack, "r-kill")
    stack.kill_eventgrid()
    try:
        _finished(stack, "killed", "r-kill")
        _backed_up(stack, names)
        for _ in range(2):  # an hour down
            stack.advance(1800)
            stack.settle()
        assert _run(stack, "killed", "r-kill")["delivery"] == "pending"
    finally:
        stack.start_eventgrid()
    # The restarted emulator still lists what it accepted before the kill.
    assert run_events(stack, "r-kill")[: len(before)] == before
    events = stack.run_until(
        lambda: (found := run_events(stack, "r-kill")) and len(found) == 9 and found,
        step=60,
        limit=1800,
        what="r-kill's events after the restart",
    )
    _assert_delivered_in_order(stack, "r-kill", events, names)
    run = _run(stack, "killed", "r-kill")
    assert run["outcome"] == "completed" and run["delivery"] == "delivered"
