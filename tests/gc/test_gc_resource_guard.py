"""Resource Guard (multi-user authorization) meets the weekend window, end to end on devhost and the
emulators: where the vault's guard protects stop protection, the window's close reports the stop
failed and why (GcWindowClosed.stopFailed and a GcStopFailed finding an operator can act on),
protection stays on and nothing claims it stopped; a guard that excludes the operation stops as
usual."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from backup_chain.gc import protection_on
from demo.stack import Stack, vault_id, vm_id
from emulators.recoveryservices.resource_guard import MODIFY_PROTECTION
from harness.chain_stack import WEEKLY, kinds, one, run_to_end, scenario, start_stack, terminate, vm

MONDAY = datetime(2027, 1, 4, 0, 0, tzinfo=timezone.utc)  # the weekly policy runs Wednesday 02:00
GUARDED, EXCLUDING = "v1", "v2"
GC = {
    "mode": "weekend-window",
    "policy": "weekly",
    "day": "Saturday",
    "at": "00:00",
    "windowHours": 24,
    "vms": [vm_id("mua01"), vm_id("free01")],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    body = scenario([vm("mua01", protected=False)], vault=GUARDED)
    body["vaults"][0]["resourceGuard"] = True
    body["vaults"].append(
        {
            "resourceGroup": "rg-backup",
            "name": EXCLUDING,
            "location": "japaneast",
            "policies": [WEEKLY],
            "vms": [vm("free01", protected=False)],
            "resourceGuard": {"name": "guard-sec", "excludedOperations": [MODIFY_PROTECTION]},
        }
    )
    chains = [
        {
            "name": "mua",
            "targets": [
                {"vaultId": vault_id(GUARDED), "vms": [vm_id("mua01")]},
                {"vaultId": vault_id(EXCLUDING), "vms": [vm_id("free01")]},
            ],
            "snapshotMinutes": [6, 8],
        }
    ]
    running = start_stack(tmp_path_factory.mktemp("gc-guard"), body, chains, start=MONDAY, gc=GC)
    try:
        yield running
    finally:
        running.stop()


def protection(stack: Stack, name: str) -> str:
    return str(stack.admin("recoveryservices", "GET", "/admin/items", params={"vm": name})[0]["protectionState"])


def gc_events(stack: Stack, kind: str) -> list[dict[str, Any]]:
    return [e for e in stack.downstream() if str(e["type"]).endswith("." + kind)]


def test_a_guarded_stop_is_reported_as_a_finding_and_protection_stays_on(stack: Stack) -> None:
    window = stack.api("POST", "gc/run", {"kind": "window"})
    assert window.status_code == 202, window.text
    stack.run_until(lambda: gc_events(stack, "GcWindowOpened"), step=5, limit=600, what="window to open")
    opened = one(gc_events(stack, "GcWindowOpened"), "GcWindowOpened")["data"]
    assert sorted(opened["vms"]) == sorted([vm_id("mua01"), vm_id("free01")])  # resuming is not guarded
    assert opened["failed"] == []

    stack.run_until(lambda: gc_events(stack, "GcWindowClosed"), step=3600, limit=25 * 3600, what="window close")
    closed = one(gc_events(stack, "GcWindowClosed"), "GcWindowClosed")["data"]
    assert closed["stopped"] == [vm_id("free01")]  # the guard there excludes modify protection
    [failed] = closed["stopFailed"]
    assert (failed["vmId"], failed["finding"]) == (vm_id("mua01"), "resourceGuardBlocksStop")
    assert failed["errorCode"] == "UserErrorResourceGuardOperationNotAuthorized"
    assert "Resource Guard 'resource-guard'" in failed["message"]

    alert = one(gc_events(stack, "GcStopFailed"), "GcStopFailed", "mua01")
    data = alert["data"]
    assert (data["finding"], data["errorCode"], data["protectionState"]) == (
        "resourceGuardBlocksStop",
        "UserErrorResourceGuardOperationNotAuthorized",
        "on",
    )
    assert data["vaultId"] == vault_id(GUARDED) and alert["source"] == vault_id(GUARDED)
    assert any(MODIFY_PROTECTION in r for r in data["recommendations"])
    assert gc_events(stack, "GcStopFailed") == [alert]  # free01 stopped: no finding for it

    # Azure's truth: protection is still on where the guard refused, off where it did not
    assert protection_on(protection(stack, "mua01"))
    assert protection(stack, "free01") == "ProtectionStopped"
    status = {v["vmId"]: v for v in stack.api("GET", "gc").json()["vms"]}
    assert status[vm_id("mua01")]["lease"] == {"phase": "on", "holders": {}}
    assert status[vm_id("mua01")]["lastWindow"]["stopped"] is False
    assert status[vm_id("mua01")]["lastWindow"]["stopFailed"]["finding"] == "resourceGuardBlocksStop"
    assert status[vm_id("free01")]["lastWindow"]["stopped"] is True
    assert status[vm_id("free01")]["lastWindow"]["stopFailed"] is None


def test_a_chain_backup_reports_the_guarded_stop_it_could_not_make(stack: Stack) -> None:
    started = stack.api("POST", "chains/mua/runs", {"runId": "guarded", "vms": [vm_id("mua01")]})
    assert started.status_code == 202, started.text
    events = run_to_end(stack, "guarded", step=60)
    assert kinds(events, "mua01") == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    [vm_status] = stack.api("GET", "chains/mua/runs/guarded").json()["vms"]
    assert vm_status["protectionStopped"] is False
    assert vm_status["protectionStopError"]["code"] == "UserErrorResourceGuardOperationNotAuthorized"
    assert vm_status["protectionStopError"]["finding"] == "resourceGuardBlocksStop"
    assert protection_on(protection(stack, "mua01"))


def lease(stack: Stack, name: str) -> dict[str, Any]:
    status = stack.api("GET", "gc").json()
    return dict(next(v["lease"] for v in status["vms"] if v["vmId"] == vm_id(name)))


def test_a_reclaimed_lease_whose_stop_the_guard_refuses_is_reported(stack: Stack) -> None:
    """The holder that should have stopped protection crashed; the sweeper's reclaim is then the
    only one to meet the guard's refusal, so it publishes the finding (before: only in its output)."""
    before = gc_events(stack, "GcStopFailed")
    started = stack.api("POST", "chains/mua/runs", {"runId": "crashed", "vms": [vm_id("mua01")]})
    assert started.status_code == 202, started.text
    stack.run_until(lambda: lease(stack, "mua01")["holders"], step=5, limit=600, what="backup to hold the lease")
    holder = next(iter(lease(stack, "mua01")["holders"]))
    terminate(stack, holder, "simulated crash")
    stack.run_until(
        lambda: len(gc_events(stack, "GcStopFailed")) > len(before), step=60, limit=1800, what="reclaim's finding"
    )
    [alert] = [e for e in gc_events(stack, "GcStopFailed") if e not in before]
    data = alert["data"]
    assert data["runId"].startswith("reclaim:")
    assert (data["vmId"], data["finding"], data["protectionState"]) == (vm_id("mua01"), "resourceGuardBlocksStop", "on")
    assert lease(stack, "mua01")["holders"] == {}
    assert protection_on(protection(stack, "mua01"))
