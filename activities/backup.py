"""Activities that drive Azure Backup: trigger an on-demand backup and resolve its job, read a
job, find a backup already running for a VM."""

from __future__ import annotations

import azure.durable_functions as df

from activities.azure_errors import TransientAzureError, from_exception, raise_if_transient
from activities.clients import backup_client
from backup_chain.errors import AzureFailure, ErrorDict, failure
from backup_chain.jobs import JobView, is_vm_job, listed_for_vm, parse_job
from backup_chain.messages import (
    ActiveJobResult,
    Job,
    JobRequest,
    JobResult,
    OperationRequest,
    OperationResult,
    RecoveryPoint,
    RecoveryPointRequest,
    RecoveryPointResult,
    TriggerRequest,
    TriggerResult,
    VmRequest,
)
from backup_chain.resource_ids import VaultId, VmId

bp = df.Blueprint()
FABRIC = "Azure"
DEFAULT_RETRY_AFTER = 60  # the spec examples' Retry-After, for a 202 that carries none


def final_error(err: BaseException) -> ErrorDict:
    """A final failure as data for the orchestrator; transient ones raise (and are retried)."""
    return raise_if_transient(from_exception(err)).to_dict()


def _operation_id(headers: dict[str, str]) -> str:
    url = headers.get("Azure-AsyncOperation") or headers.get("Location") or ""
    for marker in ("/operationsStatus/", "/operationResults/"):
        if marker in url:
            return url.split(marker, 1)[1].split("?", 1)[0]
    raise TransientAzureError(f"trigger response carried no operation URL: {sorted(headers)}")


def _retry_after(headers: dict[str, str]) -> int:
    value = headers.get("Retry-After", "")
    return int(value) if value.isdigit() else DEFAULT_RETRY_AFTER


@bp.activity_trigger(input_name="request")
def trigger_backup(request: TriggerRequest) -> TriggerResult:
    """One POST .../protectedItems/{item}/backup with the retain-until date: the operation to
    follow and its Retry-After (``backup_operation`` reads it; this never polls, so a retry of
    this activity is the only way a second POST happens). A refusal (e.g. BMSUserErrorObjectLocked,
    the daily on-demand limit) comes back as data."""
    from azure.mgmt.recoveryservicesbackup.models import BackupRequestResource, IaasVMBackupRequest
    from dateutil.parser import isoparse

    vault, vm = VaultId.parse(request["vaultId"]), VmId.parse(request["vmId"])
    client = backup_client(vault.subscription)
    body = BackupRequestResource(
        properties=IaasVMBackupRequest(recovery_point_expiry_time_in_utc=isoparse(request["expiryUtc"]))
    )
    try:
        headers = client.backups.trigger(
            vault.name,
            vault.resource_group,
            FABRIC,
            vm.container_name,
            vm.protected_item_name,
            body,
            cls=lambda pipeline_response, _body, _headers: dict(pipeline_response.http_response.headers),
        )
    except Exception as err:
        return {"ok": False, "error": final_error(err)}
    return {"ok": True, "operationId": _operation_id(headers), "retryAfterSeconds": _retry_after(headers)}


@bp.activity_trigger(input_name="request")
def backup_operation(request: OperationRequest) -> OperationResult:
    """One read of a trigger's operation (ProtectedItemOperationStatuses_Get): ``status``
    InProgress; Succeeded with ``jobId`` and the job as read right after (its conflict may fail it
    at once); or ``ok`` false with Azure's error and, when the operation names one, ``jobId``
    (a conflict names the running job)."""
    vault, vm = VaultId.parse(request["vaultId"]), VmId.parse(request["vmId"])
    operation_id = request["operationId"]
    client = backup_client(vault.subscription)
    try:
        status = client.protected_item_operation_statuses.get(
            vault.name, vault.resource_group, FABRIC, vm.container_name, vm.protected_item_name, operation_id
        )
        job_id = getattr(status.properties, "job_id", None) if status.properties is not None else None
        if status.status == "InProgress":
            return {"ok": True, "status": "InProgress"}
        if status.status == "Succeeded" and job_id:
            return {"ok": True, "status": "Succeeded", "jobId": job_id, "job": read_job(vault, job_id)}
    except Exception as err:
        return {"ok": False, "error": final_error(err)}
    if status.status == "Succeeded":
        message = f"backup operation {operation_id} succeeded without naming its job"
        return {"ok": False, "error": AzureFailure("final", "OperationWithoutJob", message).to_dict()}
    error = status.error
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or f"backup operation ended {status.status}"
    # The operation failed with Azure's code; classify it as if the service had answered 409.
    result = raise_if_transient(failure(409, code, message))
    return {"ok": False, "error": result.to_dict(), "jobId": job_id}


def read_job(vault: VaultId, job_id: str) -> Job:
    """A job's details as a JobView dict (raises the SDK's errors)."""
    job = backup_client(vault.subscription).job_details.get(vault.name, vault.resource_group, job_id)
    return parse_job(job.as_dict()).to_dict()


@bp.activity_trigger(input_name="request")
def get_job(request: JobRequest) -> JobResult:
    try:
        return {"ok": True, "job": read_job(VaultId.parse(request["vaultId"]), request["jobId"])}
    except Exception as err:
        return {"ok": False, "error": final_error(err)}


@bp.activity_trigger(input_name="request")
def find_active_job(request: VmRequest) -> ActiveJobResult:
    """The backup job running for the VM right now (scheduled or ad hoc), if any."""
    vault, vm = VaultId.parse(request["vaultId"]), VmId.parse(request["vmId"])
    client = backup_client(vault.subscription)
    query = "backupManagementType eq 'AzureIaasVM' and operation eq 'Backup' and status eq 'InProgress'"
    try:
        for job in client.backup_jobs.list(vault.name, vault.resource_group, filter=query):
            if not listed_for_vm(job.as_dict(), vm.name):
                continue
            details = read_job(vault, job.name)
            if is_vm_job(JobView.from_dict(details), vm.container_name):
                return {"ok": True, "job": details}
    except Exception as err:
        return {"ok": False, "error": final_error(err)}
    return {"ok": True, "job": None}


@bp.activity_trigger(input_name="request")
def latest_recovery_point(request: RecoveryPointRequest) -> RecoveryPointResult:
    """The restore point a finished job created (the newest at or after the job's start): its
    name and consistency type (application, file-system or crash consistent)."""
    from dateutil.parser import isoparse

    vault, vm = VaultId.parse(request["vaultId"]), VmId.parse(request["vmId"])
    since = isoparse(request["since"]) if request.get("since") else None
    try:
        points = [
            p.as_dict()
            for p in backup_client(vault.subscription).recovery_points.list(
                vault.name, vault.resource_group, FABRIC, vm.container_name, vm.protected_item_name
            )
        ]
    except Exception as err:
        return {"ok": False, "error": final_error(err)}
    best: RecoveryPoint | None = None
    for point in points:
        props = point.get("properties") or {}
        stamp = props.get("recoveryPointTime")
        if not stamp or (since is not None and isoparse(stamp) < since):
            continue
        if best is None or isoparse(stamp) > isoparse(best["time"]):
            best = {"name": point.get("name"), "time": stamp, "consistency": props.get("recoveryPointType")}
    return {"ok": True, "recoveryPoint": best}
