"""Ad hoc-only operation with protection stopped between backups piles up restore points (no GC while
stopped) until UserErrorRpCollectionLimitReached; resuming protection lets GC clean up and backups
succeed again (docs/domain.md). Real SDK over HTTPS, manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backup_chain.backup_error_codes import symbolic_code
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
    trigger,
    utcnow,
    vm_entry,
)

VM = "adhoc01"


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    vms = [vm_entry(VM, "weekly", snapshotMinutes=[1, 1], transferMinutes=[1, 1])]
    # These tests follow jobs, not the trigger's operation (its latency and the daily on-demand limit:
    # test_recoveryservices_trigger.py); 19 backups in a few hours pile up the 18 snapshots.
    instant = {"operationSeconds": 0, "onDemandPerDay": 30}
    body = scenario(vms, far_policies(utcnow()), backupTrigger=instant)
    yield from start_emulator(tmp_path_factory.mktemp("rs-gc"), body)


def backup_once(emu: Emulator, client: Any) -> str:
    job_id = op_status(client, VM, operation_id(trigger(client, VM))).properties.job_id
    emu.advance(150)
    return str(client.job_details.get(VAULT, RG, job_id).properties.status)


def instant_snapshots(client: Any) -> int:
    points = client.recovery_points.list(VAULT, RG, "Azure", container(VM), item(VM))
    return sum(
        1
        for p in points
        for tier in p.properties["recoveryPointTierDetails"]
        if tier["type"] == "InstantRP" and tier["status"] == "Valid"
    )


def test_stopped_protection_piles_up_until_limit_then_gc_recovers(emu: Emulator) -> None:
    client = emu.client()
    stop_protection(client, VM)
    for _ in range(18):  # resume -> back up -> stop again, as the documented ad hoc-only workaround
        resume_protection(client, VM, "weekly")
        assert backup_once(emu, client) == "Completed"
        stop_protection(client, VM)
    assert instant_snapshots(client) == 18

    resume_protection(client, VM, "weekly")
    job_id = op_status(client, VM, operation_id(trigger(client, VM))).properties.job_id
    emu.advance(200)
    job = client.job_details.get(VAULT, RG, job_id)
    assert job.properties.status == "Failed"
    # AzureIaaSVMErrorInfo as the SDK reads it: an int code, the entity as title, the documented
    # message, which names the symbolic code (backup_error_codes).
    error = job.properties.error_details[0]
    assert isinstance(error.error_code, int) and error.error_title == VM
    assert symbolic_code(error.error_code, error.error_string) == "UserErrorRpCollectionLimitReached"
    assert error.recommendations and "Restore Point collection max limit" in error.error_string
    assert [t.status for t in job.properties.extended_info.tasks_list] == ["Failed", "NotStarted"]

    emu.advance(3 * 86400)  # protection on: the daily GC runs and drops snapshots older than 2 days
    assert instant_snapshots(client) == 0
    assert backup_once(emu, client) == "Completed"
