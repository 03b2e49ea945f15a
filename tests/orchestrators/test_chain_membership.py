"""``chain_run``'s membership step (orchestrators/membership.py): a target with ``select`` is
resolved by ``resolve_members`` at the run's start and only its members are backed up, a chosen VM
not protected in the vault is reported ``notProtected`` and never triggered, a target whose
membership cannot be read leaves the run short of "completed", and a run given ``vms`` (a retry)
backs up exactly those without resolving anything."""

from __future__ import annotations

from typing import Any

from tests.orchestrators.builders import accepted, job, no_job, operation_succeeded, read
from tests.orchestrators.test_chain_run import _chain, _instance, _run_input
from tests.orchestrators.test_gc import _inspection, _spec
from tests.support.activity_script import fails, ok
from tests.support.orchestrator_tier import OrchestratorTier, vault_id, vm_id


def _backs_up(tier: OrchestratorTier, vm: str) -> None:
    tier.script.on("find_active_job", vm, no_job())
    tier.script.on("trigger_backup", vm, accepted(f"op-{vm}", retry_after=5))
    tier.script.on("backup_operation", f"op-{vm}", operation_succeeded(job(f"job-{vm}", start=tier.at(0))))
    snap = job(f"job-{vm}", start=tier.at(0), snapshot="Completed", snapshot_end=tier.at(300))
    tier.script.on("get_job", f"job-{vm}", read(snap))


def _selecting(name: str, vault: str, **select: Any) -> dict[str, Any]:
    return _chain(name, [], targets=[{"vaultId": vault_id(vault), "vms": None, "select": select, "exclude": None}])


def test_only_members_protected_in_the_vault_are_backed_up(tier: OrchestratorTier) -> None:
    chain = _selecting("m-sel", "m-sel-vault", tags={"env": "prod"})
    counts = {"explicit": 0, "selected": 4, "excluded": 1, "notProtected": 1, "members": 2}
    resolved = {
        "ok": True,
        "vaultId": vault_id("m-sel-vault"),
        "members": [[vm_id("m-sel-a"), "selected"], [vm_id("m-sel-b"), "selected"]],
        "notProtected": [[vm_id("m-sel-loose"), "selected"]],
        "counts": counts,
    }
    tier.script.on("resolve_members", "m-sel-vault", ok(resolved))
    for vm in ("m-sel-a", "m-sel-b"):
        _backs_up(tier, vm)
    output = tier.run("chain_run", _instance("m-sel"), _run_input(chain, wait=False))["output"]
    assert tier.unscripted("m-sel") == []
    # never triggered, never looked at (only ChainCompleted names it)
    assert [c["activity"] for c in tier.script.calls(when="m-sel-loose")] == ["publish_events"]
    assert output["outcome"] == "completedWithFailures"
    assert output["counts"] == {"snapshotCompleted": 2, "notProtected": 1}
    loose = next(v for v in output["vms"] if v["vmId"] == vm_id("m-sel-loose"))
    assert (loose["outcome"], loose["errorCode"]) == ("notProtected", "VmNotProtectedInVault")
    assert output["members"] == [
        [vault_id("m-sel-vault"), vm_id("m-sel-a"), "selected"],
        [vault_id("m-sel-vault"), vm_id("m-sel-b"), "selected"],
    ]
    started = tier.published("m-sel")[0]
    assert started["type"].endswith("ChainStarted") and started["data"]["vmCount"] == 2
    (target,) = started["data"]["membership"]["targets"]
    assert target == {"vaultId": vault_id("m-sel-vault"), "selector": {"tags": {"env": "prod"}}, **counts}
    completed = tier.published("m-sel")[-1]["data"]
    assert {v["vmId"] for v in completed["vms"]} == {vm_id("m-sel-a"), vm_id("m-sel-b"), vm_id("m-sel-loose")}


def test_a_target_whose_membership_cannot_be_read_is_reported_and_the_rest_runs(tier: OrchestratorTier) -> None:
    chain = _chain(
        "m-fail",
        ["m-fail-x"],
        targets=[
            {"vaultId": vault_id("v1"), "vms": [vm_id("m-fail-x")]},
            {"vaultId": vault_id("m-fail-vault"), "vms": None, "select": {"protectedInVault": True}},
        ],
    )
    tier.script.on("resolve_members", "m-fail-vault", fails("ServiceUnavailable", "Resource Graph is down"))
    _backs_up(tier, "m-fail-x")
    output = tier.run("chain_run", _instance("m-fail"), _run_input(chain, wait=False))["output"]
    assert output["outcome"] == "completedWithFailures" and output["counts"] == {"snapshotCompleted": 1}
    assert len(tier.script.calls("resolve_members", "m-fail-vault")) > 1  # retried before giving up
    explicit, failed = output["membership"]["targets"]
    assert explicit["explicit"] == 1 and explicit["members"] == 1
    assert failed["error"]["code"] == "ServiceUnavailable" and "Resource Graph is down" in failed["error"]["message"]


