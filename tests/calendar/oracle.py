"""A slow, obviously right answer to "when does this policy run next": walk UTC time and read each
step's local wall time. Used to check the product's calendar arithmetic."""

from __future__ import annotations

from datetime import datetime, timedelta

from backup_chain.gc import WEEKDAYS
from backup_chain.timezones import zone as policy_zone

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def next_run(days: tuple[str, ...], at: str, tz: str, after: datetime, horizon: timedelta) -> datetime | None:
    """The first instant strictly after ``after`` (a whole minute) whose wall time in ``tz`` is
    ``at`` on one of ``days``. Two DST rules, as Azure Backup runs a policy once a day:

    - a wall time the spring change skips runs as far after the jump as it lay after the skipped
      hour's start (02:30 -> 03:30);
    - a wall time the autumn change repeats runs once, at its first occurrence."""
    assert after.second == 0 and after.microsecond == 0, "the oracle walks whole minutes"
    zone = policy_zone(tz)
    hour, minute = (int(p) for p in at.split(":"))
    # Start two hours early: a skipped wall time's run can land after ``after`` though the jump
    # came before it.
    moment, end = after - 2 * HOUR, after + horizon
    previous = moment.astimezone(zone)
    while moment <= end:
        # Minute steps up to the policy's minute, then hour steps: every zone used here is a whole
        # number of hours from UTC (asserted), so the policy's minute is the UTC minute.
        step = HOUR if moment.minute == minute and moment > after - 2 * HOUR else MINUTE
        moment += step
        local = moment.astimezone(zone)
        offset = local.utcoffset()
        assert offset is not None and offset % HOUR == timedelta(0)
        wall, before = local.replace(tzinfo=None), previous.replace(tzinfo=None)
        target = wall.replace(hour=hour, minute=minute)
        if WEEKDAYS[wall.weekday()] in days:
            if wall == target and not local.fold and moment > after:
                return moment
            expected_wall = before + step  # the wall time without a jump
            if before.date() == wall.date() and expected_wall < wall and expected_wall <= target < wall:
                shifted = moment + (target - expected_wall)
                if shifted > after:
                    return shifted
        previous = local
    return None
