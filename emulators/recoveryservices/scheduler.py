"""When a policy's next scheduled backup runs: policy time in its (Windows) time zone, plus the
service's start delay (scheduled backups start within 2 hours, usually 5-20 minutes: docs/domain.md)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from emulators.recoveryservices.scenario import DAYS, PolicySpec
from emulators.recoveryservices.timezones import zone


def _day_offsets(policy: PolicySpec) -> list[timedelta]:
    """Wall-clock run times from a run day's midnight. Hourly (Enhanced): the window start and every
    interval after it inside the window (IaaS_v2_hourly.json: interval 4, scheduleWindowDuration 16
    from 08:00 -> 08:00, 12:00, 16:00, 20:00); a run may fall on the next day."""
    hh, mm = (int(x) for x in policy.time.split(":"))
    first = timedelta(hours=hh, minutes=mm)
    if policy.frequency != "Hourly":
        return [first]
    return [first + timedelta(hours=h) for h in range(0, policy.window_hours, policy.interval_hours)]


def next_policy_time(policy: PolicySpec, after: float) -> float:
    """The first policy run time strictly after ``after`` (POSIX seconds)."""
    tz = zone(policy.time_zone_iana or policy.time_zone)
    offsets = _day_offsets(policy)
    local = datetime.fromtimestamp(after, tz=timezone.utc).astimezone(tz)
    day = local.date() - timedelta(days=1)  # an Hourly window opened yesterday may still run today
    candidates: list[float] = []
    for offset in range(0, 10):
        d = day + timedelta(days=offset)
        if policy.frequency == "Weekly" and DAYS[d.weekday()] not in policy.days:
            continue
        midnight = datetime(d.year, d.month, d.day)  # noqa: DTZ001 - a wall time, zoned below
        candidates.extend((midnight + run).replace(tzinfo=tz).timestamp() for run in offsets)
    return min(c for c in candidates if c > after)


def start_delay_seconds(rng: random.Random, usual: tuple[float, float], late_rate: float) -> float:
    """Delay between the policy time and the job's start: usually within ``usual`` minutes, rarely
    later, never beyond 2 hours (docs/domain.md)."""
    if rng.random() < late_rate:
        return rng.uniform(usual[1], 120.0) * 60.0
    return rng.uniform(usual[0], usual[1]) * 60.0
