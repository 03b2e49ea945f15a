"""JSON bodies shaped like the azure-rest-api-specs examples (paths under
specification/recoveryservicesbackup/resource-manager/Microsoft.RecoveryServices/RecoveryServicesBackup/
stable/2025-08-01/examples/): GetJobDetails.json, ListJobsWithAllSupportedFilters.json,
ProtectedItemOperationStatus.json, Compute_ProtectedItem_Get.json, RecoveryPoints_List.json,
ProtectionPolicies_CreateOrUpdate_Simple.json, V2Policy/IaaS_v2_hourly.json, V2Policy/IaaS_v2_daily.json."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from emulators.recoveryservices.model import Item, Job, Operation, RecoveryPoint, Vault
from emulators.recoveryservices.scenario import PolicySpec


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def duration(seconds: float) -> str:
    """ISO 8601 duration as Azure writes job durations (e.g. ``PT1H5M9.8782791S``)."""
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = "PT"
    if hours:
        out += f"{int(hours)}H"
    if minutes:
        out += f"{int(minutes)}M"
    return out + f"{secs:.7f}".rstrip("0").rstrip(".") + "S"


def item_id(item: Item) -> str:
    return (
        f"{item.vault.id}/backupFabrics/Azure/protectionContainers/"
        f"IaasVMContainer;{item.container.split(';', 1)[1]}/protectedItems/{item.name}"
    )


def vm_id(item: Item) -> str:
    sub = item.vault.id.split("/")[2]
    return (
        f"/subscriptions/{sub}/resourceGroups/{item.vm.resource_group}"
        f"/providers/Microsoft.Compute/virtualMachines/{item.vm.name}"
    )


def policy_id(vault: Vault, name: str) -> str:
    return f"{vault.id}/backupPolicies/{name}"


def vault(vault: Vault) -> dict[str, Any]:
    """Vaults_Get (azure-rest-api-specs recoveryservices stable/2025-08-01 GETVault.json), the
    properties an emulated vault has: no identity, endpoints or security settings."""
    guard = vault.spec.resource_guard is not None
    return {
        "name": vault.spec.name,
        "type": "Microsoft.RecoveryServices/vaults",
        "id": vault.id,
        "location": vault.spec.location,
        "properties": {
            "provisioningState": "Succeeded",
            "securitySettings": {"multiUserAuthorization": "Enabled" if guard else "Disabled"},
        },
        "sku": {"name": "Standard"},
        "tags": {},
    }


def protected_item(item: Item, now: float) -> dict[str, Any]:
    last_rp = max((rp.time for rp in item.rps), default=None)
    failed = item.last_backup_status == "Failed"
    props: dict[str, Any] = {
        "backupManagementType": "AzureIaasVM",
        "containerName": item.container.split(";", 1)[1],
        "friendlyName": item.vm.name,
        "healthStatus": "ActionRequired" if failed else "Passed",
        "lastBackupStatus": item.last_backup_status or "",
        "lastBackupTime": iso(item.last_backup_time),
        "lastRecoveryPoint": iso(last_rp),
        # Compute_ProtectedItem_Get.json carries policyId but no policyName
        "policyId": policy_id(item.vault, item.policy) if item.policy else "",
        "policyType": _policy_type(item),
        "protectedItemDataId": item.data_id,
        "protectedItemType": "Microsoft.Compute/virtualMachines",
        "protectionState": item.protection_state(),
        "protectionStatus": "Unhealthy" if failed else "Healthy",
        "sourceResourceId": vm_id(item),
        "virtualMachineId": vm_id(item),
        "workloadType": "VM",
        "extendedInfo": {
            "oldestRecoveryPoint": iso(min((rp.time for rp in item.rps), default=None)),
            "recoveryPointCount": len(item.rps),
            "policyInconsistent": False,
        },
    }
    return {
        "id": item_id(item),
        "name": item.name,
        "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems",
        "properties": props,
    }


def job(job: Job, now: float, *, details: bool) -> dict[str, Any]:
    view = job.view(now)
    end = view.end
    props: dict[str, Any] = {
        "activityId": job.activity_id,
        "backupManagementType": "AzureIaasVM",
        "duration": duration((end if end is not None else now) - job.start),
        "entityFriendlyName": job.item.vm.name,
        "jobType": "AzureIaaSVMJob",
        "operation": "Backup",
        "startTime": iso(job.start),
        "status": view.status,
        "virtualMachineVersion": "Compute",
        "actionsInfo": ["Cancellable"] if view.status == "InProgress" else [],
    }
    if end is not None:
        props["endTime"] = iso(end)
    if job.error is not None and view.status == "Failed":
        props["errorDetails"] = [
            {
                # AzureIaaSVMErrorInfo (bms.json): errorCode is an int, errorTitle "typically, the
                # entity that the error pertains to"; the symbolic code is not a field of it.
                "errorCode": job.error.number,
                "errorString": job.error.message,
                "errorTitle": job.item.vm.name,
                "recommendations": list(job.error.recommendations),
            }
        ]
    if details:
        # List entries carry neither (ListJobsWithAllSupportedFilters.json); the AzureIaaSVMJob
        # schema defines both, and the details answer them here.
        props["containerName"] = job.item.container.split(";", 1)[1]
        props["isUserTriggered"] = job.user_triggered
        tasks = []
        for task in view.tasks:
            entry: dict[str, Any] = {
                "taskId": task.task_id,
                "status": task.status,
                "duration": duration(
                    ((task.end if task.end is not None else now) - task.start) if task.start is not None else 0
                ),
            }
            if task.start is not None:
                entry["startTime"] = iso(task.start)
            if task.end is not None:
                entry["endTime"] = iso(task.end)
            tasks.append(entry)
        bag = {"VM Name": job.item.vm.name, "Backup Size": "0 MB"}
        if job.user_triggered and job.expiry is not None:
            bag["Recovery Point Expiry Time in UTC"] = iso(job.expiry) or ""
        extended: dict[str, Any] = {"propertyBag": bag, "tasksList": tasks}
        if job.error is not None and view.status == "Failed":
            extended["dynamicErrorMessage"] = job.error.message
        props["extendedInfo"] = extended
    return {
        "id": f"{job.item.vault.id}/backupJobs/{job.id}",
        "name": job.id,
        "type": "Microsoft.RecoveryServices/vaults/backupJobs",
        "properties": props,
    }


def operation_status(op: Operation, now: float) -> dict[str, Any]:
    done = now >= op.end
    body: dict[str, Any] = {
        "id": op.id,
        "name": op.id,
        "status": ("Failed" if op.error else "Succeeded") if done else "InProgress",
        "startTime": iso(op.start),
    }
    if done:
        body["endTime"] = iso(op.end)
    if op.error and done:
        body["error"] = {"code": op.error[0], "message": op.error[1]}
    if op.job_id is not None and done:
        body["properties"] = {"objectType": "OperationStatusJobExtendedInfo", "jobId": op.job_id}
    return body


def recovery_point(item: Item, rp: RecoveryPoint) -> dict[str, Any]:
    tiers = [{"type": "InstantRP", "status": "Valid" if rp.instant_valid else "Deleted"}]
    if rp.in_vault:
        tiers.append({"type": "HardenedRP", "status": "Valid"})
    return {
        "id": f"{item_id(item)}/recoveryPoints/{rp.name}",
        "name": rp.name,
        "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints",
        "properties": {
            "objectType": "IaasVMRecoveryPoint",
            "isInstantIlrSessionActive": False,
            "isManagedVirtualMachine": True,
            "isSourceVMEncrypted": False,
            "originalStorageAccountOption": False,
            "osType": item.vm.os,
            "recoveryPointAdditionalInfo": "",
            "recoveryPointTierDetails": tiers,
            "recoveryPointTime": iso(rp.time),
            "recoveryPointType": rp.consistency,
            "recoveryPointProperties": {
                "expiryTime": iso(rp.expiry),
                "ruleName": "" if rp.user_triggered else "DefaultRule",
            },
            "sourceVMStorageType": "NormalStorage",
            "virtualMachineSize": "Standard_D2s_v3",
        },
    }


def _policy_type(item: Item) -> str:
    spec = item.vault.policies.get(item.policy.lower()) if item.policy else None
    return spec.policy_type if spec is not None else "V1"


def _schedule(spec: PolicySpec, run_time: str) -> dict[str, Any]:
    """V1 ``SimpleSchedulePolicy`` or Enhanced ``SimpleSchedulePolicyV2`` (IaaS_v2_hourly.json,
    IaaS_v2_daily.json; the weekly one as the SDK's WeeklySchedule model names its fields)."""
    if spec.policy_type == "V1":
        schedule: dict[str, Any] = {
            "schedulePolicyType": "SimpleSchedulePolicy",
            "scheduleRunFrequency": spec.frequency,
            "scheduleRunTimes": [run_time],
            "scheduleWeeklyFrequency": 0,
        }
        if spec.frequency == "Weekly":
            schedule["scheduleRunDays"] = list(spec.days)
        return schedule
    schedule = {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": spec.frequency}
    if spec.frequency == "Hourly":
        schedule["hourlySchedule"] = {
            "interval": spec.interval_hours,
            "scheduleWindowDuration": spec.window_hours,
            "scheduleWindowStartTime": run_time,
        }
    elif spec.frequency == "Daily":
        schedule["dailySchedule"] = {"scheduleRunTimes": [run_time]}
    else:
        schedule["weeklySchedule"] = {"scheduleRunDays": list(spec.days), "scheduleRunTimes": [run_time]}
    return schedule


def policy(vault: Vault, spec: PolicySpec, protected_count: int) -> dict[str, Any]:
    # Azure keeps the wall-clock time with a Z suffix and the zone in timeZone
    run_time = f"2018-01-24T{spec.time}:00Z"
    retention: dict[str, Any] = {"retentionPolicyType": "LongTermRetentionPolicy"}
    if spec.frequency == "Weekly":
        retention["weeklySchedule"] = {
            "daysOfTheWeek": list(spec.days),
            "retentionDuration": {"count": spec.retention_weeks, "durationType": "Weeks"},
            "retentionTimes": [run_time],
        }
    else:  # Daily, and Hourly (whose daily retention IaaS_v2_hourly.json shows)
        retention["dailySchedule"] = {
            "retentionDuration": {"count": spec.retention_days, "durationType": "Days"},
            "retentionTimes": [run_time],
        }
    return {
        "id": policy_id(vault, spec.name),
        "name": spec.name,
        "type": "Microsoft.RecoveryServices/vaults/backupPolicies",
        "properties": {
            "backupManagementType": "AzureIaasVM",
            "instantRpRetentionRangeInDays": spec.instant_rp_days,
            "policyType": spec.policy_type,
            "protectedItemsCount": protected_count,
            "retentionPolicy": retention,
            "schedulePolicy": _schedule(spec, run_time),
            "timeZone": spec.time_zone,
        },
    }
