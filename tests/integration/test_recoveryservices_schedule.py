"""Scheduled backups start inside their window after the policy time (usually 5-20 minutes) and are
not user-triggered; a scenario can start with a scheduled job already running. Real SDK, manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.integration.rs_support import RG, VAULT, Emulator, scenario, start_emulator, utcnow, vm_entry

START = utcnow().replace(second=0, microsecond=0)
POLICY_AT = START + timedelta(minutes=30)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    policies = [
        {
            "name": "daily",
            "frequency": "Daily",
            "time": POLICY_AT.strftime("%H:%M"),
            "timeZone": "UTC",
            "retentionDays": 7,
        }
    ]
    vms = [
        vm_entry("sched01", "daily"),
        vm_entry("busy01", None, protected=False, runningScheduledJob={"startedMinutesAgo": 3}),
    ]
    yield from start_emulator(tmp_path_factory.mktemp("rs-schedule"), scenario(vms, policies))


def jobs_for(emu: Emulator, vm: str) -> list[Any]:
    """The VM's jobs as JobDetails_Get answers them (list entries do not say isUserTriggered)."""
    client = emu.client()
    listed = client.backup_jobs.list(VAULT, RG)
    return [client.job_details.get(VAULT, RG, j.name) for j in listed if j.properties.entity_friendly_name == vm]


def test_running_scheduled_job_at_load(emu: Emulator) -> None:
    (job,) = jobs_for(emu, "busy01")
    assert job.properties.status == "InProgress"
    assert job.properties.is_user_triggered is False


def test_scheduled_job_starts_inside_its_window(emu: Emulator) -> None:
    now = emu.now()
    emu.advance((POLICY_AT - now).total_seconds() + 4 * 60)  # policy time + 4 min: not yet
    assert jobs_for(emu, "sched01") == []
    emu.advance(17 * 60)  # policy time + 21 min
    (job,) = jobs_for(emu, "sched01")
    assert job.properties.is_user_triggered is False
    started: datetime = job.properties.start_time
    assert POLICY_AT + timedelta(minutes=5) <= started <= POLICY_AT + timedelta(minutes=20)
    assert job.properties.status == "InProgress"
