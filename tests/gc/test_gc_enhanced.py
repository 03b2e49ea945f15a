"""Enhanced (V2) policies and Windows time zones end to end on devhost + emulators: the weekly check
reads V2 schedules (no false GcOverdue), overlap detection fires on V2 runs at their zone's UTC
instant, the weekend window holds a V2 policy, and a zone the app cannot map fails clearly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from demo.stack import SUBSCRIPTION, Stack
from harness.chain_stack import DEFAULT_START, WEEKLY, chain, of_type, run_to_end, running_stack, vm

SCHEDULED_OK = {"hoursAgo": 30, "userTriggered": False, "status": "Completed", "snapshotCollected": True}


def _v2(name: str, frequency: str, time: str, zone: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "policyType": "V2", "frequency": frequency, "time": time, "timeZone": zone, **extra}


# The clock starts Monday 2027-01-04 03:00 UTC. An ad hoc backup then (3 h, and a scheduled run may
# start up to 2 h late) collides with a run due in (01:00, 06:00) UTC. Each zone policy below runs in
# that span only if its Windows zone is read right (read as UTC, none would collide).
POLICIES = [
    WEEKLY,
    # 08:00 IST every 4 h for 16 h: 02:30, 06:30, 10:30, 14:30 UTC
    _v2("enh-hourly", "Hourly", "08:00", "India Standard Time", intervalHours=4, windowHours=16),
    _v2("enh-eet", "Weekly", "06:30", "E. Europe Standard Time", days=["Monday"]),  # 04:30 UTC (UTC+2)
    _v2("enh-cet", "Daily", "06:30", "Central European Standard Time"),  # 05:30 UTC (UTC+1)
    _v2("enh-nz", "Weekly", "17:00", "New Zealand Standard Time", days=["Monday"]),  # 04:00 UTC (UTC+13)
    _v2("enh-sea", "Daily", "10:00", "SE Asia Standard Time"),  # 03:00 UTC (UTC+7)
    _v2("enh-sea-late", "Daily", "20:00", "SE Asia Standard Time"),  # 13:00 UTC: clear
    # A zone id newer than the app's CLDR map; the emulated service runs it as UTC
    {
        "name": "mars",
        "frequency": "Weekly",
        "days": ["Wednesday"],
        "time": "02:00",
        "timeZone": "Mars Standard Time",
        "timeZoneIana": "UTC",
    },
]
COLLIDES_AT = {
    "hour01": "2027-01-04T02:30:00",
    "eet01": "2027-01-04T04:30:00",
    "cet01": "2027-01-04T05:30:00",
    "nz01": "2027-01-04T04:00:00",
    "sea01": "2027-01-04T03:00:00",
    "never01": "2027-01-04T05:30:00",
    "busy01": "2027-01-04T05:30:00",
}
VMS = {
    "hour01": "enh-hourly",
    "eet01": "enh-eet",
    "cet01": "enh-cet",
    "nz01": "enh-nz",
    "sea01": "enh-sea",
    "late01": "enh-sea-late",
    "mars01": "mars",
    "never01": "enh-cet",
    "busy01": "enh-cet",
}


def _scenario(vms: list[dict[str, Any]]) -> dict[str, Any]:
    vault = {"resourceGroup": "rg-backup", "name": "v1", "location": "japaneast", "policies": POLICIES, "vms": vms}
    return {"subscriptionId": SUBSCRIPTION, "seed": 11, "lateScheduleRate": 0.0, "vaults": [vault]}


def _vm(name: str) -> dict[str, Any]:
    history: list[dict[str, Any]] = [] if name == "never01" else [dict(SCHEDULED_OK)]
    if name == "busy01":  # more user-triggered jobs in 8 days than the check reads details of
        history = [{"hoursAgo": 2 + h, "userTriggered": True, "snapshotCollected": True} for h in range(25)]
    if name == "hour01":  # newer user-triggered jobs: the check must read past them to the scheduled one
        history = [{"hoursAgo": 3, "userTriggered": False, "status": "Completed", "snapshotCollected": True}]
        history += [{"hoursAgo": h, "userTriggered": True, "status": "Completed"} for h in (1, 2)]
    return vm(name, policy=VMS[name], history=history)


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [_vm(name) for name in VMS]
    chains = [chain("zones", list(VMS))]  # GC checks the VMs chains name
    gc = {"mode": "weekly-policy", "overlap": "refuse"}
    with running_stack(tmp_path_factory.mktemp("gcv2"), _scenario(vms), chains, gc=gc) as running:
        yield running


def _gc_events(stack: Stack) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for event in stack.downstream():
        kind = str(event["type"]).split(".", 1)[1]
        if kind in ("GcOverdue", "RestorePointsNearLimit", "PolicyUnreadable", "GcCheckFailed"):
            name = str(event["data"]["vmId"]).rsplit("/", 1)[-1]
            out.setdefault(name, []).append((kind, str(event["data"].get("finding"))))
    return out


def test_weekly_check_reads_enhanced_policies_and_flags_an_unknown_zone(checked: Stack) -> None:
    assert checked.clock.now() == DEFAULT_START
    assert checked.api("POST", "gc/run", {"kind": "check"}).status_code == 202
    checked.run_until(lambda: checked.api("GET", "gc").json()["vms"][0]["lastCheck"], step=5, limit=600, what="check")
    found = _gc_events(checked)
    # no false GcOverdue for any Enhanced policy; one that has no scheduled backup still gets one
    assert found == {
        "mars01": [("PolicyUnreadable", "unknownTimeZone")],
        "never01": [("GcOverdue", "noScheduledBackup")],
        "busy01": [("GcCheckFailed", "None")],  # reported, not guessed
    }
    (busy,) = of_type(checked.downstream(), "GcCheckFailed", "busy01")
    assert busy["data"]["errorCode"] == "TooManyJobsToInspect"
    event = of_type(checked.downstream(), "PolicyUnreadable", "mars01")[0]
    assert "'Mars Standard Time'" in event["data"]["reason"]
    status = {v["vmId"].rsplit("/", 1)[-1]: v["lastCheck"] for v in checked.api("GET", "gc").json()["vms"]}
    # the scheduled job 3 h ago, found through JobDetails_Get behind two newer user-triggered jobs
    assert status["hour01"]["lastScheduledJob"]["startTime"].startswith("2027-01-04T00:00:00")
    assert status["hour01"]["policy"] == "enh-hourly"  # from policyId: items carry no policyName


def test_overlap_fires_at_each_zones_utc_instant_and_an_unknown_zone_fails_clearly(checked: Stack) -> None:
    assert checked.api("POST", "chains/zones/runs", {"runId": "zones"}).status_code == 202
    events = run_to_end(checked, "zones")
    for name, scheduled in COLLIDES_AT.items():
        (failed,) = of_type(events, "BackupFailed", name)
        assert failed["data"]["errorCode"] == "OverlapsScheduledBackup", name
        assert f"scheduled backup at {scheduled}" in failed["data"]["message"], name
    (mars,) = of_type(events, "BackupFailed", "mars01")
    assert mars["data"]["errorCode"] == "UnknownPolicyTimeZone"
    assert mars["data"]["phase"] == "trigger"
    assert "'Mars Standard Time'" in mars["data"]["message"]
    assert len(of_type(events, "BackupCompleted", "late01")) == 1  # clear of its V2 schedule


WINDOW = {"mode": "weekend-window", "day": "Saturday", "at": "00:00", "windowHours": 48}
SATURDAY = datetime(2027, 1, 9, 0, 10, tzinfo=timezone.utc)


def test_weekend_window_with_an_enhanced_hourly_policy(tmp_path_factory: pytest.TempPathFactory) -> None:
    vms = [vm("win01", policy="enh-hourly", protected=False)]
    gc = {**WINDOW, "policy": "enh-hourly"}
    with running_stack(
        tmp_path_factory.mktemp("gcv2win"), _scenario(vms), [chain("win", ["win01"])], start=SATURDAY, gc=gc
    ) as stack:
        assert stack.api("POST", "gc/run", {"kind": "window"}).status_code == 202
        stack.run_until(lambda: of_type(stack.downstream(), "GcWindowOpened"), step=5, limit=600, what="window to open")
        (entry,) = stack.admin("recoveryservices", "GET", "/admin/items", params={"vm": "win01"})
        assert entry["protectionState"] in ("IRPending", "Protected") and entry["policy"] == "enh-hourly"
        assert "2027-01-09T02:35:00" <= entry["nextScheduledBackup"] <= "2027-01-09T02:50:00"  # 02:30 UTC + 5-20 min
        # 00:10 UTC: the 02:30 UTC hourly run is within reach -> refused
        assert stack.api("POST", "chains/win/runs", {"runId": "early"}).status_code == 202
        (failed,) = of_type(run_to_end(stack, "early"), "BackupFailed", "win01")
        assert failed["data"]["errorCode"] == "OverlapsScheduledBackup"
        assert "scheduled backup at 2027-01-09T02:30:00" in failed["data"]["message"]
        # 16:40 UTC: 2 h after the last run of the window (14:30), 9 h before the next (02:30)
        stack.advance((datetime(2027, 1, 9, 16, 40, tzinfo=timezone.utc) - stack.clock.now()).total_seconds())
        assert stack.api("POST", "chains/win/runs", {"runId": "clear"}).status_code == 202
        assert len(of_type(run_to_end(stack, "clear"), "BackupCompleted", "win01")) == 1


def test_weekend_window_backup_under_a_policy_in_an_unknown_zone_fails_naming_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    vms = [vm("zone01", policy="mars", protected=False)]
    gc = {**WINDOW, "policy": "mars"}
    with running_stack(
        tmp_path_factory.mktemp("gcv2mars"), _scenario(vms), [chain("mars", ["zone01"])], start=SATURDAY, gc=gc
    ) as stack:
        assert stack.api("POST", "chains/mars/runs", {"runId": "mars"}).status_code == 202
        events = run_to_end(stack, "mars")
        (failed,) = of_type(events, "BackupFailed", "zone01")
        assert failed["data"]["errorCode"] == "UnknownPolicyTimeZone"
        assert "'Mars Standard Time'" in failed["data"]["message"]
        assert of_type(events, "BackupTriggered", "zone01") == []
