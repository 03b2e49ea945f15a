"""When a policy's next scheduled backup runs: policy time in its (Windows) time zone, plus the
service's start delay (DOMAIN.md: scheduled backups start within 2 hours, usually 5-20 minutes)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from emulators.recoveryservices.scenario import DAYS, PolicySpec

# Windows time zone names (as Azure backup policies carry them) -> IANA names.
WINDOWS_TZ = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "India Standard Time": "Asia/Kolkata",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "Pacific Standard Time": "America/Los_Angeles",
    "Mountain Standard Time": "America/Denver",
    "Central Standard Time": "America/Chicago",
    "Eastern Standard Time": "America/New_York",
}


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(WINDOWS_TZ.get(name, name))
    except Exception:  # unknown name: fall back to UTC rather than refuse the scenario
        return ZoneInfo("UTC")


def next_policy_time(policy: PolicySpec, after: float) -> float:
    """The first policy run time strictly after ``after`` (POSIX seconds)."""
    tz = zone(policy.time_zone)
    hh, mm = (int(x) for x in policy.time.split(":"))
    local = datetime.fromtimestamp(after, tz=timezone.utc).astimezone(tz)
    day = local.date()
    for offset in range(0, 9):
        d = day + timedelta(days=offset)
        if policy.frequency == "Weekly" and DAYS[d.weekday()] not in policy.days:
            continue
        candidate = datetime(d.year, d.month, d.day, hh, mm, tzinfo=tz).timestamp()
        if candidate > after:
            return candidate
    raise AssertionError("a weekly policy always runs within 8 days")


def start_delay_seconds(rng: random.Random, usual: tuple[float, float], late_rate: float) -> float:
    """Delay between the policy time and the job's start: usually within ``usual`` minutes, rarely
    later, never beyond 2 hours (DOMAIN.md)."""
    if rng.random() < late_rate:
        return rng.uniform(usual[1], 120.0) * 60.0
    return rng.uniform(usual[0], usual[1]) * 60.0
