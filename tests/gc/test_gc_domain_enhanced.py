"""PolicySchedule.from_policy on V1 and Enhanced (V2) policy JSON as the spec examples show it
(azure-rest-api-specs recoveryservicesbackup 2025-08-01 examples: V2Policy/IaaS_v2_hourly.json,
IaaS_v2_daily.json, ProtectionPolicies_CreateOrUpdate_Simple.json), and what the GC core makes of it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from backup_chain.gc import PolicySchedule, assess

MONDAY = datetime(2027, 1, 4, 0, 0, tzinfo=timezone.utc)
LAST_JOB = {"jobId": "j1", "status": "Completed", "startTime": "2027-01-03T23:00:00Z"}


def _policy(schedule: dict[str, Any], zone: str = "India Standard Time") -> dict[str, Any]:
    return {
        "name": "p",
        "properties": {"backupManagementType": "AzureIaasVM", "schedulePolicy": schedule, "timeZone": zone},
    }


HOURLY = _policy(
    {
        "hourlySchedule": {
            "interval": 4,
            "scheduleWindowDuration": 16,
            "scheduleWindowStartTime": "2021-12-17T08:00:00Z",
        },
        "schedulePolicyType": "SimpleSchedulePolicyV2",
        "scheduleRunFrequency": "Hourly",
    }
)
DAILY = _policy(
    {
        "dailySchedule": {"scheduleRunTimes": ["2018-01-24T10:00:00Z"]},
        "schedulePolicyType": "SimpleSchedulePolicyV2",
        "scheduleRunFrequency": "Daily",
    }
)
WEEKLY = _policy(
    {
        "weeklySchedule": {"scheduleRunDays": ["Wednesday"], "scheduleRunTimes": ["2018-01-24T02:00:00Z"]},
        "schedulePolicyType": "SimpleSchedulePolicyV2",
        "scheduleRunFrequency": "Weekly",
    },
    zone="New Zealand Standard Time",
)
V1_WEEKLY = _policy(
    {
        "schedulePolicyType": "SimpleSchedulePolicy",
        "scheduleRunFrequency": "Weekly",
        "scheduleRunDays": ["Wednesday"],
        "scheduleRunTimes": ["2018-01-24T02:00:00Z"],
        "scheduleWeeklyFrequency": 0,
    },
    zone="New Zealand Standard Time",
)


def _utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 1, day, hour, minute, tzinfo=timezone.utc)


def test_hourly_runs_every_interval_inside_the_window_in_its_zone() -> None:
    schedule = PolicySchedule.from_policy(HOURLY)
    assert (schedule.frequency, schedule.times, schedule.interval_hours, schedule.window_hours) == (
        "Hourly",
        ("08:00",),
        4,
        16,
    )
    assert schedule.weekly_or_better
    # 08:00, 12:00, 16:00, 20:00 IST (UTC+5:30)
    day = [_utc(4, 2, 30), _utc(4, 6, 30), _utc(4, 10, 30), _utc(4, 14, 30)]
    assert schedule.occurrences(MONDAY, MONDAY + timedelta(days=1)) == day
    assert len(schedule.occurrences(MONDAY, MONDAY + timedelta(days=7))) == 28
    assert schedule.collides(_utc(4, 12, 0), timedelta(hours=3)) == _utc(4, 10, 30)
    assert schedule.collides(_utc(4, 16, 31), timedelta(hours=3)) is None  # the window is closed until 02:30


def test_a_window_past_midnight_runs_into_the_next_day() -> None:
    late = PolicySchedule("Hourly", (), ("20:00",), "UTC", interval_hours=6, window_hours=12)
    assert late.occurrences(_utc(4, 0), _utc(5, 0)) == [_utc(4, 2), _utc(4, 20)]


def test_daily_and_weekly_v2_match_their_v1_reading() -> None:
    daily = PolicySchedule.from_policy(DAILY)
    assert (daily.frequency, daily.times, daily.days) == ("Daily", ("10:00",), ())
    assert daily.occurrences(MONDAY, MONDAY + timedelta(days=1)) == [_utc(4, 4, 30)]
    v2 = PolicySchedule.from_policy(WEEKLY)
    v1 = PolicySchedule.from_policy(V1_WEEKLY)
    assert v2 == v1 == PolicySchedule("Weekly", ("Wednesday",), ("02:00",), "New Zealand Standard Time")
    assert v2.occurrences(MONDAY, MONDAY + timedelta(days=7)) == [_utc(5, 13)]  # Wed 02:00 NZDT


def test_the_dict_form_the_activities_pass_round_trips() -> None:
    schedule = PolicySchedule.from_policy(HOURLY)
    assert PolicySchedule.from_dict(schedule.to_dict()) == schedule


def _inspection(schedule: PolicySchedule) -> dict[str, Any]:
    return {
        "protectionState": "Protected",
        "schedule": schedule.to_dict(),
        "lastScheduledJob": LAST_JOB,
        "instantSnapshots": 3,
    }


def test_an_enhanced_policy_raises_no_false_gc_overdue() -> None:
    for policy in (HOURLY, DAILY, WEEKLY):
        assert assess(_inspection(PolicySchedule.from_policy(policy)), MONDAY, near_limit=15) == []


def test_an_hourly_policy_without_interval_schedules_nothing() -> None:
    broken = PolicySchedule("Hourly", (), ("08:00",), "UTC", interval_hours=0, window_hours=16)
    assert [f.code for f in assess(_inspection(broken), MONDAY, near_limit=15)] == ["scheduleNotWeekly"]


def test_an_unknown_zone_is_a_finding_naming_it() -> None:
    schedule = PolicySchedule("Weekly", ("Wednesday",), ("02:00",), "Mars Standard Time")
    (finding,) = assess(_inspection(schedule), MONDAY, near_limit=15)
    assert (finding.kind, finding.code) == ("PolicyUnreadable", "unknownTimeZone")
    assert "'Mars Standard Time'" in finding.reason
