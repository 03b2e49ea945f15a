"""The calendar matrix, pure part: the product's calendar arithmetic at the start instants that
matter (each weekday around the policy time, month and year ends, Europe/Berlin's DST changes),
checked against a minute-by-minute search, and the app's view of the schedule against the Recovery
Services emulator's."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from backup_chain.gc import SCHEDULE_START_SLACK, WEEKDAYS, PolicySchedule, assess, next_weekly
from backup_chain.windows import next_window
from emulators.recoveryservices.scenario import PolicySpec
from emulators.recoveryservices.scheduler import next_policy_time
from tests.calendar.instants import ALL, EDGES, utc
from tests.calendar.oracle import next_run

# (days, time, zone): the tests' weekly policy, the weekend GC window's time, policies in
# Europe/Berlin at and inside the hour the spring change skips (and the autumn one repeats), a
# Tokyo policy whose local Saturday starts on Friday in UTC, and a daily one.
POLICIES = {
    "wed-0200-utc": (("Wednesday",), "02:00", "UTC"),
    "sat-0000-utc": (("Saturday",), "00:00", "UTC"),
    "sun-0200-berlin": (("Sunday",), "02:00", "Europe/Berlin"),
    "sun-0230-w-europe": (("Sunday",), "02:30", "W. Europe Standard Time"),
    "sat-0000-tokyo": (("Saturday",), "00:00", "Tokyo Standard Time"),
    "daily-0230-berlin": (tuple(WEEKDAYS), "02:30", "Europe/Berlin"),
}
WEEKLY_POLICIES = {k: v for k, v in POLICIES.items() if len(v[0]) == 1}
HORIZON = timedelta(days=8)


def matrix(policies: dict[str, tuple[tuple[str, ...], str, str]]) -> list[object]:
    return [
        pytest.param(at, policy, id=f"{name}@{pname}") for name, at in ALL.items() for pname, policy in policies.items()
    ]


@pytest.mark.parametrize(("after", "policy"), matrix(WEEKLY_POLICIES))
def test_next_weekly_is_the_first_matching_wall_time(after: datetime, policy: tuple[tuple[str, ...], str, str]) -> None:
    days, at, tz = policy
    due = next_weekly(days[0], at, tz, after)
    assert due == next_run(days, at, tz, after, HORIZON)
    assert due.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("after", "policy"), matrix(POLICIES))
def test_app_and_emulator_agree_when_the_policy_runs(after: datetime, policy: tuple[tuple[str, ...], str, str]) -> None:
    """The app refuses ad hoc backups around the scheduled run the emulator starts: both must
    place that run at the same instant, in every zone and across DST changes."""
    days, at, tz = policy
    frequency = "Daily" if len(days) == 7 else "Weekly"
    spec = PolicySpec("p", frequency, days, at, tz, 30, 0, 2)
    expected = next_run(days, at, tz, after, HORIZON)
    assert expected is not None
    assert next_policy_time(spec, after.timestamp()) == expected.timestamp()
    schedule = PolicySchedule(frequency, days, (at,), tz)
    assert schedule.occurrences(after + timedelta(minutes=1), expected + timedelta(minutes=1)) == [expected]


@pytest.mark.parametrize("duration", [timedelta(minutes=20), timedelta(hours=3)], ids=["20min", "3h"])
@pytest.mark.parametrize(("start", "policy"), matrix(POLICIES))
def test_ad_hoc_backup_collides_exactly_when_it_overlaps_a_scheduled_run_or_its_start_allowance(
    start: datetime, policy: tuple[tuple[str, ...], str, str], duration: timedelta
) -> None:
    days, at, tz = policy
    schedule = PolicySchedule("Daily" if len(days) == 7 else "Weekly", days, (at,), tz)
    # The first scheduled run whose 2 h start allowance ends after the backup starts.
    first = next_run(days, at, tz, start - SCHEDULE_START_SLACK, HORIZON)
    assert first is not None
    expected = first if first < start + duration else None
    assert schedule.collides(start, duration) == expected


def test_the_matrix_holds_both_kinds_of_overlap_answer() -> None:
    """Guard for the test above: at the chosen instants the weekly policy both collides and not."""
    schedule = PolicySchedule("Weekly", ("Wednesday",), ("02:00",), "UTC")
    answers = {name: schedule.collides(at, timedelta(minutes=20)) for name, at in EDGES.items()}
    assert answers["wed-0159"] == answers["wed-0200"] == answers["wed-0359"] == utc(2027, 1, 6, 2)
    assert answers["wed-0401"] is None and answers["fri-2200"] is None


@pytest.mark.parametrize("now", list(ALL.values()), ids=list(ALL))
def test_gc_check_calls_a_scheduled_backup_overdue_just_after_seven_days_and_its_allowance(now: datetime) -> None:
    deadline = now - timedelta(days=7) - SCHEDULE_START_SLACK

    def overdue(started: datetime) -> bool:
        last = {"jobId": "j", "status": "Completed", "startTime": started.isoformat().replace("+00:00", "Z")}
        inspection = {"protectionState": "Protected", "lastScheduledJob": last, "instantSnapshots": 2}
        return [f.kind for f in assess(inspection, now, 15)] == ["GcOverdue"]

    assert not overdue(deadline + timedelta(minutes=1))
    assert not overdue(deadline)
    assert overdue(deadline - timedelta(minutes=1))


# Chain windows are NCRONTAB in UTC: (expression, after, the next opening).
WINDOWS = [
    ("0 0 1 * * *", utc(2027, 1, 6, 0, 50), utc(2027, 1, 6, 1)),  # daily 01:00, minutes before
    ("0 0 1 * * *", utc(2027, 1, 6, 1, 0), utc(2027, 1, 7, 1)),  # at the opening: the next day's
    ("0 0 1 * * *", utc(2027, 12, 31, 23, 50), utc(2028, 1, 1, 1)),  # across the year end
    ("0 0 1 * * *", utc(2028, 2, 28, 23, 50), utc(2028, 2, 29, 1)),  # into a leap day
    ("0 30 0 * * *", utc(2027, 3, 28, 0, 55), utc(2027, 3, 29, 0, 30)),  # DST elsewhere is no matter: UTC
    ("0 0 1 * * 1-5", utc(2027, 1, 8, 22, 0), utc(2027, 1, 11, 1)),  # weekdays only: Friday night -> Monday
    ("0 0 1 * * 1-5", utc(2027, 1, 9, 1, 45), utc(2027, 1, 11, 1)),  # Saturday -> Monday
    ("0 50 1 * * 3", utc(2027, 1, 6, 1, 49), utc(2027, 1, 6, 1, 50)),  # Wednesdays 01:50
    ("0 50 1 * * 3", utc(2027, 1, 6, 1, 50), utc(2027, 1, 13, 1, 50)),
    ("0 0 0 1 * *", utc(2027, 1, 31, 23, 50), utc(2027, 2, 1)),  # first of the month, across a month end
    ("0 0 0 1 * *", utc(2027, 12, 31, 23, 50), utc(2028, 1, 1)),
    ("0 */30 * * * *", utc(2027, 12, 31, 23, 50), utc(2028, 1, 1)),
]


@pytest.mark.parametrize(("expression", "after", "expected"), WINDOWS)
def test_chain_window_opens_next_at_the_right_instant(expression: str, after: datetime, expected: datetime) -> None:
    assert next_window(expression, after) == expected
