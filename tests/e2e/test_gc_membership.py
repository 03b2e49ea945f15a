"""GC covers VMs a chain chooses at run time the way it covers listed ones: each GC check resolves
the selecting targets at its start (a VM tagged and protected after the first check is in the
second), ``GET /api/gc`` lists them, and a chain's backup of a chosen VM runs under GC's settings;
in weekend-window mode a chosen VM whose protection is stopped is backed up with protection resumed
and stopped around it, and the weekly window resumes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backup_chain.ids import vm_instance_id
from demo.stack import Stack, vault_id, vm_id
from harness.chain_stack import durable_status, run_to_end, running_stack, scenario, vm


def _checked(stack: Stack, names: set[str]) -> dict[str, Any]:
    """GET /api/gc once every VM in ``names`` shows a check newer than the last one asked for."""
    status = stack.api("GET", "gc").json()
    by_name = {v["vmId"].rsplit("/", 1)[-1]: v for v in status["vms"]}
    return by_name if names <= {n for n, v in by_name.items() if v["lastCheck"]} else {}


def _overdue(stack: Stack) -> list[str]:
    return sorted(
        str(e["data"]["vmId"]).rsplit("/", 1)[-1] for e in stack.downstream() if e["type"].endswith(".GcOverdue")
    )


def test_gc_checks_the_members_a_selection_has_at_each_check(tmp_path: Path) -> None:
    body = scenario([vm("e01"), vm("t01", tags={"env": "prod"}), vm("u01", tags={"env": "dev"})])
    chain = {
        "name": "mixed",
        "targets": [{"vaultId": vault_id("v1"), "vms": [vm_id("e01")], "select": {"tags": {"env": "prod"}}}],
        "snapshotMinutes": [6, 8],
    }
    with running_stack(tmp_path, body, [chain], gc={"mode": "weekly-policy"}) as stack:
        assert stack.api("POST", "gc/run", {"kind": "check"}).status_code == 202
        by_name = stack.run_until(lambda: _checked(stack, {"e01", "t01"}), step=5, limit=600, what="first check")
        assert set(by_name) == {"e01", "t01"}  # u01 is neither listed nor chosen
        assert _overdue(stack) == ["e01", "t01"]  # no scheduled backup yet: both were inspected

        admin = lambda method, path, payload: stack.admin("recoveryservices", method, path, json=payload)  # noqa: E731
        admin("PUT", "/admin/vms", {"id": vm_id("n01"), "tags": {"env": "prod"}})
        admin("POST", "/admin/vms/protect", {"id": vm_id("n01"), "vaultId": vault_id("v1"), "policy": "weekly"})
        assert stack.api("POST", "gc/run", {"kind": "check"}).status_code == 202
        by_name = stack.run_until(lambda: _checked(stack, {"n01"}), step=5, limit=600, what="second check")
        assert set(by_name) == {"e01", "t01", "n01"}
        assert _overdue(stack) == ["e01", "e01", "n01", "t01", "t01"]

        # A chain's backup of a chosen VM runs under GC's settings, as a listed VM's does.
        assert stack.api("POST", "chains/mixed/runs", {"runId": "r1"}).status_code == 202
        run_to_end(stack, "r1")
        for name in ("e01", "t01", "n01"):
            backup = durable_status(stack, vm_instance_id("r1", "mixed", vm_id(name)))["input"]
            backup = json.loads(backup) if isinstance(backup, str) else backup
            assert backup["gc"] == {"mode": "weekly-policy", "policy": None, "overlap": "refuse"}, name


def test_weekend_window_covers_a_chosen_vm_in_windows_and_around_its_backups(tmp_path: Path) -> None:
    gc = {"mode": "weekend-window", "policy": "weekly", "day": "Saturday", "at": "00:00", "windowHours": 48}
    body = scenario([vm("ww01", protected=False, tags={"env": "prod"}), vm("ww02", protected=False)])
    chain = {
        "name": "weekend",
        "targets": [{"vaultId": vault_id("v1"), "vms": [vm_id("ww02")], "select": {"tags": {"env": "prod"}}}],
        "snapshotMinutes": [6, 8],
    }

    def state(name: str) -> str:
        return str(stack.admin("recoveryservices", "GET", "/admin/items", params={"vm": name})[0]["protectionState"])

    with running_stack(tmp_path, body, [chain], gc=gc) as stack:
        # A chosen VM whose protection GC stopped is still the vault's: backed up, resumed and stopped around it.
        events = run_and_end(stack, "weekend", "r1")
        assert [e["type"].rsplit(".", 1)[-1] for e in events if e["subject"] == vm_id("ww01")][-1] == "BackupCompleted"
        assert state("ww01") == "ProtectionStopped" and state("ww02") == "ProtectionStopped"
        run = stack.api("GET", "chains/weekend/runs/r1").json()
        assert {v["vmId"]: v["protectionStopped"] for v in run["vms"]} == {vm_id("ww02"): True, vm_id("ww01"): True}
        # The weekly window resolves the selection at its start and resumes the chosen VM too.
        assert stack.api("POST", "gc/run", {"kind": "window"}).status_code == 202
        stack.run_until(lambda: _opened(stack), step=5, limit=600, what="window to open")
        assert sorted(_opened(stack)) == sorted([vm_id("ww02"), vm_id("ww01")])
        assert state("ww01") != "ProtectionStopped"


def run_and_end(stack: Stack, chain: str, run_id: str) -> list[dict[str, Any]]:
    assert stack.api("POST", f"chains/{chain}/runs", {"runId": run_id}).status_code == 202
    return run_to_end(stack, run_id, step=60)


def _opened(stack: Stack) -> list[str]:
    opened = [e for e in stack.downstream() if e["type"].endswith(".GcWindowOpened")]
    return list(opened[-1]["data"]["vms"]) if opened else []
