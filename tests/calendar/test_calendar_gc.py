"""The calendar matrix, GC on devhost + emulators: the weekly GC time across Europe/Berlin's DST
changes and the year end, and the overlap refusal at the weekly policy's edges."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from demo.stack import Stack, vm_id
from harness.chain_stack import chain, durable_status, running_stack, scenario, types_for, vm
from tests.calendar.instants import utc

BERLIN_CHECK = {"mode": "weekly-policy", "day": "Sunday", "at": "02:30", "timeZone": "W. Europe Standard Time"}
WINDOW = {"mode": "weekend-window", "policy": "weekly", "day": "Saturday", "at": "00:00", "windowHours": 48}


def gc_next(stack: Stack) -> str:
    """The GC scheduler's next run, once it reports one (the start-up timer starts it)."""
    return str(stack.run_until(lambda: stack.api("GET", "gc").json()["next"], step=1, limit=60, what="GC next"))


def check_ran(stack: Stack, due: str) -> bool:
    return durable_status(stack, f"gc:check:{due}").get("runtimeStatus") == "Completed"


def gc_types(stack: Stack) -> list[str]:
    return [str(e["type"]).split(".", 1)[1] for e in stack.downstream() if str(e["subject"]).startswith("/gc/")]


@pytest.mark.slow
def test_weekly_check_inside_the_hour_the_spring_change_skips_runs_once_after_the_jump(tmp_path: Path) -> None:
    # 01:55 CET; 02:30 does not exist this Sunday: the check runs at 03:30 CEST (01:30 UTC), as
    # the Recovery Services scheduler runs the policy (tests/calendar/test_calendar_domain.py).
    with running_stack(
        tmp_path, scenario([vm("dst01")]), [chain("c", ["dst01"])], start=utc(2027, 3, 28, 0, 55), gc=BERLIN_CHECK
    ) as stack:
        assert gc_next(stack) == "2027-03-28T01:30:00.000000Z"
        stack.run_until(lambda: check_ran(stack, "20270328T0130Z"), step=300, limit=3600, what="the check")
        stack.run_until(lambda: stack.clock.now() >= utc(2027, 3, 28, 4), step=1800, limit=3 * 3600)
        assert gc_next(stack) == "2027-04-04T00:30:00.000000Z"  # a week later, CEST


@pytest.mark.slow
def test_weekly_check_is_not_run_again_in_the_repeated_autumn_hour(tmp_path: Path) -> None:
    # 02:05 CET, the second pass of 02:xx: 02:30 already ran at 00:30 UTC (CEST). A wall-time
    # comparison took 02:30 for still ahead and the scheduler fired a check in the past.
    with running_stack(
        tmp_path, scenario([vm("dst02")]), [chain("c", ["dst02"])], start=utc(2027, 10, 31, 1, 5), gc=BERLIN_CHECK
    ) as stack:
        assert gc_next(stack) == "2027-11-07T01:30:00.000000Z"
        stack.run_until(lambda: stack.clock.now() >= utc(2027, 10, 31, 3), step=900, limit=3 * 3600)
        assert durable_status(stack, "gc:check:20271031T0030Z") == {}
        assert gc_next(stack) == "2027-11-07T01:30:00.000000Z"


def _run(stack: Stack, run_id: str, name: str) -> dict[str, Any]:
    assert stack.api("POST", "chains/adhoc/runs", {"runId": run_id, "vms": [vm_id(name)]}).status_code == 202
    stack.run_until(
        lambda: stack.api("GET", f"chains/adhoc/runs/{run_id}").json().get("runtimeStatus") == "Completed",
        step=300,
        limit=4 * 3600,
        what=f"run {run_id}",
    )
    return dict(stack.api("GET", f"chains/adhoc/runs/{run_id}").json())


def _advance_to(stack: Stack, when: datetime) -> None:
    stack.advance((when - stack.clock.now()).total_seconds())
    stack.settle()


@pytest.mark.slow
def test_window_opens_at_the_year_end_and_overlap_refusal_holds_at_the_policy_edges(tmp_path: Path) -> None:
    vms = [vm("ye01", protected=False), vm("ye02", protected=False)]
    with running_stack(
        tmp_path, scenario(vms), [chain("adhoc", ["ye01", "ye02"])], start=utc(2027, 12, 31, 23, 50), gc=WINDOW
    ) as stack:
        assert gc_next(stack) == "2028-01-01T00:00:00.000000Z"  # Saturday Jan 1
        stack.run_until(lambda: "GcWindowOpened" in gc_types(stack), step=120, limit=1800, what="the window")
        assert durable_status(stack, "gc:window:20280101T0000Z")
        # The policy runs Wednesday 02:00 (Jan 5): 10 minutes before it an ad hoc backup is refused...
        _advance_to(stack, utc(2028, 1, 5, 1, 50))
        refused = _run(stack, "wed-0150", "ye01")
        assert refused["outcome"] == "completedWithFailures"
        failed = [e for e in stack.downstream() if str(e["type"]).endswith("BackupFailed")]
        assert [e["data"]["errorCode"] for e in failed] == ["OverlapsScheduledBackup"]
        # ...and once the 2 h in which the scheduled one may start are over, it runs.
        _advance_to(stack, utc(2028, 1, 5, 4, 1))
        done = _run(stack, "wed-0401", "ye02")
        assert done["outcome"] == "completed", done
        assert types_for(stack.downstream(), "ye02")[-1] == "BackupCompleted"
