"""GC covers VMs a chain chooses at run time the way it covers listed ones: each GC check resolves
the selecting targets at its start (a VM tagged and protected after the first check is in the
second), ``GET /api/gc`` lists them, and a chain's backup of a chosen VM runs under GC's settings."""

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
