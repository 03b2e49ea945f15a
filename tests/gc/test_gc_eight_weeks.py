"""Ad hoc-only operation's failure and its cure (docs/domain.md, "Garbage collection and the
restore point limit"), over eight simulated weeks of daily ad hoc backups.

Protection is stopped between backups (ad hoc-only operation). Without the weekly window, Azure
Backup's garbage collection almost never runs and snapshots pile up until a backup fails with
UserErrorRpCollectionLimitReached; with weekend-window enforcement it never does."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from demo.stack import Stack
from harness.chain_stack import chain, running_stack, scenario, types_for, vm

LIMIT_ERROR = "UserErrorRpCollectionLimitReached"
DAYS = 56


def daily_backups(stack: Stack, days: int, stop_on_limit: bool) -> list[str]:
    """Run the chain once a day at 12:00 UTC; returns the error code of every failed backup."""
    errors: list[str] = []
    now = stack.clock.now()
    first = (now + timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    stack.advance((first - now).total_seconds())
    for day in range(days):
        assert stack.api("POST", "chains/daily/runs", {"runId": f"day-{day:02d}"}).status_code == 202
        stack.run_until(
            lambda: "ChainCompleted" in types_for(stack.downstream())[-1:],
            step=600,
            limit=8 * 3600,
            what=f"run of day {day}",
        )
        failed = [e for e in stack.downstream() if str(e["type"]).endswith("BackupFailed")]
        errors = [str(e["data"]["errorCode"]) for e in failed]
        if stop_on_limit and LIMIT_ERROR in errors:
            return errors
        now = stack.clock.now()
        stack.advance((first + timedelta(days=day + 1) - now).total_seconds())
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("enforce", [True, False], ids=["weekend-window", "enforcement-off"])
def test_eight_weeks_of_ad_hoc_backups(tmp_path: Path, enforce: bool) -> None:
    gc = {
        "mode": "weekend-window",
        "policy": "weekly",
        "day": "Saturday",
        "at": "00:00",
        "windowHours": 48,
        "enforce": enforce,
    }
    body = scenario([vm("adhoc01", protected=False, snapshot=(6, 8), transfer=(20, 30))], seed=11)
    with running_stack(tmp_path, body, [chain("daily", ["adhoc01"], maxParallel=1)], gc=gc) as stack:
        errors = daily_backups(stack, DAYS, stop_on_limit=not enforce)
        windows = [e for e in stack.downstream() if str(e["type"]).endswith("GcWindowOpened")]
        if enforce:
            assert errors == []
            assert len(windows) == 8
            assert len([e for e in stack.downstream() if str(e["type"]).endswith("BackupCompleted")]) == DAYS
        else:
            assert LIMIT_ERROR in errors
            assert windows == []
