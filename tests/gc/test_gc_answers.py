"""On devhost + emulators (weekend-window): every Azure answer about protection is
checked. A window reports per VM whether protection really resumed (Azure's code and message when
it did not), the lease matches real protection, and a chain leaves alone a VM GC does not cover."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from backup_chain.gc import protection_on
from demo.stack import Stack, vm_id
from harness.chain_stack import chain, kinds, one, run_to_end, scenario, start_stack, vm

MONDAY = datetime(2027, 1, 4, 0, 0, tzinfo=timezone.utc)  # the scenario's weekly policy runs Wednesday 02:00
GC = {
    "mode": "weekend-window",
    "policy": "weekly",
    "day": "Saturday",
    "at": "00:00",
    "windowHours": 48,
    "vms": [vm_id("gc01"), vm_id("gc02")],
}
PUT_ITEM = "ProtectedItems_CreateOrUpdate"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [vm("gc01", protected=False), vm("gc02", protected=False), vm("out01", transfer=(20, 30))]
    running = start_stack(
        tmp_path_factory.mktemp("gc-answers"),
        scenario(vms),
        [chain("mixed", ["gc01", "gc02", "out01"])],
        start=MONDAY,
        gc=GC,
    )
    try:
        yield running
    finally:
        running.stop()


def protection(stack: Stack, name: str) -> str:
    items = stack.admin("recoveryservices", "GET", "/admin/items", params={"vm": name})
    return str(items[0]["protectionState"])


def lease(stack: Stack, name: str) -> dict[str, Any]:
    status = stack.api("GET", "gc").json()
    return dict(next(v["lease"] for v in status["vms"] if v["vmId"] == vm_id(name)))


def gc_events(stack: Stack, kind: str) -> list[dict[str, Any]]:
    return [e for e in stack.downstream() if str(e["type"]).endswith("." + kind)]


def permanent(stack: Stack, errors: dict[str, Any]) -> None:
    stack.admin("recoveryservices", "POST", "/admin/faults", json={"errors": errors})


def test_a_chain_leaves_protection_of_a_vm_gc_does_not_cover_alone(stack: Stack) -> None:
    assert protection_on(protection(stack, "out01"))
    started = stack.api("POST", "chains/mixed/runs", {"runId": "outside", "vms": [vm_id("out01")]})
    assert started.status_code == 202, started.text
    events = run_to_end(stack, "outside", step=60)
    assert kinds(events, "out01") == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    # it keeps its scheduled backups: protection was never stopped (nor resumed) by the chain
    assert protection(stack, "out01") == "Protected"
    run = stack.api("GET", "chains/mixed/runs/outside").json()
    assert run["vms"][0].get("protectionStopped") in (None, False)
    items = stack.admin("recoveryservices", "GET", "/admin/items", params={"vm": "out01"})
    assert items[0]["nextScheduledBackup"] is not None


def test_a_refused_resume_is_reported_per_vm_and_the_lease_stays_off(stack: Stack) -> None:
    permanent(stack, {PUT_ITEM: {"code": "AuthorizationFailed", "vms": ["gc02"]}})
    try:
        window = stack.api("POST", "gc/run", {"kind": "window"})
        assert window.status_code == 202, window.text
        stack.run_until(lambda: gc_events(stack, "GcWindowOpened"), step=5, limit=600, what="window to open")
    finally:
        permanent(stack, {PUT_ITEM: None})
    opened = one(gc_events(stack, "GcWindowOpened"), "GcWindowOpened")["data"]
    assert opened["vms"] == [vm_id("gc01")]  # only VMs whose protection is on
    assert [(f["vmId"], f["errorCode"]) for f in opened["failed"]] == [(vm_id("gc02"), "AuthorizationFailed")]
    assert "does not have authorization to perform action" in opened["failed"][0]["message"]
    alert = one(gc_events(stack, "GcResumeFailed"), "GcResumeFailed", "gc02")["data"]
    assert alert["errorCode"] == "AuthorizationFailed" and alert["window"] is True
    # the lease says what Azure says: gc01 on, gc02 off with no holder
    assert protection_on(protection(stack, "gc01")) and lease(stack, "gc01")["phase"] == "on"
    assert protection(stack, "gc02") == "ProtectionStopped"
    assert lease(stack, "gc02") == {"phase": "off", "holders": {}}

    # the item vanished before the window closes: the stop fails with ResourceNotFound, reported
    permanent(stack, {PUT_ITEM: {"code": "ResourceNotFound", "vms": ["gc01"]}})
    try:
        stack.run_until(lambda: gc_events(stack, "GcWindowClosed"), step=3600, limit=49 * 3600, what="window close")
    finally:
        permanent(stack, {PUT_ITEM: None})
    closed = one(gc_events(stack, "GcWindowClosed"), "GcWindowClosed")["data"]
    assert closed["stopped"] == []
    assert [(f["vmId"], f["errorCode"]) for f in closed["stopFailed"]] == [(vm_id("gc01"), "ResourceNotFound")]
    # protection is still on, and so is the lease (with no holder): the next holder is granted it
    assert protection_on(protection(stack, "gc01"))
    assert lease(stack, "gc01") == {"phase": "on", "holders": {}}
    output = stack.session.get(
        f"{stack.devhost.url}/runtime/webhooks/durabletask/instances/{window.json()['instanceId']}",
        headers={"x-functions-key": stack.keys["masterKey"]},
        timeout=60,
    ).json()["output"]
    assert {v["vmId"]: v["resumed"] for v in output["vms"]} == {vm_id("gc01"): True, vm_id("gc02"): False}
    # GET /api/gc says per VM what the window really did
    status = {v["vmId"]: v for v in stack.api("GET", "gc").json()["vms"]}
    assert status[vm_id("gc01")]["lastWindow"]["resumed"] is True
    assert status[vm_id("gc02")]["lastWindow"]["resumed"] is False
    assert status[vm_id("gc02")]["lastWindow"]["errorCode"] == "AuthorizationFailed"


def test_a_backup_whose_resume_is_refused_fails_with_azures_code(stack: Stack) -> None:
    stack.advance(6 * 3600)  # the window closed at Wednesday 00:00: step past the 02:00 scheduled backup
    permanent(stack, {PUT_ITEM: {"code": "AuthorizationFailed", "vms": ["gc02"]}})
    try:
        started = stack.api("POST", "chains/mixed/runs", {"runId": "refused", "vms": [vm_id("gc02")]})
        assert started.status_code == 202, started.text
        events = run_to_end(stack, "refused", step=30)
    finally:
        permanent(stack, {PUT_ITEM: None})
    failed = one(events, "BackupFailed", "gc02")["data"]
    assert (failed["phase"], failed["errorCode"]) == ("trigger", "AuthorizationFailed")
    assert lease(stack, "gc02") == {"phase": "off", "holders": {}}
    assert protection(stack, "gc02") == "ProtectionStopped"


@pytest.fixture(scope="module")
def checking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [vm("st01", protected=False), vm("st02", protected=False), vm("st03")]
    gc = {"mode": "weekly-policy", "remediate": True, "policy": "weekly"}
    running = start_stack(
        tmp_path_factory.mktemp("gc-answers-check"),
        scenario(vms),
        [chain("all", ["st01", "st02", "st03"])],
        start=MONDAY,
        gc=gc,
    )
    try:
        yield running
    finally:
        running.stop()


def test_a_check_reports_a_refused_remediation_per_vm(checking: Stack) -> None:
    stack = checking
    permanent(
        stack,
        {
            PUT_ITEM: {"code": "AuthorizationFailed", "vms": ["st02"]},
            "ProtectedItems_Get": {"code": "ResourceNotFound", "vms": ["st03"]},
        },
    )
    try:
        assert stack.api("POST", "gc/run", {"kind": "check"}).status_code == 202
        stack.run_until(lambda: stack.api("GET", "gc").json()["vms"][0]["lastCheck"], step=5, limit=600, what="check")
    finally:
        permanent(stack, {PUT_ITEM: None, "ProtectedItems_Get": None})
    overdue = {
        str(e["data"]["vmId"]): e["data"]
        for e in gc_events(stack, "GcOverdue")
        if "protection is" in str(e["data"]["reason"])
    }
    assert overdue[vm_id("st01")]["remediated"] is True
    assert overdue[vm_id("st02")]["remediated"] is False
    assert overdue[vm_id("st02")]["remediation"]["errorCode"] == "AuthorizationFailed"
    alert = one(gc_events(stack, "GcResumeFailed"), "GcResumeFailed", "st02")["data"]
    assert alert["errorCode"] == "AuthorizationFailed" and alert["window"] is False
    assert protection_on(protection(stack, "st01")) and protection(stack, "st02") == "ProtectionStopped"
    status = {v["vmId"]: v["lastCheck"] for v in stack.api("GET", "gc").json()["vms"]}
    assert status[vm_id("st02")]["remediation"]["resumed"] is False
    # a VM the check could not inspect is reported, with Azure's code, as an event too
    unread = one(gc_events(stack, "GcCheckFailed"), "GcCheckFailed", "st03")["data"]
    assert unread["errorCode"] == "ResourceNotFound" and "was not found" in unread["message"]
    assert status[vm_id("st03")]["error"]["code"] == "ResourceNotFound"
