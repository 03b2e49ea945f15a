"""Garbage-collection enforcement as pure functions: when the weekly GC run is due, what a VM's
inspection means, whether an ad hoc backup would collide with the policy's scheduled one, and the
protection-lease state machine. Azure Backup collects old restore points only while protection is
on, so ad hoc-only backups need a weekly scheduled backup (``weekly-policy``) or a weekly
protection window (``weekend-window``) (docs/domain.md, docs/gc.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from backup_chain.timezones import known, zone

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
RP_COLLECTION_LIMIT = 18  # backups fail with UserErrorRpCollectionLimitReached at ~18 (docs/domain.md)
SCHEDULE_START_SLACK = timedelta(hours=2)  # scheduled backups start within 2 h of policy time
WEEK = timedelta(days=7)
# Protection states in which Azure Backup keeps running the item's schedule (and GC); IRPending is
# an item that has not had its first backup yet.
PROTECTION_ON = frozenset({"Protected", "IRPending", "ProtectionError"})


def protection_on(state: str | None) -> bool:
    return state in PROTECTION_ON


def _times(schedule: dict[str, Any]) -> tuple[str, ...]:
    """HH:MM of each ``scheduleRunTimes`` entry: Azure keeps the wall-clock time in a date-time
    (``2018-01-24T10:00:00Z``) and the zone in the policy's ``timeZone``."""
    return tuple(str(t)[11:16] for t in schedule.get("scheduleRunTimes") or [])


def next_weekly(day: str, at: str, tz: str, after: datetime) -> datetime:
    """The first ``day`` ``at`` (HH:MM in ``tz``) strictly after ``after``, in UTC.

    Compared in UTC, not as wall times: on the autumn change a wall-time comparison took the
    repeated hour's first pass for still ahead and answered a time already past. As the Recovery
    Services scheduler does (zoneinfo, fold 0), a repeated wall time runs once, at its first pass,
    and one the spring change skips runs that much after the jump (02:30 -> 03:30)."""
    local_zone = zone(tz)
    hour, minute = (int(p) for p in at.split(":"))
    today = after.astimezone(local_zone).date()
    first = today + timedelta(days=(WEEKDAYS.index(day) - today.weekday()) % 7)
    for week in range(2):
        date = first + week * WEEK
        candidate = datetime(date.year, date.month, date.day, hour, minute, tzinfo=local_zone).astimezone(timezone.utc)
        if candidate > after:
            return candidate
    raise AssertionError("a weekly time always comes within 8 days")


