"""What a cancelled run leaves behind: each VM's Azure job and whether it is still running."""

from __future__ import annotations

import asyncio

import azure.durable_functions as df

from activities.azure_errors import from_exception, raise_if_transient
from activities.backup import read_job
from backup_chain.jobs import JobView
from backup_chain.messages import RunJob, RunJobsRequest
from backup_chain.resource_ids import VaultId

bp = df.Blueprint()
CONCURRENT_READS = 8


@bp.activity_trigger(input_name="request")
@bp.durable_client_input(client_name="client")
async def run_jobs(request: RunJobsRequest, client: df.DurableOrchestrationClient) -> list[RunJob]:
    """Input: ``vms`` ([vmId, vaultId, vm_backup instance id, job id or None]). The job id, when not
    given, is the one the VM's orchestration shows in its custom status (set before BackupTriggered
    is published). Output per VM: ``vmId``, ``jobId``, ``jobStatus`` (Azure's, None without a job or
    when it cannot be read), ``jobRunning`` and ``readError``. ``readJobs`` false: the job ids
    only, Azure is not asked (``jobRunning`` None for a VM with a job) — after Azure kept failing."""
    read_jobs = request.get("readJobs", True) is not False
    gate = asyncio.Semaphore(CONCURRENT_READS)

    async def one(vm_id: str, vault_id: str, instance_id: str, job_id: str | None) -> RunJob:
        async with gate:
            if job_id is None:
                status = await client.get_status(instance_id)
                custom = status.custom_status if status and isinstance(status.custom_status, dict) else {}
                job_id = custom.get("jobId")
            found: RunJob = {"vmId": vm_id, "jobId": job_id, "jobStatus": None, "jobRunning": None}
            if not job_id:
                return {**found, "jobRunning": False}
            if not read_jobs:
                return found
            try:
                job = JobView.from_dict(await asyncio.to_thread(read_job, VaultId.parse(vault_id), job_id))
            except Exception as err:
                raise_if_transient(from_exception(err))  # transient: the activity is retried
                return {**found, "readError": str(err)[:300]}
            return {**found, "jobStatus": job.status, "jobRunning": not job.terminal}

    vms = request["vms"]
    return list(await asyncio.gather(*(one(*vm) for vm in vms)))