def test_a_run_given_its_vms_backs_up_exactly_those_without_resolving(tier: OrchestratorTier) -> None:
    chain = _selecting("m-retry", "m-retry-vault", protectedInVault=True)
    _backs_up(tier, "m-retry-b")
    payload = _run_input(chain, wait=False, vms=[[vault_id("m-retry-vault"), vm_id("m-retry-b")]], retryOf="r0")
    output = tier.run("chain_run", _instance("m-retry"), payload)["output"]
    assert tier.script.calls("resolve_members", "m-retry-vault") == []
    assert output["outcome"] == "completed" and output["counts"] == {"snapshotCompleted": 1}
    assert output["members"] == [[vault_id("m-retry-vault"), vm_id("m-retry-b"), "retry"]]
    started = tier.published("m-retry")[0]["data"]
    assert started["retryOf"] == "r0" and started["vmCount"] == 1
    assert started["membership"] == {"how": "retry", "retryOf": "r0", "members": 1}


# --- GC (orchestrators/gc.py): selections resolved at each check -------------------------------------
def test_a_gc_check_inspects_chosen_members_and_reports_a_selection_it_cannot_read(tier: OrchestratorTier) -> None:
    spec = _gc_spec("m-gc-listed")
    spec["selections"] = [
        {"vaultId": vault_id("m-gc-vault"), "vms": None, "select": {"tags": {"env": "prod"}}, "exclude": None},
        {"vaultId": vault_id("m-gc-down"), "vms": None, "select": {"protectedInVault": True}, "exclude": None},
    ]
    chosen = {
        "ok": True,
        "members": [[vm_id("m-gc-listed"), "selected"], [vm_id("m-gc-chosen"), "selected"]],
        "notProtected": [[vm_id("m-gc-loose"), "selected"]],
        "counts": {},
    }
    tier.script.on("resolve_members", "m-gc-vault", ok(chosen))
    tier.script.on("resolve_members", "m-gc-down", fails("ServiceUnavailable", "vault unreadable"))
    for vm in ("m-gc-listed", "m-gc-chosen"):
        tier.script.on("inspect_protection", vm, ok(_fine(tier, vm)))
    output = tier.run("gc_check", "gc:check:m-gc", spec)["output"]
    # the listed VM once (also chosen), the chosen one, never the VM in no vault
    assert [v["vmId"] for v in output["vms"]] == [vm_id("m-gc-listed"), vm_id("m-gc-chosen")]
    assert tier.script.calls("inspect_protection", "m-gc-loose") == []
    (failed,) = output["selectionsFailed"]
    assert failed["vaultId"] == vault_id("m-gc-down") and failed["errorCode"] == "ServiceUnavailable"
    (event,) = [e for e in tier.published("gc:check:m-gc") if e["type"].endswith("GcMembershipUnreadable")]
    assert event["subject"] == "/gc/gc:check:m-gc" and event["data"]["vmId"] is None
    assert event["data"]["selectionsFailed"] == [failed] and "m-gc-down" in event["data"]["message"]


def _gc_spec(*vms: str) -> dict[str, Any]:
    return _spec("m-gc-vault", list(vms))


def _fine(tier: OrchestratorTier, vm: str) -> dict[str, Any]:
    return dict(_inspection(tier, vm, "m-gc-vault")["return"])


def test_two_targets_choosing_one_vm_back_it_up_once_and_never_call_it_not_protected(
    tier: OrchestratorTier,
) -> None:
    # Two vaults select the same tag: each sees the other's VM as "not protected here"; a VM
    # protected in one of the vaults is a member, not a notProtected failure of the run. A VM a
    # later target lists by hand that an earlier target already chose is backed up once.
    chain = _chain(
        "m-two",
        [],
        targets=[
            {"vaultId": vault_id("m-two-v1"), "vms": None, "select": {"tags": {"env": "prod"}}, "exclude": None},
            {"vaultId": vault_id("m-two-v2"), "vms": None, "select": {"tags": {"env": "prod"}}, "exclude": None},
            {"vaultId": vault_id("m-two-v1"), "vms": [vm_id("m-two-a")]},
        ],
    )

    def resolved(vault: str, member: str, other: str) -> dict[str, Any]:
        counts = {"explicit": 0, "selected": 2, "excluded": 0, "notProtected": 1, "members": 1}
        return {
            "ok": True,
            "vaultId": vault_id(vault),
            "members": [[vm_id(member), "selected"]],
            "notProtected": [[vm_id(other), "selected"]],
            "counts": counts,
        }

    tier.script.on("resolve_members", "m-two-v1", ok(resolved("m-two-v1", "m-two-a", "m-two-b")))
    tier.script.on("resolve_members", "m-two-v2", ok(resolved("m-two-v2", "m-two-b", "m-two-a")))
    for vm in ("m-two-a", "m-two-b"):
        _backs_up(tier, vm)
    output = tier.run("chain_run", _instance("m-two"), _run_input(chain, wait=False))["output"]
    assert output["outcome"] == "completed" and output["counts"] == {"snapshotCompleted": 2}
    assert output["members"] == [
        [vault_id("m-two-v1"), vm_id("m-two-a"), "selected"],
        [vault_id("m-two-v2"), vm_id("m-two-b"), "selected"],
    ]
    assert len(tier.script.calls("trigger_backup", "m-two-a")) == 1
