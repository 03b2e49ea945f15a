"""The start instants that matter to a backup calendar, named, for the calendar matrix.

The tests' weekly policy runs Wednesday 02:00 UTC, the weekend GC window opens Saturday 00:00; the
week below is the one after the test support's DEFAULT_START (Monday 2027-01-04)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


WEEK = utc(2027, 1, 4)  # a Monday

# Each weekday, ten minutes before and after 02:00 UTC (the weekly policy's time on Wednesday).
WEEKDAYS = {
    f"{name}-{label}": WEEK + timedelta(days=offset, hours=hour, minutes=minute)
    for offset, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    for label, hour, minute in (("0150", 1, 50), ("0210", 2, 10))
}

EDGES = {
    # minutes around the weekly policy time (Wednesday 02:00) and its 2 h start allowance
    "wed-0159": utc(2027, 1, 6, 1, 59),
    "wed-0200": utc(2027, 1, 6, 2, 0),
    "wed-0201": utc(2027, 1, 6, 2, 1),
    "wed-0359": utc(2027, 1, 6, 3, 59),
    "wed-0401": utc(2027, 1, 6, 4, 1),
    "fri-2200": utc(2027, 1, 8, 22, 0),
    "sat-0145": utc(2027, 1, 9, 1, 45),
    # month ends (one in a leap February) and the year end
    "jan-31-2350": utc(2027, 1, 31, 23, 50),
    "feb-28-2350": utc(2027, 2, 28, 23, 50),
    "leap-feb-29-2350": utc(2028, 2, 29, 23, 50),
    "dec-31-2350": utc(2027, 12, 31, 23, 50),
    # Europe/Berlin's changes: 2027-03-28 01:00 UTC (02:00 CET -> 03:00 CEST) and
    # 2027-10-31 01:00 UTC (03:00 CEST -> 02:00 CET), five minutes either side
    "dst-spring-before": utc(2027, 3, 28, 0, 55),
    "dst-spring-after": utc(2027, 3, 28, 1, 5),
    "dst-autumn-before": utc(2027, 10, 31, 0, 55),
    "dst-autumn-after": utc(2027, 10, 31, 1, 5),
}

ALL = {**WEEKDAYS, **EDGES}