@dataclass(frozen=True)
class PolicySchedule:
    """When a policy's scheduled backups run, from a V1 (``SimpleSchedulePolicy``) or an Enhanced
    (``SimpleSchedulePolicyV2``) schedule."""

    frequency: str  # Hourly | Daily | Weekly
    days: tuple[str, ...]  # Weekly: the run days
    times: tuple[str, ...]  # HH:MM wall clock in time_zone; Hourly: the window start
    time_zone: str
    interval_hours: int = 0  # Hourly: hours between runs in the window
    window_hours: int = 0  # Hourly: the window's length from its start

    @classmethod
    def from_policy(cls, policy: dict[str, Any]) -> PolicySchedule:
        """Shapes as in azure-rest-api-specs recoveryservicesbackup examples
        ProtectionPolicies_CreateOrUpdate_Simple.json (V1) and V2Policy/IaaS_v2_hourly.json,
        IaaS_v2_daily.json (V2: hourlySchedule / dailySchedule / weeklySchedule)."""
        props = policy.get("properties") or {}
        schedule = props.get("schedulePolicy") or {}
        frequency = str(schedule.get("scheduleRunFrequency", ""))
        time_zone = str(props.get("timeZone") or "UTC")
        if schedule.get("schedulePolicyType") != "SimpleSchedulePolicyV2":
            return cls(frequency, tuple(schedule.get("scheduleRunDays") or ()), _times(schedule), time_zone)
        if frequency == "Hourly":
            hourly = schedule.get("hourlySchedule") or {}
            start = hourly.get("scheduleWindowStartTime")
            return cls(
                frequency,
                (),
                _times({"scheduleRunTimes": [start] if start else []}),
                time_zone,
                interval_hours=int(hourly.get("interval") or 0),
                window_hours=int(hourly.get("scheduleWindowDuration") or 0),
            )
        if frequency == "Weekly":
            weekly = schedule.get("weeklySchedule") or {}
            return cls(frequency, tuple(weekly.get("scheduleRunDays") or ()), _times(weekly), time_zone)
        return cls(frequency, (), _times(schedule.get("dailySchedule") or {}), time_zone)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frequency": self.frequency,
            "days": list(self.days),
            "times": list(self.times),
            "time_zone": self.time_zone,
            "interval_hours": self.interval_hours,
            "window_hours": self.window_hours,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicySchedule:
        return cls(
            str(data["frequency"]),
            tuple(data.get("days") or ()),
            tuple(data.get("times") or ()),
            str(data["time_zone"]),
            int(data.get("interval_hours") or 0),
            int(data.get("window_hours") or 0),
        )

    @property
    def weekly_or_better(self) -> bool:
        """Does the policy schedule at least one backup a week?"""
        if self.frequency == "Hourly":
            return bool(self.times) and self.interval_hours > 0 and self.window_hours > 0
        if self.frequency == "Daily":
            return bool(self.times)
        return self.frequency == "Weekly" and bool(self.days) and bool(self.times)

    def _day_offsets(self) -> list[timedelta]:
        """Wall-clock offsets from a run day's midnight. Hourly: the window start and every
        ``interval_hours`` after it while inside the window (a run may fall on the next day)."""
        offsets = []
        for text in self.times:
            hour, minute = (int(p) for p in text.split(":"))
            first = timedelta(hours=hour, minutes=minute)
            if self.frequency != "Hourly":
                offsets.append(first)
                continue
            step = 0
            while self.interval_hours > 0 and step < self.window_hours:
                offsets.append(first + timedelta(hours=step))
                step += self.interval_hours
        return offsets

    def occurrences(self, start: datetime, end: datetime) -> list[datetime]:
        """Scheduled backup times (UTC) in [start, end)."""
        offsets = self._day_offsets()
        if not offsets:
            return []
        out = []
        local_zone = zone(self.time_zone)
        day = start.astimezone(local_zone).date() - timedelta(days=2)
        while True:
            if self.frequency != "Weekly" or WEEKDAYS[day.weekday()] in self.days:
                midnight = datetime(day.year, day.month, day.day)  # noqa: DTZ001 - a wall time, zoned below
                for offset in offsets:
                    moment = (midnight + offset).replace(tzinfo=local_zone).astimezone(timezone.utc)
                    if start <= moment < end:
                        out.append(moment)
            if datetime(day.year, day.month, day.day, tzinfo=local_zone) > end:
                return sorted(set(out))
            day += timedelta(days=1)

    def collides(self, start: datetime, duration: timedelta) -> datetime | None:
        """The scheduled backup an ad hoc backup running [start, start + duration) would overlap,
        counting the 2 h in which a scheduled backup may start (GC needs that backup to run)."""
        for moment in self.occurrences(start - SCHEDULE_START_SLACK, start + duration):
            if moment < start + duration and moment + SCHEDULE_START_SLACK > start:
                return moment
        return None

    def clear_at(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest time at or after ``start`` at which an ad hoc backup of ``duration``
        overlaps no scheduled backup (``start`` itself when it does not collide)."""
        moment = start
        for _ in range(64):  # a daily policy with many run times still clears within a few steps
            collision = self.collides(moment, duration)
            if collision is None:
                return moment
            moment = collision + SCHEDULE_START_SLACK
        return moment


OVERLAP_CHOICES = ("refuse", "delay")


def overlap_decision(
    schedule: PolicySchedule, start: datetime, duration: timedelta, overlap: str
) -> dict[str, Any] | None:
    """What an ad hoc backup starting at ``start`` must do about the policy's scheduled backup:
    ``None`` (clear), or ``{"action": "refuse" | "delay", "scheduledAt", "clearAt"}``."""
    collision = schedule.collides(start, duration)
    if collision is None:
        return None
    if overlap not in OVERLAP_CHOICES:
        raise ValueError(f"overlap must be one of {OVERLAP_CHOICES}, got {overlap!r}")
    return {"action": overlap, "scheduledAt": collision, "clearAt": schedule.clear_at(start, duration)}


@dataclass(frozen=True)
class Finding:
    kind: str  # GcOverdue | RestorePointsNearLimit | PolicyUnreadable
    reason: str
    advice: str
    code: str  # which finding of its kind (one VM can have several GcOverdue findings at once)

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "code": self.code, "reason": self.reason, "advice": self.advice}


def assess(inspection: Mapping[str, Any], now: datetime, near_limit: int) -> list[Finding]:
    """What a VM's inspection (protection, policy, latest scheduled job, snapshot count) means for
    garbage collection in ``weekly-policy`` mode."""
    findings: list[Finding] = []
    state = inspection.get("protectionState")
    if not protection_on(state):
        findings.append(
            Finding(
                "GcOverdue",
                f"protection is {state or 'unknown'}: Azure Backup's garbage collection only runs while "
                "protection is on",
                "resume protection with a policy that runs at least weekly (or enable gc.remediate)",
                code="protectionOff",
            )
        )
    schedule = inspection.get("schedule")
    if schedule is not None and not known(str(schedule["time_zone"])):
        findings.append(
            Finding(
                "PolicyUnreadable",
                f"the backup policy's time zone {schedule['time_zone']!r} is not a Windows zone id CLDR maps "
                "nor an IANA name: the app cannot tell when its scheduled backups run, so every backup of this "
                "VM fails with UnknownPolicyTimeZone",
                "set the policy's timeZone to a Windows zone id (e.g. 'W. Europe Standard Time'), or update the "
                "app's tzlocal/tzdata if Azure added the zone",
                code="unknownTimeZone",
            )
        )
    if schedule is not None and not PolicySchedule.from_dict(schedule).weekly_or_better:
        findings.append(
            Finding(
                "GcOverdue",
                "the backup policy schedules no backup every week",
                "assign a policy with a weekly (or daily) schedule",
                code="scheduleNotWeekly",
            )
        )
    last = inspection.get("lastScheduledJob")
    deadline = now - WEEK - SCHEDULE_START_SLACK
    if last is None:
        findings.append(
            Finding(
                "GcOverdue",
                "no scheduled (not user-triggered) backup ran in the last 7 days",
                "check the policy schedule and the VM agent; keep one scheduled backup per week",
                code="noScheduledBackup",
            )
        )
    else:
        started = datetime.fromisoformat(str(last["startTime"]).replace("Z", "+00:00"))
        if last.get("status") not in ("Completed", "CompletedWithWarnings", "InProgress"):
            findings.append(
                Finding(
                    "GcOverdue",
                    f"the latest scheduled backup ({last.get('jobId')}) ended {last.get('status')}",
                    "look at that job's error and fix it before the next scheduled run",
                    code="scheduledBackupFailed",
                )
            )
        elif started < deadline:
            findings.append(
                Finding(
                    "GcOverdue",
                    f"the latest scheduled backup started {started.isoformat()}, more than 7 days ago",
                    "check the policy schedule; garbage collection needs protection on with weekly backups",
                    code="scheduledBackupStale",
                )
            )
    snapshots = int(inspection.get("instantSnapshots") or 0)
    if snapshots >= near_limit:
        findings.append(
            Finding(
                "RestorePointsNearLimit",
                f"{snapshots} instant-restore snapshots held (backups fail at {RP_COLLECTION_LIMIT})",
                "keep protection on so garbage collection runs; lower instant-restore retention in the policy",
                code="nearLimit",
            )
        )
    return findings


# --- protection lease (state machine used by the protection_lease entity) ----------------------
@dataclass
class Lease:
    """Holders of one protected item's protection. ``phase``: ``off`` (protection stopped or not
    managed), ``starting`` (a holder is resuming it), ``on``, ``stopping`` (the last holder left and
    is stopping it)."""

    phase: str = "off"
    holders: dict[str, dict[str, Any]] = field(default_factory=dict)
    transition_by: str | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Lease:
        state = state or {}
        return cls(state.get("phase", "off"), dict(state.get("holders") or {}), state.get("transitionBy"))

    def to_state(self) -> dict[str, Any]:
        return {"phase": self.phase, "holders": self.holders, "transitionBy": self.transition_by}


def lease_apply(lease: Lease, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Apply one operation; returns what the caller must do next.

    - ``acquire {holder, kind, at}`` → ``granted`` (protection is on), ``resume`` (granted, and the
      caller must resume protection, then ``started``), or ``wait`` (someone is mid-transition).
    - ``release {holder}`` → ``released`` or ``stop`` (last holder: the caller must stop protection,
      then ``stopped`` — or ``stopFailed`` if Azure refused: protection is still on, so the lease is
      ``on`` with no holder). A holder not holding the lease gets ``released`` (idempotent).
    - ``started`` / ``stopped`` {holder} finish a transition; ``resumeFailed`` / ``stopFailed``
      {holder} end one Azure refused.
    - ``reclaim {holder, by}`` frees the lease of a holder that is gone; ``get`` reads the state."""
    holder = str(args.get("holder", ""))
    if op == "acquire":
        if lease.phase in ("starting", "stopping") and lease.transition_by != holder:
            return {"action": "wait", "phase": lease.phase}
        lease.holders[holder] = {"kind": args.get("kind", "backup"), "at": args.get("at")}
        if lease.phase == "on":
            return {"action": "granted", "holders": len(lease.holders)}
        lease.phase, lease.transition_by = "starting", holder
        return {"action": "resume", "holders": len(lease.holders)}
    if op == "started":
        if lease.transition_by == holder:
            lease.phase, lease.transition_by = "on", None
        return {"action": "ok", "phase": lease.phase}
    if op == "resumeFailed":
        if lease.transition_by == holder and lease.phase == "starting":
            lease.holders.pop(holder, None)
            lease.phase, lease.transition_by = "off", None
        return {"action": "ok", "phase": lease.phase}
    if op == "stopFailed":
        if lease.transition_by == holder and lease.phase == "stopping":
            lease.phase, lease.transition_by = "on", None
        return {"action": "ok", "phase": lease.phase}
    if op == "release":
        if holder not in lease.holders:
            return {"action": "released", "holders": len(lease.holders)}
        del lease.holders[holder]
        if lease.holders or lease.phase != "on":
            return {"action": "released", "holders": len(lease.holders)}
        lease.phase, lease.transition_by = "stopping", holder
        return {"action": "stop", "holders": 0}
    if op == "stopped":
        if lease.transition_by == holder:
            lease.phase, lease.transition_by = "off", None
        return {"action": "ok", "phase": lease.phase}
    if op == "reclaim":  # a sweeper frees the lease of a holder that crashed or was terminated
        lease.holders.pop(holder, None)
        if lease.transition_by == holder:
            lease.phase, lease.transition_by = "on", None
        if not lease.holders and lease.phase == "on":
            lease.phase, lease.transition_by = "stopping", str(args.get("by", holder))
            return {"action": "stop", "holders": 0}
        return {"action": "released", "holders": len(lease.holders)}
    if op == "get":
        return {"action": "ok", **lease.to_state()}
    raise ValueError(f"unknown lease operation {op!r}")
