"""The Recovery Services emulator through the real Any over HTTPS, on a manual
clock: trigger -> operation status -> job -> Take Snapshot -> Transfer -> Completed, the conflict on a
second trigger, cancellation, stop/resume, auth and api-version errors, throttling with Retry-After,
job paging and filters, policies, and the response shapes against the spec's examples."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from emulators.recoveryservices.errors import PROTECTION_STOPPED_CODE
from tests.integration.rs_support import (
    RG,
    VAULT,
    Emulator,
    container,
    far_policies,
    item,
    op_status,
    operation_id,
    resume_protection,
    scenario,
    start_emulator,
    stop_protection,
    tasks,
    trigger,
    utcnow,
    vault_path,
    vm_entry,
)

EXAMPLES = Path(__file__).parent / "data" / "rest_examples"
MINUTE = 60.0


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    history = [{"hoursAgo": h, "userTriggered": h % 2 == 0, "snapshotCollected": True} for h in range(30, 90)]
    vms = [
        vm_entry("flow01", "daily"),
        vm_entry("conflict01", "daily"),
        vm_entry("cancel01", "daily"),
        vm_entry("stop01", "weekly"),
        vm_entry("shape01", "daily", snapshotMinutes=[1, 1], transferMinutes=[1, 1]),
        vm_entry("hist01", "weekly", history=history),
        vm_entry("win01", "daily", os="Windows"),
    ]
    # These tests follow jobs, not the trigger's operation (its latency: test_recoveryservices_trigger.py).
    instant = {"operationSeconds": 0}
    body = scenario(vms, far_policies(utcnow()), backupTrigger=instant)
    yield from start_emulator(tmp_path_factory.mktemp("rs-flow"), body)


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Any:
    return emu.client()


def test_trigger_runs_snapshot_then_transfer(emu: Emulator, client: Any) -> None:
    headers = trigger(client, "flow01")
    assert "/operationResults/" in headers["Location"]
    status = op_status(client, "flow01", operation_id(headers))
    assert status.status == "Succeeded"
    job_id = status.properties.job_id
    job = client.job_details.get(VAULT, RG, job_id)
    assert job.properties.status == "InProgress"
    assert job.properties.is_user_triggered is True
    assert job.properties.operation == "Backup"
    assert tasks(job) == [("Take Snapshot", "InProgress"), ("Transfer data to vault", "NotStarted")]

    emu.advance(4 * MINUTE)  # snapshots take 5-15 minutes
    assert tasks(client.job_details.get(VAULT, RG, job_id))[0] == ("Take Snapshot", "InProgress")

    emu.advance(12 * MINUTE)
    job = client.job_details.get(VAULT, RG, job_id)
    assert tasks(job) == [("Take Snapshot", "Completed"), ("Transfer data to vault", "InProgress")]
    snapshot_task = job.properties.extended_info.tasks_list[0]
    assert snapshot_task.end_time is not None and snapshot_task.duration.total_seconds() >= 5 * MINUTE
    running = client.backup_jobs.list(VAULT, RG, filter="status eq 'InProgress' and operation eq 'Backup'")
    assert job_id in {j.name for j in running}

    emu.advance(181 * MINUTE)  # transfers take 60-180 minutes
    job = client.job_details.get(VAULT, RG, job_id)
    assert job.properties.status == "Completed"
    assert tasks(job) == [("Take Snapshot", "Completed"), ("Transfer data to vault", "Completed")]
    assert job.properties.end_time > job.properties.start_time

    points = list(client.recovery_points.list(VAULT, RG, "Azure", container("flow01"), item("flow01")))
    assert len(points) == 1
    props = points[0].properties
    assert props["recoveryPointType"] == "FileSystemConsistent"  # Linux without pre/post scripts
    assert {t["type"]: t["status"] for t in props["recoveryPointTierDetails"]} == {
        "InstantRP": "Valid",
        "HardenedRP": "Valid",
    }
    protected = client.protected_items.get(VAULT, RG, "Azure", container("flow01"), item("flow01"))
    assert protected.properties["lastBackupStatus"] == "Completed"
    assert protected.properties["protectionState"] == "Protected"


def test_on_demand_expiry_and_windows_consistency(emu: Emulator, client: Any) -> None:
    expiry = "2099-01-01T00:00:00Z"
    status = op_status(client, "win01", operation_id(trigger(client, "win01", recoveryPointExpiryTimeInUTC=expiry)))
    emu.advance(200 * MINUTE)
    job = client.job_details.get(VAULT, RG, status.properties.job_id)
    assert job.properties.status == "Completed"
    (point,) = client.recovery_points.list(VAULT, RG, "Azure", container("win01"), item("win01"))
    assert point.properties["recoveryPointType"] == "AppConsistent"  # Windows VSS default
    assert point.properties["recoveryPointProperties"]["expiryTime"].startswith("2099-01-01T00:00:00")


def test_second_trigger_fails_with_backup_in_progress(emu: Emulator, client: Any) -> None:
    first = op_status(client, "conflict01", operation_id(trigger(client, "conflict01")))
    assert first.status == "Succeeded"
    second = op_status(client, "conflict01", operation_id(trigger(client, "conflict01")))
    assert second.status == "Failed"
    assert second.error.code == "UserErrorBackupOperationInProgress"
    running = [
        j
        for j in client.backup_jobs.list(VAULT, RG, filter="status eq 'InProgress'")
        if j.properties.entity_friendly_name == "conflict01"
    ]
    assert [j.name for j in running] == [first.properties.job_id]


def test_cancel_job(emu: Emulator, client: Any) -> None:
    job_id = op_status(client, "cancel01", operation_id(trigger(client, "cancel01"))).properties.job_id
    client.job_cancellations.trigger(VAULT, RG, job_id)
    job = client.job_details.get(VAULT, RG, job_id)
    assert job.properties.status == "Cancelled"
    assert tasks(job)[0] == ("Take Snapshot", "Cancelled")
    with pytest.raises(HttpResponseError):
        client.job_cancellations.trigger(VAULT, RG, job_id)


def test_stop_protection_blocks_trigger_until_resumed(emu: Emulator, client: Any) -> None:
    stopped = stop_protection(client, "stop01")
    assert stopped.properties["protectionState"] == "ProtectionStopped"
    with pytest.raises(HttpResponseError) as err:
        trigger(client, "stop01")
    assert err.value.status_code == 400
    assert err.value.error is not None and err.value.error.code == PROTECTION_STOPPED_CODE
    resumed = resume_protection(client, "stop01", "weekly")
    assert resumed.properties["protectionState"] in ("Protected", "IRPending")
    assert op_status(client, "stop01", operation_id(trigger(client, "stop01"))).status == "Succeeded"


def test_auth_is_required(emu: Emulator) -> None:
    with pytest.raises(ClientAuthenticationError) as err:
        emu.client(token="not-the-token").backup_policies.list(VAULT, RG).next()
    assert err.value.status_code == 401
    assert err.value.error is not None and err.value.error.code == "InvalidAuthenticationToken"


def test_unknown_api_version_is_refused(emu: Emulator) -> None:
    with pytest.raises(HttpResponseError) as err:
        emu.client(api_version="2099-01-01").job_details.get(VAULT, RG, "00000000-0000-0000-0000-000000000000")
    assert err.value.status_code == 400
    assert err.value.error is not None and err.value.error.code == "NoRegisteredProviderFound"


def test_unknown_item_is_not_found(client: Any) -> None:
    with pytest.raises(ResourceNotFoundError):
        client.protected_items.get(VAULT, RG, "Azure", container("nope"), item("nope"))


def test_throttling_retry_after_is_honoured(emu: Emulator, client: Any) -> None:
    job_id = op_status(client, "shape01", operation_id(trigger(client, "shape01"))).properties.job_id
    before = emu.admin("GET", "/admin/requests")["byOperation"].get("JobDetails_Get", 0)
    emu.admin(
        "POST", "/admin/faults", json={"operations": {"JobDetails_Get": {"fail429Next": 2, "retryAfterSeconds": 1}}}
    )
    started = time.monotonic()
    job = client.job_details.get(VAULT, RG, job_id)
    elapsed = time.monotonic() - started
    assert job.name == job_id
    counts = emu.admin("GET", "/admin/requests")
    assert counts["byOperation"]["JobDetails_Get"] - before == 3
    assert counts["errors"]["JobDetails_Get:429"] == 2
    assert elapsed >= 2.0  # two Retry-After: 1 waits
    emu.advance(5 * MINUTE)  # let the job finish for the shape checks


def test_job_paging_and_time_filters(emu: Emulator, client: Any) -> None:
    jobs = list(
        client.backup_jobs.list(VAULT, RG, filter="backupManagementType eq 'AzureIaasVM' and operation eq 'Backup'")
    )
    assert len(jobs) > 50  # 60 seeded history jobs -> a nextLink page
    assert len({j.name for j in jobs}) == len(jobs)
    now = emu.now()
    start = (now.replace(microsecond=0) - timedelta(hours=40)).strftime("%Y-%m-%d %I:%M:%S %p")
    end = (now.replace(microsecond=0) - timedelta(hours=35)).strftime("%Y-%m-%d %I:%M:%S %p")
    window = list(client.backup_jobs.list(VAULT, RG, filter=f"startTime eq '{start}' and endTime eq '{end}'"))
    assert window and all(j.properties.entity_friendly_name == "hist01" for j in window)
    # list entries carry neither flag nor container (ListJobsWithAllSupportedFilters.json); details do
    assert {(j.properties.is_user_triggered, j.properties.container_name) for j in jobs} == {(None, None)}
    hist = [client.job_details.get(VAULT, RG, j.name) for j in jobs if j.properties.entity_friendly_name == "hist01"]
    assert {j.properties.is_user_triggered for j in hist} == {True, False}
    assert {j.properties.container_name for j in hist} == {"iaasvmcontainerv2;rg-app;hist01"}


def test_policies(client: Any) -> None:
    names = {p.name for p in client.backup_policies.list(VAULT, RG)}
    assert names == {"daily", "weekly"}
    weekly = client.protection_policies.get(VAULT, RG, "weekly").properties
    assert weekly["timeZone"] == "Tokyo Standard Time"
    assert weekly["schedulePolicy"]["scheduleRunFrequency"] == "Weekly"
    assert weekly["instantRpRetentionRangeInDays"] == 2


# --- structure against the spec's examples ---------------------------------------------------------
def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def assert_same_shape(expected: Any, actual: Any, where: str = "$") -> None:
    """Every key of the example is present with a value of the same JSON type (null matches any)."""
    if expected is None:
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}: missing key {key!r}"
            assert_same_shape(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and actual, f"{where}: expected a non-empty array"
        assert_same_shape(expected[0], actual[0], f"{where}[0]")
    elif isinstance(expected, bool):
        assert isinstance(actual, bool), f"{where}: expected a boolean"
    elif isinstance(expected, int | float):
        assert isinstance(actual, int | float) and not isinstance(actual, bool), f"{where}: expected a number"
    else:
        assert isinstance(actual, type(expected)), f"{where}: expected {type(expected).__name__}, got {actual!r}"


def test_shapes_match_spec_examples(emu: Emulator, client: Any) -> None:
    vm = "flow01"
    item_path = f"{vault_path()}/backupFabrics/Azure/protectionContainers/{container(vm)}/protectedItems/{item(vm)}"
    headers = trigger(client, vm)
    for name in example("TriggerBackup_Post.json")["responses"]["202"]["headers"]:
        assert name in headers
    status = emu.raw(client, "GET", f"{item_path}/operationsStatus/{operation_id(headers)}").json()
    assert_same_shape(example("ProtectedItemOperationStatus.json")["responses"]["200"]["body"], status)
    job = emu.raw(client, "GET", f"{vault_path()}/backupJobs/{status['properties']['jobId']}").json()
    assert_same_shape(example("GetJobDetails.json")["responses"]["200"]["body"], job)
    listed = emu.raw(client, "GET", f"{vault_path()}/backupJobs").json()
    assert_same_shape(example("ListJobsWithAllSupportedFilters.json")["responses"]["200"]["body"], listed)
    got = emu.raw(client, "GET", item_path).json()
    assert_same_shape(example("Compute_ProtectedItem_Get.json")["responses"]["200"]["body"], got)
    items = emu.raw(
        client, "GET", f"{vault_path()}/backupProtectedItems?$filter=backupManagementType eq 'AzureIaasVM'"
    ).json()
    assert_same_shape(example("BackupProtectedItems_List.json")["responses"]["200"]["body"], items)
