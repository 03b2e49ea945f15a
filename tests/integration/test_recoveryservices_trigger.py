"""The on-demand trigger through the real SDK client on a manual clock: the async operation's
latency and Retry-After, the three forms of "a backup is already running", the daily on-demand
limit, the job-list lag, cancel refused during transfer, and the strict ``backupTrigger`` settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from emulators.recoveryservices import scenario as scenario_module
from emulators.recoveryservices import trigger_rules
from tests.integration.rs_support import (
    RG,
    VAULT,
    Emulator,
    far_policies,
    op_status,
    operation_id,
    scenario,
    start_emulator,
    trigger,
    utcnow,
    vm_entry,
)

OPERATION_SECONDS = 30
LAG_SECONDS = 120
PER_DAY = 3
SHORT = {"snapshotMinutes": [1, 1], "transferMinutes": [60, 60]}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    names = ["latency01", "opfail01", "jobfail01", "lock01", "limit01", "lag01", "cancel01", "reads01"]
    rules = {
        "retryAfterSeconds": 60,
        "operationSeconds": OPERATION_SECONDS,
        "onDemandPerDay": PER_DAY,
        "conflictForm": "failedOperation",
        "jobListLagSeconds": LAG_SECONDS,
        "vms": {"jobfail01": {"conflictForm": "failedJob"}, "lock01": {"conflictForm": "objectLocked"}},
    }
    body = scenario([vm_entry(n, "daily", **SHORT) for n in names], far_policies(utcnow()), backupTrigger=rules)
    yield from start_emulator(tmp_path_factory.mktemp("rs-trigger"), body)


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Any:
    return emu.client()


def _started(emu: Emulator, client: Any, vm: str) -> str:
    """Trigger, wait out the operation, return its job id."""
    op = operation_id(trigger(client, vm))
    emu.advance(OPERATION_SECONDS)
    status = op_status(client, vm, op)
    assert status.status == "Succeeded"
    return str(status.properties.job_id)


def _posts(emu: Emulator, vm: str) -> int:
    return int(emu.admin("GET", "/admin/operations")["triggerPosts"].get(vm, 0))


def test_operation_is_in_progress_for_its_latency_with_retry_after_60(emu: Emulator, client: Any) -> None:
    headers = trigger(client, "latency01")
    assert headers["Retry-After"] == "60"
    assert "/operationResults/" in headers["Location"]
    op = operation_id(headers)
    status = op_status(client, "latency01", op)
    assert status.status == "InProgress"
    assert status.properties is None  # the job id comes with the outcome
    result_path = headers["Location"].split(emu.url, 1)[1].split("?", 1)[0]
    pending = emu.raw(client, "GET", result_path)
    assert pending.status_code == 202 and pending.headers["Retry-After"] == "60"

    emu.advance(OPERATION_SECONDS - 1)
    assert op_status(client, "latency01", op).status == "InProgress"
    emu.advance(1)
    done = op_status(client, "latency01", op)
    assert done.status == "Succeeded"
    assert client.job_details.get(VAULT, RG, done.properties.job_id).properties.status == "InProgress"
    assert emu.raw(client, "GET", result_path).status_code == 204
    listed = {o["id"]: o for o in emu.admin("GET", "/admin/operations")["operations"]}
    assert listed[op]["vm"] == "latency01" and listed[op]["status"] == "Succeeded"
    assert _posts(emu, "latency01") == 1


def test_conflict_fails_the_operation_with_the_running_job_id(emu: Emulator, client: Any) -> None:
    running = _started(emu, client, "opfail01")
    op = operation_id(trigger(client, "opfail01"))
    assert op_status(client, "opfail01", op).status == "InProgress"
    emu.advance(OPERATION_SECONDS)
    status = op_status(client, "opfail01", op)
    assert status.status == "Failed"
    assert status.error.code == "UserErrorBackupOperationInProgress"
    assert status.properties.job_id == running


def test_conflict_succeeds_and_its_job_fails_at_once(emu: Emulator, client: Any) -> None:
    running = _started(emu, client, "jobfail01")
    conflict_job = _started(emu, client, "jobfail01")
    assert conflict_job != running
    job = client.job_details.get(VAULT, RG, conflict_job)
    assert job.properties.status == "Failed"
    assert emu.admin("GET", f"/admin/jobs/{conflict_job}")["error"] == "UserErrorBackupOperationInProgress"
    assert client.job_details.get(VAULT, RG, running).properties.status == "InProgress"


def test_conflict_is_refused_synchronously_as_object_locked(emu: Emulator, client: Any) -> None:
    _started(emu, client, "lock01")
    with pytest.raises(HttpResponseError) as refused:
        trigger(client, "lock01")
    assert refused.value.status_code == 400
    assert refused.value.error is not None and refused.value.error.code == "BMSUserErrorObjectLocked"
    assert _posts(emu, "lock01") == 2


def test_daily_on_demand_limit_then_accepted_a_day_later(emu: Emulator, client: Any) -> None:
    for _ in range(PER_DAY):
        job = _started(emu, client, "limit01")
        emu.admin("POST", f"/admin/jobs/{job}/advance")  # snapshot done
        emu.admin("POST", f"/admin/jobs/{job}/advance")  # transfer done
    with pytest.raises(HttpResponseError) as refused:
        trigger(client, "limit01")
    assert refused.value.status_code == 400
    assert refused.value.error is not None and refused.value.error.code == "CloudDosAbsoluteLimitReached"
    emu.advance(24 * 3600)
    _started(emu, client, "limit01")


def test_a_started_job_is_listed_only_after_the_lag(emu: Emulator, client: Any) -> None:
    query = "status eq 'InProgress' and operation eq 'Backup'"
    job = _started(emu, client, "lag01")  # the operation took 30 s of the 120 s lag
    assert job not in {j.name for j in client.backup_jobs.list(VAULT, RG, filter=query)}
    assert client.job_details.get(VAULT, RG, job).properties.status == "InProgress"
    emu.advance(LAG_SECONDS - OPERATION_SECONDS)
    assert job in {j.name for j in client.backup_jobs.list(VAULT, RG, filter=query)}


def test_cancel_is_refused_during_transfer(emu: Emulator, client: Any) -> None:
    job = _started(emu, client, "cancel01")
    assert emu.admin("POST", f"/admin/jobs/{job}/advance")["tasks"]["Transfer data to vault"] == "InProgress"
    headers = client.job_cancellations.trigger(
        VAULT, RG, job, cls=lambda response, _body, _headers: dict(response.http_response.headers)
    )
    cancel_op = headers["Location"].split("/operationResults/")[1].split("?")[0]
    with pytest.raises(HttpResponseError) as refused:
        client.job_operation_results.get(VAULT, RG, job, cancel_op)
    assert refused.value.status_code == 400
    assert refused.value.error is not None and refused.value.error.code == "BMSUserErrorJobNotInCancellableState"
    assert client.job_details.get(VAULT, RG, job).properties.status == "InProgress"


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"operationSecond": 1}, "backupTrigger.operationSecond"),
        ({"retryAfterSeconds": -1}, "backupTrigger.retryAfterSeconds"),
        ({"onDemandPerDay": 0}, "backupTrigger.onDemandPerDay"),
        ({"conflictForm": "locked"}, "backupTrigger.conflictForm"),
        ({"vms": {"app01": {"conflictForm": "x"}}}, "backupTrigger.vms.app01.conflictForm"),
        ({"vms": {"app01": {"form": "failedJob"}}}, "backupTrigger.vms.app01.form"),
        ({"jobListLagSeconds": "5"}, "backupTrigger.jobListLagSeconds"),
    ],
)
def test_bad_settings_name_their_key(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(scenario_module.ScenarioError, match=f"^{path}:"):
        trigger_rules.parse(raw)


def test_defaults_are_azure_like() -> None:
    rules = trigger_rules.parse(None)
    assert (rules.retry_after_seconds, rules.on_demand_per_day, rules.conflict_form) == (60, 9, "failedOperation")
    assert trigger_rules.parse({"vms": {"App01": {"conflictForm": "failedJob"}}}).conflict_form_for("app01") == (
        "failedJob"
    )


def test_job_reads_are_counted_per_job_before_and_after_take_snapshot_completes(emu: Emulator, client: Any) -> None:
    job_id = _started(emu, client, "reads01")  # Take Snapshot lasts SHORT's 1 minute from the job's start
    for _ in range(2):
        client.job_details.get(VAULT, RG, job_id)
    emu.advance(60)
    client.job_details.get(VAULT, RG, job_id)
    record = next(j for j in emu.admin("GET", "/admin/jobs") if j["id"] == job_id)
    assert record["snapshotCompletedAt"] is not None
    assert record["reads"] == {"toSnapshot": 2, "afterSnapshot": 1, "beforeBeacon": 0}  # no post-script
