"""Enhanced (V2) policies, Windows time zones, several subscriptions and the strict scenario schema
in the Recovery Services emulator, through the real SDK on a manual clock (starts Monday
2027-01-04 03:00 UTC)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

from emulators.credential import StaticTokenCredential
from emulators.recoveryservices.scenario import ScenarioError, parse
from tests.integration.rs_support import (
    RG,
    SUB,
    TOKEN,
    VAULT,
    Emulator,
    container,
    item,
    scenario,
    start_emulator,
    vm_entry,
)

SUB2 = "99999999-8888-7777-6666-555555555555"
VAULT2 = "vault-other"
FAST = {"snapshotMinutes": [5, 6], "transferMinutes": [30, 40]}
POLICIES: list[dict[str, Any]] = [
    # 08:00 IST (UTC+5:30) every 4 h for 16 h: 02:30, 06:30, 10:30, 14:30 UTC (IaaS_v2_hourly.json)
    {
        "name": "hourly-ist",
        "policyType": "V2",
        "frequency": "Hourly",
        "time": "08:00",
        "intervalHours": 4,
        "windowHours": 16,
        "timeZone": "India Standard Time",
        "instantRpRetentionDays": 7,
    },
    # Wednesday 02:00 in New Zealand (UTC+13 in January): Tuesday 13:00 UTC
    {
        "name": "weekly-nz",
        "policyType": "V2",
        "frequency": "Weekly",
        "days": ["Wednesday"],
        "time": "02:00",
        "timeZone": "New Zealand Standard Time",
    },
    {
        "name": "daily-sea",
        "policyType": "V2",
        "frequency": "Daily",
        "time": "10:00",
        "timeZone": "SE Asia Standard Time",
    },
]


def _client(emu: Emulator, subscription: str, **kwargs: Any) -> Any:
    kwargs.setdefault("polling_interval", 0.01)
    return RecoveryServicesBackupClient(
        StaticTokenCredential(TOKEN), subscription, base_url=emu.url, connection_verify=emu.ca, **kwargs
    )


def _body() -> dict[str, Any]:
    body = scenario(
        [vm_entry("hourly01", "hourly-ist", **FAST), vm_entry("weekly01", "weekly-nz", **FAST)],
        copy.deepcopy(POLICIES),
        lateScheduleRate=0.0,
    )
    body["vaults"].append(
        {
            "subscriptionId": SUB2,
            "resourceGroup": RG,
            "name": VAULT2,
            "policies": [{"name": "weekly-cet", "frequency": "Weekly", "days": ["Sunday"], "time": "03:00"}],
            "vms": [vm_entry("other01", "weekly-cet", **FAST)],
        }
    )
    return body


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    yield from start_emulator(tmp_path_factory.mktemp("rs-policies"), _body())


def _scheduled_starts(emu: Emulator, vm: str) -> list[datetime]:
    client = emu.client()
    listed = [j for j in client.backup_jobs.list(VAULT, RG) if j.properties.entity_friendly_name == vm]
    details = [client.job_details.get(VAULT, RG, j.name).properties for j in listed]
    return sorted(d.start_time for d in details if d.is_user_triggered is False)


def test_v2_policies_answer_simple_schedule_policy_v2(emu: Emulator) -> None:
    client = emu.client()
    hourly = client.protection_policies.get(VAULT, RG, "hourly-ist").properties
    assert hourly.policy_type == "V2"
    assert hourly.time_zone == "India Standard Time"
    schedule = hourly.schedule_policy
    assert (schedule.schedule_policy_type, schedule.schedule_run_frequency) == ("SimpleSchedulePolicyV2", "Hourly")
    assert (schedule.hourly_schedule.interval, schedule.hourly_schedule.schedule_window_duration) == (4, 16)
    assert schedule.hourly_schedule.schedule_window_start_time.strftime("%H:%M") == "08:00"
    assert hourly.instant_rp_retention_range_in_days == 7
    weekly = client.protection_policies.get(VAULT, RG, "weekly-nz").properties.schedule_policy
    assert weekly.weekly_schedule.schedule_run_days == ["Wednesday"]
    assert [t.strftime("%H:%M") for t in weekly.weekly_schedule.schedule_run_times] == ["02:00"]
    daily = client.protection_policies.get(VAULT, RG, "daily-sea").properties.schedule_policy
    assert [t.strftime("%H:%M") for t in daily.daily_schedule.schedule_run_times] == ["10:00"]
    policies = client.backup_policies.list(VAULT, RG)
    listed = {p.name: p.properties.schedule_policy.schedule_policy_type for p in policies}
    assert listed == dict.fromkeys(("hourly-ist", "weekly-nz", "daily-sea"), "SimpleSchedulePolicyV2")


def test_protected_item_carries_policy_id_and_type_but_no_policy_name(emu: Emulator) -> None:
    found = emu.client().protected_items.get(VAULT, RG, "Azure", container("hourly01"), item("hourly01"))
    props = found.as_dict()["properties"]
    assert props["policyId"].endswith("/backupPolicies/hourly-ist")
    assert props["policyType"] == "V2"
    assert "policyName" not in props  # Compute_ProtectedItem_Get.json has none


def test_second_subscription_serves_its_own_vault(emu: Emulator) -> None:
    other = _client(emu, SUB2)
    props = other.protected_items.get(VAULT2, RG, "Azure", container("other01"), item("other01")).properties
    assert props.policy_id.startswith(f"/subscriptions/{SUB2}/resourceGroups/{RG}/")
    with pytest.raises(ResourceNotFoundError):
        emu.client().protected_items.get(VAULT2, RG, "Azure", container("other01"), item("other01"))
    with pytest.raises(ResourceNotFoundError):
        other.protected_items.get(VAULT, RG, "Azure", container("hourly01"), item("hourly01"))


def test_hourly_and_weekly_v2_schedules_run_at_their_zone_times(emu: Emulator) -> None:
    # runs on the shared clock after the read-only tests above
    start = emu.now()
    assert start == datetime(2027, 1, 4, 3, tzinfo=timezone.utc)
    emu.advance(timedelta(hours=34, minutes=30).total_seconds())  # to Tuesday 13:30 UTC
    runs = [datetime(2027, 1, 4, h, 30, tzinfo=timezone.utc) for h in (6, 10, 14)]
    runs.append(datetime(2027, 1, 5, 2, 30, tzinfo=timezone.utc))
    runs.append(datetime(2027, 1, 5, 6, 30, tzinfo=timezone.utc))
    runs.append(datetime(2027, 1, 5, 10, 30, tzinfo=timezone.utc))
    hourly = _scheduled_starts(emu, "hourly01")
    assert len(hourly) == len(runs)
    for started, due in zip(hourly, runs, strict=True):
        assert due + timedelta(minutes=5) <= started <= due + timedelta(minutes=20)
    (weekly,) = _scheduled_starts(emu, "weekly01")
    due = datetime(2027, 1, 5, 13, tzinfo=timezone.utc)
    assert due + timedelta(minutes=5) <= weekly <= due + timedelta(minutes=20)


def test_throttling_buckets_are_per_subscription(tmp_path: Path) -> None:
    body = _body()
    body["throttling"] = {"enabled": True, "reads": {"bucket": 3, "refillPerSecond": 0.001}}
    for emu in start_emulator(tmp_path, body):
        other = _client(emu, SUB2, retry_total=0)
        for _ in range(3):
            other.protection_policies.get(VAULT2, RG, "weekly-cet")
        with pytest.raises(HttpResponseError) as err:
            other.protection_policies.get(VAULT2, RG, "weekly-cet")
        assert err.value.status_code == 429
        assert f"subscription '{SUB2}'" in str(err.value.message)
        # the first subscription's bucket is untouched
        assert emu.client(retry_total=0).protection_policies.get(VAULT, RG, "daily-sea").name == "daily-sea"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda b: b["vaults"][0]["vms"][1].setdefault("faults", {}).update(snapshotFailRate=0.5),
            "vaults[0].vms[1].faults.snapshotFailRate: extra inputs are not permitted",
        ),
        (lambda b: b.update(seeed=3), "seeed: extra inputs are not permitted"),
        (
            lambda b: b["vaults"][0]["policies"][0].update(timeZone="Mars Standard Time"),
            "vaults[0].policies[0].timeZone: unknown time zone 'Mars Standard Time'",
        ),
        (
            lambda b: b["vaults"][0]["policies"][0].update(intervalHours=5),
            "vaults[0].policies[0].intervalHours: must be one of (4, 6, 8, 12), got 5",
        ),
        (
            lambda b: b["vaults"][0]["policies"][0].update(windowHours=25),
            "vaults[0].policies[0].windowHours: must be intervalHours..24, got 25",
        ),
        (
            lambda b: b["vaults"][0]["policies"][0].update(policyType="V1"),
            "vaults[0].policies[0].frequency: a V1 policy runs Daily or Weekly, got 'Hourly'",
        ),
        (
            lambda b: b["vaults"][0]["policies"][1].update(intervalHours=4),
            "vaults[0].policies[1]: intervalHours and windowHours belong to an Hourly policy",
        ),
        (lambda b: b["vaults"][1].update(subscription="x"), "vaults[1].subscription: extra inputs are not permitted"),
        (
            lambda b: b["vaults"][0]["vms"][0].update(snapshotMinutes="fast"),
            "vaults[0].vms[0].snapshotMinutes: input should be a valid list",
        ),
    ],
)
def test_scenario_refuses_bad_keys_naming_the_path(mutate: Any, message: str) -> None:
    body = _body()
    mutate(body)
    with pytest.raises(ScenarioError) as err:
        parse(body)
    assert message in str(err.value)


def test_scenario_hands_the_keys_other_modules_validate_to_them() -> None:
    body = _body()
    body["backupTrigger"] = {"onDemandPerDay": 3}
    body["vaults"][0]["resourceGuard"] = {"name": "guard", "excludedOperations": []}
    body["vaults"][1]["resourceGuard"] = True
    parsed = parse(body)
    assert [v.subscription_id for v in parsed.vaults] == [SUB, SUB2]
    assert parsed.vaults[0].policies[0].interval_hours == 4
    assert parsed.trigger_rules.on_demand_per_day == 3
    guards = [v.resource_guard for v in parsed.vaults]
    assert guards[0] is not None and guards[0].name == "guard" and guards[1] is not None
    # their modules' own checks still name the bad key
    body["backupTrigger"] = {"anything": 1}
    with pytest.raises(ScenarioError, match=r"backupTrigger\.anything: unknown key"):
        parse(body)
