"""Activities for GC enforcement: inspect a VM's protection, and stop (keeping data) or resume it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df

from activities.azure_errors import from_exception, raise_if_transient
from activities.backup import FABRIC
from activities.clients import backup_client
from backup_chain.gc import PolicySchedule, protection_on
from backup_chain.resource_ids import VaultId, VmId

bp = df.Blueprint()
LOOKBACK = timedelta(days=8)


def _fail(err: BaseException) -> dict[str, Any]:
    return {"ok": False, "error": raise_if_transient(from_exception(err)).to_dict()}


def _policy_schedule(client: Any, vault: VaultId, policy_name: str) -> dict[str, Any]:
    policy = client.protection_policies.get(vault.name, vault.resource_group, policy_name).as_dict()
    schedule = PolicySchedule.from_policy(policy)
    return {
        "frequency": schedule.frequency,
        "days": list(schedule.days),
        "times": list(schedule.times),
        "time_zone": schedule.time_zone,
    }


@bp.activity_trigger(input_name="request")
def get_policy_schedule(request: dict[str, Any]) -> dict[str, Any]:
    """The schedule of ``policy``, or (no ``policy``) of the policy protecting ``vmId`` — ``None``
    when the item has no policy (protection stopped: nothing is scheduled)."""
    vault = VaultId.parse(request["vaultId"])
    client = backup_client(vault.subscription)
    try:
        policy = request.get("policy")
        if not policy:
            vm = VmId.parse(request["vmId"])
            item = client.protected_items.get(
                vault.name, vault.resource_group, FABRIC, vm.container_name, vm.protected_item_name
            ).as_dict()
            policy = (item.get("properties") or {}).get("policyName")
            if not policy:
                return {"ok": True, "schedule": None, "policy": None}
        return {"ok": True, "schedule": _policy_schedule(client, vault, policy), "policy": policy}
    except Exception as err:
        return _fail(err)


@bp.activity_trigger(input_name="request")
def inspect_protection(request: dict[str, Any]) -> dict[str, Any]:
    """Protection state, policy schedule, latest scheduled (not user-triggered) backup job in the
    last 8 days, and the restore points held — what the weekly GC check assesses."""
    vault, vm = VaultId.parse(request["vaultId"]), VmId.parse(request["vmId"])
    client = backup_client(vault.subscription)
    suffix = f";{vm.resource_group.lower()};{vm.name.lower()}"
    # "now" comes from the orchestration, so the look-back follows the orchestration clock.
    now = datetime.fromisoformat(str(request["now"]).replace("Z", "+00:00")).astimezone(timezone.utc)
    try:
        item = client.protected_items.get(
            vault.name, vault.resource_group, FABRIC, vm.container_name, vm.protected_item_name
        ).as_dict()
        props = item.get("properties") or {}
        policy_name = props.get("policyName") or ""
        schedule = _policy_schedule(client, vault, policy_name) if policy_name else None
        query = (
            "backupManagementType eq 'AzureIaasVM' and operation eq 'Backup' and "
            f"startTime eq '{(now - LOOKBACK).strftime('%Y-%m-%d %I:%M:%S %p')}' and "
            f"endTime eq '{now.strftime('%Y-%m-%d %I:%M:%S %p')}'"
        )
        scheduled = []
        for job in client.backup_jobs.list(vault.name, vault.resource_group, filter=query):
            data = job.as_dict()
            jp = data.get("properties") or {}
            if str(jp.get("containerName", "")).lower().endswith(suffix) and jp.get("isUserTriggered") is False:
                scheduled.append(
                    {"jobId": data.get("name"), "status": jp.get("status"), "startTime": jp.get("startTime")}
                )
        points = list(
            client.recovery_points.list(
                vault.name, vault.resource_group, FABRIC, vm.container_name, vm.protected_item_name
            )
        )
    except Exception as err:
        return _fail(err)
    snapshots = 0
    for point in points:
        tiers = (point.as_dict().get("properties") or {}).get("recoveryPointTierDetails") or []
        snapshots += any(t.get("type") == "InstantRP" and t.get("status") == "Valid" for t in tiers)
    scheduled.sort(key=lambda j: str(j["startTime"]))
    return {
        "ok": True,
        "vmId": vm.id,
        "vaultId": vault.id,
        "protectionState": props.get("protectionState"),
        "policy": policy_name or None,
        "schedule": schedule,
        "lastScheduledJob": scheduled[-1] if scheduled else None,
        "restorePoints": len(points),
        "instantSnapshots": snapshots,
        "inspectedAt": now.isoformat(),
    }


@bp.activity_trigger(input_name="request")
def set_protection(request: dict[str, Any]) -> dict[str, Any]:
    """Resume protection with ``policy`` (``on``) or stop it keeping its data; idempotent."""
    vault, vm = VaultId.parse(request["vaultId"]), VmId.parse(request["vmId"])
    client = backup_client(vault.subscription)
    want_on = bool(request["on"])
    try:
        item = client.protected_items.get(
            vault.name, vault.resource_group, FABRIC, vm.container_name, vm.protected_item_name
        ).as_dict()
        state = (item.get("properties") or {}).get("protectionState")
        if protection_on(state) == want_on:
            return {"ok": True, "changed": False, "protectionState": state}
        props: dict[str, Any] = {"protectedItemType": "Microsoft.Compute/virtualMachines", "sourceResourceId": vm.id}
        if want_on:
            props["policyId"] = f"{vault.id}/backupPolicies/{request['policy']}"
        else:
            props["protectionState"] = "ProtectionStopped"
            props["policyId"] = ""
        poller = client.protected_items.begin_create_or_update(
            vault.name,
            vault.resource_group,
            FABRIC,
            vm.container_name,
            vm.protected_item_name,
            {"properties": props},
            polling_interval=1,
        )
        poller.result()
    except Exception as err:
        return _fail(err)
    return {"ok": True, "changed": True, "protectionState": "Protected" if want_on else "ProtectionStopped"}
