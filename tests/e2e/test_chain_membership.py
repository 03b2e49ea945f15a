"""Dynamic membership on devhost + emulators (docs/design.md, "Membership"): a target that selects
VMs by tag or by vault resolves them at each run's start through the real Resource Graph and
Recovery Services SDK clients, so VMs added, retagged, protected or unprotected between two runs
are seen by the second; a chosen VM not protected in the vault is reported, never triggered;
exclusions hold; Resource Graph's answer is read across pages; a run given its members (``vms``,
``retryOf``: how a retry starts) backs up exactly those without resolving anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backup_chain.ids import chain_instance_id
from demo.stack import Stack, vault_id, vm_id
from harness.chain_stack import WEEKLY, durable_status, jobs, kinds, one, run_to_end, running_stack, scenario, vm

DAILY = {"name": "daily", "frequency": "Daily", "time": "20:00", "timeZone": "UTC", "retentionDays": 7}


def _chain(name: str, target: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "targets": [{"vaultId": vault_id("v1"), **target}], "snapshotMinutes": [6, 8]}


def _triggered(events: list[dict[str, Any]]) -> list[str]:
    return sorted(str(e["subject"]).rsplit("/", 1)[-1] for e in events if e["type"].endswith(".BackupTriggered"))


def _all_jobs_done(stack: Stack, names: list[str]) -> bool:
    return all(j["status"] != "InProgress" for name in names for j in jobs(stack, name))


def _start(stack: Stack, chain: str, run_id: str) -> list[dict[str, Any]]:
    assert stack.api("POST", f"chains/{chain}/runs", {"runId": run_id}).status_code == 202
    return run_to_end(stack, run_id)


def test_tag_selection_sees_vms_added_and_removed_between_runs(tmp_path: Path) -> None:
    vms = [vm(name, tags={"env": "prod"}) for name in ("app01", "app02", "app03")] + [vm("db01", tags={"env": "test"})]
    body = scenario(
        vms,
        unprotectedVms=[{"name": "loose01", "resourceGroup": "rg-app", "tags": {"env": "prod"}}],
        resourceGraph={"maxPageSize": 2},  # four tagged VMs: two pages
    )
    chain = _chain("tagged", {"select": {"tags": {"env": "prod"}}, "exclude": [vm_id("app03")]})
    with running_stack(tmp_path, body, [chain]) as stack:
        first = _start(stack, "tagged", "r1")
        assert _triggered(first) == ["app01", "app02"]
        membership = one(first, "ChainStarted")["data"]["membership"]
        assert membership["targets"] == [
            {
                "vaultId": vault_id("v1"),
                "selector": {"tags": {"env": "prod"}},
                "explicit": 0,
                "selected": 4,
                "excluded": 1,
                "notProtected": 1,
                "members": 2,
            }
        ]
        assert one(first, "ChainStarted")["data"]["vmCount"] == 2
        completed = one(first, "ChainCompleted")["data"]
        assert completed["outcome"] == "completedWithFailures"
        loose = next(v for v in completed["vms"] if v["vmId"].endswith("/loose01"))
        assert (loose["outcome"], loose["errorCode"]) == ("notProtected", "VmNotProtectedInVault")
        assert jobs(stack, "loose01") == [] and jobs(stack, "app03") == []  # never triggered: Azure's record
        assert [q["offset"] for q in stack.admin("recoveryservices", "GET", "/admin/resource-graph")["queries"]] == [
            0,
            2,
        ]
        run = stack.api("GET", "chains/tagged/runs/r1").json()
        assert sorted((v["vmId"], v["chosen"]) for v in run["vms"]) == [
            (vm_id("app01"), "selected"),
            (vm_id("app02"), "selected"),
        ]

        # Between the runs: a new prod VM is protected, app02 is retagged, app01 leaves the vault.
        stack.run_until(lambda: _all_jobs_done(stack, ["app01", "app02"]), step=300, what="first run's jobs")
        admin = lambda method, path, payload: stack.admin("recoveryservices", method, path, json=payload)  # noqa: E731
        admin("PUT", "/admin/vms", {"id": vm_id("new01"), "tags": {"env": "prod"}})
        admin("POST", "/admin/vms/protect", {"id": vm_id("new01"), "vaultId": vault_id("v1"), "policy": "weekly"})
        admin("PUT", "/admin/vms", {"id": vm_id("app02"), "tags": {"env": "retired"}})
        admin("POST", "/admin/vms/unprotect", {"id": vm_id("app01"), "vaultId": vault_id("v1")})
        second = _start(stack, "tagged", "r2")
        assert _triggered(second) == ["new01"]
        completed = one(second, "ChainCompleted")["data"]
        assert sorted((v["vmId"].rsplit("/", 1)[-1], v["outcome"]) for v in completed["vms"]) == [
            ("app01", "notProtected"),
            ("loose01", "notProtected"),
            ("new01", "completed"),
        ]
        assert [j["userTriggered"] for j in jobs(stack, "new01")] == [True]
        assert len(jobs(stack, "app02")) == 1  # the first run's job only


def test_vault_selection_by_policy_with_an_explicit_vm_then_a_run_given_its_vms(tmp_path: Path) -> None:
    vms = [vm("w01"), vm("w02"), {**vm("d01"), "policy": "daily"}, {**vm("x01"), "policy": "daily"}]
    body = scenario(vms)
    body["vaults"][0]["policies"] = [WEEKLY, DAILY]
    chain = _chain("vaulted", {"vms": [vm_id("x01")], "select": {"protectedInVault": True, "policies": ["weekly"]}})
    with running_stack(tmp_path, body, [chain]) as stack:
        events = _start(stack, "vaulted", "r1")
        assert _triggered(events) == ["w01", "w02", "x01"]
        assert "BackupTriggered" not in kinds(events, "d01")
        (target,) = one(events, "ChainStarted")["data"]["membership"]["targets"]
        assert (target["explicit"], target["selected"], target["members"], target["notProtected"]) == (1, 2, 3, 0)
        assert one(events, "ChainCompleted")["data"]["outcome"] == "completed"
        assert stack.admin("recoveryservices", "GET", "/admin/resource-graph")["queries"] == []  # vault only

        # A run given its members (as a retry starts one): exactly those, nothing resolved.
        stack.run_until(lambda: _all_jobs_done(stack, ["w01", "w02", "x01"]), step=300, what="first run's jobs")
        reads = stack.admin("recoveryservices", "GET", "/admin/requests")["byOperation"]["BackupProtectedItems_List"]
        spec = durable_status(stack, chain_instance_id("vaulted", "r1"))["input"]
        spec = json.loads(spec) if isinstance(spec, str) else spec
        retry = {**spec, "runId": "r2", "vms": [[vault_id("v1"), vm_id("w02")]], "retryOf": "r1"}
        started = stack.session.post(
            f"{stack.devhost.url}/runtime/webhooks/durabletask/orchestrators/chain_run/"
            + chain_instance_id("vaulted", "r2"),
            json=retry,
            params={"code": stack.keys["durabletask_extension"]},
            timeout=30,
        )
        assert started.status_code == 202, started.text
        second = run_to_end(stack, "r2")
        assert _triggered(second) == ["w02"]
        data = one(second, "ChainStarted")["data"]
        assert data["retryOf"] == "r1" and data["membership"] == {"how": "retry", "retryOf": "r1", "members": 1}
        after = stack.admin("recoveryservices", "GET", "/admin/requests")["byOperation"]["BackupProtectedItems_List"]
        assert after == reads  # the vault was not read again
        assert [m["chosen"] for m in stack.api("GET", "chains/vaulted/runs/r2").json()["vms"]] == ["retry"]


def test_a_retry_of_a_selecting_run_backs_up_its_failed_chosen_vms(tmp_path: Path) -> None:
    # The retry reads the old run's members (its output): the chosen VMs are in no configured list.
    fails = {"snapshotFailureRate": 1.0, "snapshotErrorCode": "ExtensionFailedVssWriterInBadState"}
    vms = [vm("good01", tags={"env": "prod"}), vm("bad01", tags={"env": "prod"}, faults=fails)]
    chain = _chain("picked", {"select": {"tags": {"env": "prod"}}})
    with running_stack(tmp_path, scenario(vms), [chain]) as stack:
        first = _start(stack, "picked", "r1")
        assert one(first, "ChainCompleted")["data"]["outcome"] == "completedWithFailures"
        retry = stack.api("POST", "chains/picked/runs/r1/retry")
        assert retry.status_code == 202, retry.text
        assert retry.json()["vms"] == [vm_id("bad01")]
        again = run_to_end(stack, "r1-r1")
        assert _triggered(again) == ["bad01"]
        assert (len(jobs(stack, "good01")), len(jobs(stack, "bad01"))) == (1, 2)  # Azure's record
