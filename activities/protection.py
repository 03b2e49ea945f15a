"""Activities for GC enforcement: inspect a VM's protection, and stop (keeping data) or resume it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df

from activities.backup import FABRIC, final_error
from activities.clients import backup_client
from backup_chain.errors import AzureFailure
from backup_chain.gc import PolicySchedule, protection_on
from backup_chain.jobs import is_vm_job, listed_for_vm, parse_job
from backup_chain.messages import (
    InspectionResult,
    InspectRequest,
    PolicyScheduleRequest,
    PolicyScheduleResult,
    ProtectionResult,
    ScheduledJob,
    SetProtectionRequest,
)
from backup_chain.resource_ids import VaultId, VmId, policy_name
from backup_chain.timezones import known

bp = df.Blueprint()
LOOKBACK = timedelta(days=8)
# JobDetails_Get reads per inspection: list entries do not say whether a job was scheduled, so the
# newest of the VM's jobs are read one by one until a scheduled one appears (ARM reads: 250/s bucket).
MAX_DETAIL_READS = 24


class TooManyJobsToInspect(Exception):
    """More of a VM's recent jobs than MAX_DETAIL_READS, none of them scheduled."""


def _policy_schedule(client: Any, vault: VaultId, name: str) -> dict[str, Any]:
    policy = client.protection_policies.get(vault.name, vault.resource_group, name).as_dict()
    return PolicySchedule.from_policy(policy).to_dict()


def _item_policy(client: Any, vault: VaultId, vm: VmId) -> tuple[dict[str, Any], str | None]:
    item = client.protected_items.get(
        vault.name, vault.resource_group, FABRIC, vm.container_name, vm.protected_item_name
    ).as_dict()
    props = item.get("properties") or {}
    return props, policy_name(props.get("policyId"))


@bp.activity_trigger(input_name="request")
def get_policy_schedule(request: PolicyScheduleRequest) -> PolicyScheduleResult:
    """The schedule of ``policy``, or (no ``policy``) of the policy protecting ``vmId`` — ``None``
    when the item has no policy (protection stopped: nothing is scheduled). A policy whose time
    zone the app cannot map fails (UnknownPolicyTimeZone): when it runs cannot be known."""
    vault = VaultId.parse(request["vaultId"])
    client = backup_client(vault.subscription)
    try:
        policy = request.get("policy")
        if not policy:
            _, policy = _item_policy(client, vault, VmId.parse(request["vmId"]))
            if not policy:
                return {"ok": True, "schedule": None, "policy": None}
        schedule = _policy_schedule(client, vault, policy)
    except Exception as err:
        return {"ok": False, "error": final_error(err)}
    if not known(schedule["time_zone"]):
        error = AzureFailure(
            "final",
            "UnknownPolicyTimeZone",
            f"backup policy {policy!r} has time zone {schedule['time_zone']!r}, which is neither a Windows zone id "
            "CLDR maps nor an IANA name: when its scheduled backups run cannot be known",
            recommendations=[
                "Set the policy's timeZone to a Windows zone id, or update the app's tzlocal/tzdata pins."
            ],
        )
        return {"ok": False, "error": error.to_dict()}
    return {"ok": True, "schedule": schedule, "policy": policy}


def _latest_scheduled_job(client: Any, vault: VaultId, vm: VmId, now: datetime) -> ScheduledJob | None:
    """The VM's newest scheduled (not user-triggered) backup job of the last 8 days, or None.
    Raises TooManyJobsToInspect when more than MAX_DETAIL_READS of its jobs had to be read."""
    query = (
        "backupManagementType eq 'AzureIaasVM' and operation eq 'Backup' and "
        f"startTime eq '{(now - LOOKBACK).strftime('%Y-%m-%d %I:%M:%S %p')}' and "
        f"endTime eq '{now.strftime('%Y-%m-%d %I:%M:%S %p')}'"
    )
    listed = [job.as_dict() for job in client.backup_jobs.list(vault.name, vault.resource_group, filter=query)]
    candidates = sorted(
        (entry for entry in listed if listed_for_vm(entry, vm.name)),
        key=lambda entry: str((entry.get("properties") or {}).get("startTime") or ""),
        reverse=True,
    )
    for reads, entry in enumerate(candidates):
        if reads == MAX_DETAIL_READS:
            raise TooManyJobsToInspect(
                f"{len(candidates)} backup jobs named {vm.name} in 8 days; none of the newest {MAX_DETAIL_READS} "
                "is a scheduled backup of this VM"
            )
        job = parse_job(client.job_details.get(vault.name, vault.resource_group, entry["name"]).as_dict())
        if is_vm_job(job, vm.container_name) and job.user_triggered is False:
            return {"jobId": job.job_id, "status": job.status, "startTime": job.start_time}
    return None


@bp.activity_trigger(input_name="request")
def inspect_protection(request: InspectRequest) -> InspectionResult:
    """Protection state, policy schedule, latest scheduled (not user-triggered) backup job in the
    last 8 days, and the restore points held — what the weekly GC check assesses."""
    vault, vm = VaultId.parse(request["vaultId"]), VmId.parse(request["vmId"])
    client = backup_client(vault.subscription)
    # "now" comes from the orchestration, so the look-back follows the orchestration clock.
    now = datetime.fromisoformat(str(request["now"]).replace("Z", "+00:00")).astimezone(timezone.utc)
    try:
        props, policy = _item_policy(client, vault, vm)
        schedule = _policy_schedule(client, vault, policy) if policy else None
        last_scheduled = _latest_scheduled_job(client, vault, vm, now)
        points = list(
            client.recovery_points.list(
                vault.name, vault.resource_group, FABRIC, vm.container_name, vm.protected_item_name
            )
        )
    except TooManyJobsToInspect as err:
        error = AzureFailure(
            "final", "TooManyJobsToInspect", str(err), recommendations=["Inspect the VM's backup jobs in the portal."]
        )
        return {"ok": False, "error": error.to_dict()}
    except Exception as err:
        return {"ok": False, "error": final_error(err)}
    snapshots = 0
    for point in points:
        tiers = (point.as_dict().get("properties") or {}).get("recoveryPointTierDetails") or []
        snapshots += any(t.get("type") == "InstantRP" and t.get("status") == "Valid" for t in tiers)
    return {
        "ok": True,
        "vmId": vm.id,
        "vaultId": vault.id,
        "protectionState": props.get("protectionState"),
        "policy": policy,
        "schedule": schedule,
        "lastScheduledJob": last_scheduled,
        "restorePoints": len(points),
        "instantSnapshots": snapshots,
        "inspectedAt": now.isoformat(),
    }


@bp.activity_trigger(input_name="request")
def set_protection(request: SetProtectionRequest) -> ProtectionResult:
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
        return {"ok": False, "error": final_error(err)}
    return {"ok": True, "changed": True, "protectionState": "Protected" if want_on else "ProtectionStopped"}
