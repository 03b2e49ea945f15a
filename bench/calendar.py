"""Where the benchmarks' clocks start: a fixed instant, so a figure never depends on the day it was
measured (a weekly scheduled backup or a month end falling into one run and not another)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

CLOCK_START = datetime(2027, 1, 4, 2, 0, tzinfo=timezone.utc)  # a Monday
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def far_policy_day(start: datetime = CLOCK_START) -> str:
    """A weekly policy day three days after ``start``: never reached in a benchmark's run."""
    return DAYS[(start + timedelta(days=3)).weekday()]
