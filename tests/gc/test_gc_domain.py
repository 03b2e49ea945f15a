"""The pure GC core: schedules, collisions, assessment and the protection-lease state machine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup_chain.config import ConfigError, parse_config
from backup_chain.gc import Lease, PolicySchedule, assess, lease_apply, next_weekly
from demo.stack import vault_id, vm_id

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)  # a Wednesday


def test_next_weekly_is_strictly_after_and_honours_the_time_zone() -> None:
    assert next_weekly("Saturday", "00:00", "UTC", NOW) == datetime(2026, 11, 28, tzinfo=timezone.utc)
    # 00:00 Saturday in Tokyo is 15:00 Friday UTC
    assert next_weekly("Saturday", "00:00", "Asia/Tokyo", NOW) == datetime(2026, 11, 27, 15, tzinfo=timezone.utc)
    exactly = datetime(2026, 11, 28, tzinfo=timezone.utc)
    assert next_weekly("Saturday", "00:00", "UTC", exactly) == exactly + timedelta(days=7)


@given(
    # hypothesis takes naive bounds; the times it gives are UTC-aware (timezones=)
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(timezone.utc)),  # noqa: DTZ001
    st.sampled_from(["Monday", "Saturday", "Sunday"]),
    st.sampled_from(["UTC", "Asia/Tokyo", "Tokyo Standard Time"]),
)
def test_next_weekly_is_within_a_week(after: datetime, day: str, tz: str) -> None:
    due = next_weekly(day, "03:30", tz, after)
    assert after < due <= after + timedelta(days=7, hours=1)


def test_collision_with_the_weekly_scheduled_backup() -> None:
    weekly = PolicySchedule("Weekly", ("Wednesday",), ("14:00",), "UTC")
    assert weekly.collides(NOW, timedelta(hours=3)) == datetime(2026, 11, 25, 14, tzinfo=timezone.utc)
    assert weekly.collides(NOW - timedelta(hours=6), timedelta(hours=3)) is None
    # a scheduled backup may start up to 2 h late: starting at 15:30 still overlaps it
    assert weekly.collides(NOW + timedelta(hours=3, minutes=30), timedelta(hours=1)) is not None
    assert weekly.collides(NOW + timedelta(hours=4, minutes=1), timedelta(hours=1)) is None
    assert PolicySchedule("Weekly", (), ("14:00",), "UTC").weekly_or_better is False
    assert PolicySchedule("Daily", (), ("14:00",), "UTC").weekly_or_better is True


def _inspection(**over: Any) -> dict[str, Any]:
    base = {
        "protectionState": "Protected",
        "schedule": {"frequency": "Weekly", "days": ("Wednesday",), "times": ("02:00",), "time_zone": "UTC"},
        "lastScheduledJob": {"jobId": "j1", "status": "Completed", "startTime": "2026-11-25T02:10:00Z"},
        "instantSnapshots": 3,
    }
    return {**base, **over}


@pytest.mark.parametrize(
    ("over", "kinds"),
    [
        ({}, []),
        ({"protectionState": "IRPending"}, []),
        ({"protectionState": "ProtectionStopped"}, ["GcOverdue"]),
        ({"lastScheduledJob": None}, ["GcOverdue"]),
        ({"lastScheduledJob": {"jobId": "j", "status": "Failed", "startTime": "2026-11-25T02:10:00Z"}}, ["GcOverdue"]),
        (
            {"lastScheduledJob": {"jobId": "j", "status": "Completed", "startTime": "2026-11-18T09:59:00Z"}},
            ["GcOverdue"],
        ),
        ({"lastScheduledJob": {"jobId": "j", "status": "Completed", "startTime": "2026-11-18T10:01:00Z"}}, []),
        ({"schedule": {"frequency": "Weekly", "days": (), "times": ("02:00",), "time_zone": "UTC"}}, ["GcOverdue"]),
        ({"instantSnapshots": 15}, ["RestorePointsNearLimit"]),
        ({"instantSnapshots": 14}, []),
    ],
)
def test_assess(over: dict[str, Any], kinds: list[str]) -> None:
    findings = assess(_inspection(**over), NOW, near_limit=15)
    assert [f.kind for f in findings] == kinds
    assert all(f.reason and f.advice for f in findings)


def test_lease_first_resumes_last_stops_and_transitions_make_others_wait() -> None:
    lease = Lease()
    assert lease_apply(lease, "acquire", {"holder": "w"})["action"] == "resume"
    assert lease_apply(lease, "acquire", {"holder": "b1"})["action"] == "wait"  # w is resuming
    assert lease_apply(lease, "started", {"holder": "w"})["phase"] == "on"
    assert lease_apply(lease, "acquire", {"holder": "b1"})["action"] == "granted"
    assert lease_apply(lease, "release", {"holder": "w"})["action"] == "released"  # b1 still holds it
    assert lease_apply(lease, "release", {"holder": "w"})["action"] == "released"  # idempotent
    assert lease_apply(lease, "release", {"holder": "b1"})["action"] == "stop"
    assert lease_apply(lease, "acquire", {"holder": "b2"})["action"] == "wait"  # b1 is stopping
    assert lease_apply(lease, "stopped", {"holder": "b1"})["phase"] == "off"
    assert lease_apply(lease, "acquire", {"holder": "b2"})["action"] == "resume"


def test_reclaiming_a_dead_holder() -> None:
    lease = Lease()
    lease_apply(lease, "acquire", {"holder": "dead"})  # died before finishing the resume
    assert lease_apply(lease, "acquire", {"holder": "b"})["action"] == "wait"
    assert lease_apply(lease, "reclaim", {"holder": "dead", "by": "sweeper"})["action"] == "stop"
    assert lease.transition_by == "sweeper"
    assert lease_apply(lease, "stopped", {"holder": "sweeper"})["phase"] == "off"
    with pytest.raises(ValueError):
        lease_apply(lease, "explode", {})


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["acquire", "release", "started", "stopped", "reclaim"]), st.sampled_from(["a", "b", "c"])
        ),
        max_size=40,
    )
)
def test_lease_never_stops_under_a_holder(ops: list[tuple[str, str]]) -> None:
    """Whatever the interleaving, "stop" is only ever told when nobody holds the lease, and
    "resume"/"granted" always leave the caller holding it."""
    lease = Lease()
    for op, holder in ops:
        result = lease_apply(lease, op, {"holder": holder, "by": holder})
        if result["action"] == "stop":
            assert lease.holders == {}
        if result["action"] in ("resume", "granted"):
            assert holder in lease.holders


def _config(gc: dict[str, Any]) -> dict[str, Any]:
    return {"chains": [{"name": "c", "targets": [{"vaultId": vault_id("v1"), "vms": [vm_id("a")]}]}], "gc": gc}


@pytest.mark.parametrize(
    ("gc", "field"),
    [
        ({"mode": "weekend-window"}, "gc"),
        ({"mode": "weekly-policy", "remediate": True}, "gc"),
        ({"timeZone": "Mars/Olympus"}, "gc.timeZone"),
        ({"day": "Funday"}, "gc.day"),
        ({"at": "25:00"}, "gc.at"),
        ({"windowHours": 2}, "gc.windowHours"),
        ({"vms": [vm_id("stranger")]}, "gc.vms"),
        ({"mode": "off"}, "gc.mode"),
    ],
)
def test_gc_configuration_errors_name_the_field(gc: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_config(gc))
    assert field in str(err.value)


def test_gc_targets_default_to_every_chain_vm() -> None:
    cfg = parse_config(_config({"mode": "weekend-window", "policy": "weekly"}))
    assert cfg.gc_targets() == [(vault_id("v1"), vm_id("a"))]
