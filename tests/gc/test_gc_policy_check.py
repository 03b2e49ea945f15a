"""weekly-policy mode: the weekly check raises GcOverdue and RestorePointsNearLimit exactly when
the facts call for them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from demo.stack import Stack, vm_id
from harness.chain_stack import chain, running_stack, scenario, vm

SCHEDULED_OK = {"hoursAgo": 30, "userTriggered": False, "status": "Completed", "snapshotCollected": True}
SCHEDULED_FAILED = {"hoursAgo": 30, "userTriggered": False, "status": "Failed", "snapshotCollected": True}
SCHEDULED_OLD = {"hoursAgo": 24 * 7 + 5, "userTriggered": False, "status": "Completed", "snapshotCollected": True}
AD_HOC_KEPT = {"userTriggered": True, "status": "Completed", "snapshotCollected": False}
NAMES = ["ok01", "miss01", "fail01", "old01", "full01", "stopped01"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [
        vm("ok01", history=[SCHEDULED_OK]),
        vm("miss01"),
        vm("fail01", history=[SCHEDULED_FAILED]),
        vm("old01", history=[SCHEDULED_OLD]),
        vm("full01", history=[SCHEDULED_OK] + [{**AD_HOC_KEPT, "hoursAgo": 2 + i} for i in range(16)]),
        vm("stopped01", protected=False, history=[SCHEDULED_OK]),
    ]
    gc = {"mode": "weekly-policy", "nearLimitThreshold": 15}
    with running_stack(tmp_path_factory.mktemp("gccheck"), scenario(vms), [chain("all", NAMES)], gc=gc) as running:
        yield running


def findings(stack: Stack) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for event in stack.downstream():
        kind = str(event["type"]).split(".", 1)[1]
        if kind in ("GcOverdue", "RestorePointsNearLimit"):
            out.setdefault(str(event["data"]["vmId"]).rsplit("/", 1)[-1], []).append(kind)
    return out


def test_check_flags_missing_failed_old_and_stopped_but_not_healthy(stack: Stack) -> None:
    response = stack.api("POST", "gc/run", {"kind": "check"})
    assert response.status_code == 202, response.text
    stack.run_until(lambda: stack.api("GET", "gc").json()["vms"][0]["lastCheck"], step=5, limit=600, what="check")
    found = findings(stack)
    assert found.get("ok01") is None
    assert found["miss01"] == ["GcOverdue"]
    assert found["fail01"] == ["GcOverdue"]
    assert found["old01"] == ["GcOverdue"]
    assert found["stopped01"] == ["GcOverdue"]
    assert found["full01"] == ["RestorePointsNearLimit"]
    event = next(e for e in stack.downstream() if str(e["data"].get("vmId", "")).endswith("/fail01"))
    assert "Failed" in event["data"]["reason"] and event["data"]["advice"]
    assert event["source"] == event["data"]["vaultId"] and event["subject"] == vm_id("fail01")


def test_gc_status_shows_what_the_check_found(stack: Stack) -> None:
    status = stack.api("GET", "gc").json()
    assert status["mode"] == "weekly-policy" and status["next"]
    by_name: dict[str, Any] = {v["vmId"].rsplit("/", 1)[-1]: v for v in status["vms"]}
    assert by_name["full01"]["lastCheck"]["instantSnapshots"] >= 16
    assert by_name["stopped01"]["lastCheck"]["protectionState"] == "ProtectionStopped"
    assert by_name["ok01"]["lastCheck"]["lastScheduledJob"]["status"] == "Completed"
    assert by_name["ok01"]["lease"] == {"phase": "off", "holders": {}}


def gc_instances(stack: Stack) -> list[str]:
    rows = stack.session.get(
        f"{stack.devhost.url}/runtime/webhooks/durabletask/instances",
        params={"instanceIdPrefix": "gc:", "code": stack.keys["durabletask_extension"]},
        timeout=30,
    ).json()
    return sorted(r["instanceId"] for r in rows)


def test_gc_run_rejects_bad_input_and_starts_nothing(stack: Stack) -> None:
    before = gc_instances(stack)
    assert stack.api("POST", "gc/run", {"kind": "window"}).status_code == 400  # weekly-policy has no window
    assert stack.api("POST", "gc/run", {"kind": "purge"}).status_code == 400
    assert stack.api("POST", "gc/run", {"kind": "check", "extra": 1}).status_code == 400
    assert stack.api("POST", "gc/run", None, key=None).status_code == 401
    response = stack.session.post(
        f"{stack.devhost.url}/api/gc/run",
        data=b"{not json",
        headers={"x-functions-key": stack.keys["function"]},
        timeout=30,
    )
    assert response.status_code == 400
    assert stack.api("GET", "gc").json()["scheduler"] == "sleeping"
    assert gc_instances(stack) == before


def test_the_scheduler_is_a_singleton_across_timer_firings(stack: Stack) -> None:
    stack.advance(11 * 60)  # the gc_weekly timer fires twice more
    stack.settle()
    schedulers = [i for i in gc_instances(stack) if i.startswith("gc:scheduler")]
    assert schedulers == ["gc:scheduler"]
    assert stack.api("GET", "gc").json()["scheduler"] == "sleeping"
