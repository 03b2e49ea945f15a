"""Every Windows time zone Azure Backup policies can name (CLDR's windowsZones, as tzlocal ships
it): the app's and the emulator's next policy run, checked against a slow zoneinfo walk at policy
times around each zone's first DST change of 2027 (or a plain week where the zone has none)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from tzlocal.windows_tz import win_tz

from backup_chain.gc import WEEKDAYS, PolicySchedule, next_weekly
from backup_chain.timezones import UnknownTimeZone, known, zone
from emulators.recoveryservices.scenario import PolicySpec
from emulators.recoveryservices.scheduler import next_policy_time

STEP = timedelta(minutes=15)  # every zone's offset and change instant is a multiple of 15 minutes
YEAR_START = datetime(2027, 1, 1, tzinfo=timezone.utc)
TIMES = ("00:00", "00:30", "01:00", "02:00", "02:30", "03:00", "23:30")


def oracle(days: tuple[str, ...], at: str, tz: ZoneInfo, after: datetime) -> datetime:
    """Walk UTC in 15-minute steps and read the wall clock: the first pass of ``at`` on one of
    ``days`` strictly after ``after``; a wall time a change skips runs as far after the jump as it
    lay after the skipped span's start (fold 0, as the Recovery Services scheduler computes)."""
    target = time.fromisoformat(at)
    start = after - timedelta(hours=4)  # a skipped wall time's run can land after ``after`` though the jump came before
    moment = start - timedelta(minutes=start.minute % 15, seconds=start.second, microseconds=start.microsecond)
    previous = moment.astimezone(tz)
    while moment < after + timedelta(days=9):
        moment += STEP
        local = moment.astimezone(tz)
        assert local.utcoffset() is not None and local.utcoffset() % STEP == timedelta(0)  # type: ignore[operator]
        wall, expected = local.replace(tzinfo=None, fold=0), previous.replace(tzinfo=None, fold=0) + STEP
        previous = local
        on_time = wall == datetime.combine(wall.date(), target) and not local.fold
        if on_time and WEEKDAYS[wall.weekday()] in days and moment > after:
            return moment
        if expected < wall:  # a jump forward skipped [expected, wall)
            for date in sorted({expected.date(), wall.date()}):
                skipped = datetime.combine(date, target)
                shifted = moment + (skipped - expected)
                if WEEKDAYS[date.weekday()] in days and expected <= skipped < wall and shifted > after:
                    return shifted
    raise AssertionError(f"no run of {at} on {days} in {tz.key} within 9 days of {after}")


def first_change(tz: ZoneInfo) -> datetime | None:
    """The first UTC instant of 2027 at which ``tz``'s offset changes (None: no change)."""
    day = YEAR_START
    offset = day.astimezone(tz).utcoffset()
    while day < YEAR_START + timedelta(days=366):
        nxt = day + timedelta(days=1)
        if nxt.astimezone(tz).utcoffset() != offset:
            moment = day
            while moment.astimezone(tz).utcoffset() == offset:
                moment += STEP
            return moment
        day = nxt
    return None


def test_the_map_covers_the_zones_the_issue_names_and_every_target_exists() -> None:
    assert len(win_tz) > 130
    assert zone("E. Europe Standard Time").key == "Europe/Chisinau"
    assert zone("Central European Standard Time").key == "Europe/Warsaw"
    assert zone("New Zealand Standard Time").key == "Pacific/Auckland"
    assert zone("SE Asia Standard Time").key == "Asia/Bangkok"
    assert zone("Asia/Tokyo").key == "Asia/Tokyo"  # IANA names still work
    assert all(known(name) for name in win_tz)
    with pytest.raises(UnknownTimeZone, match="'Mars Standard Time'"):
        zone("Mars Standard Time")
    assert not known("") and not known("../etc/passwd")


@pytest.mark.parametrize("windows_name", sorted(win_tz))
def test_next_run_matches_the_zoneinfo_walk_across_a_dst_change(windows_name: str) -> None:
    tz = zone(windows_name)
    change = first_change(tz)
    around = change if change is not None else YEAR_START + timedelta(days=40)
    local_day = around.astimezone(tz).date()
    days = (WEEKDAYS[local_day.weekday()],)
    for at in TIMES:
        for after in (around - timedelta(days=1, minutes=7), around - timedelta(hours=1), around + timedelta(hours=1)):
            expected = oracle(days, at, tz, after)
            assert next_weekly(days[0], at, windows_name, after) == expected, (windows_name, at, after)
            schedule = PolicySchedule("Weekly", days, (at,), windows_name)
            assert schedule.occurrences(after + timedelta(microseconds=1), after + timedelta(days=9))[0] == expected
            spec = PolicySpec("p", "Weekly", days, at, windows_name, 30, 5, 2)
            assert next_policy_time(spec, after.timestamp()) == expected.timestamp(), (windows_name, at, after)
