"""The upstream trigger's redelivery dedupe does not depend on the wall clock: its window is
anchored at the event's own time, and a run's created time is on the Durable clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import azure.functions as func
import pytest

from demo.stack import Stack
from harness.chain_stack import chain, deliver_upstream, running_stack, scenario, vm
from tests.calendar.instants import utc
from triggers.upstream import DEDUPE_WINDOW, _event_time, dedupe_since

ETL_TYPE, ETL_SUBJECT = "Contoso.Etl.JobFinished", "/jobs/nightly"


def grid_event(event_time: datetime | None) -> func.EventGridEvent:
    return func.EventGridEvent(
        id="e1",
        data={},
        topic="t",
        subject=ETL_SUBJECT,
        event_type=ETL_TYPE,
        event_time=event_time,
        data_version="1",
    )


def test_dedupe_window_is_anchored_at_the_event_time_or_unbounded() -> None:
    at = utc(2020, 1, 6, 3)
    assert dedupe_since(_event_time(grid_event(at))) == at - DEDUPE_WINDOW
    assert dedupe_since(_event_time(grid_event(None))) is None
    # a time without an offset is UTC, as Event Grid writes it
    naive = datetime(2020, 1, 6, 3)  # noqa: DTZ001 - what an event may carry
    assert _event_time(grid_event(naive)) == at
    plus_one = datetime(2020, 1, 6, 4, tzinfo=timezone(timedelta(hours=1)))
    assert dedupe_since(_event_time(grid_event(plus_one))) == at - DEDUPE_WINDOW


def _phase(stack: Stack, run_id: str) -> str:
    return str(stack.api("GET", f"chains/nightly/runs/{run_id}").json()["phase"])


@pytest.mark.slow
def test_redelivered_event_is_not_raised_into_a_second_waiting_run_years_from_the_wall_clock(tmp_path: Path) -> None:
    # Virtual 2020: a dedupe window counted back from the wall clock's now would start years after
    # every run here was created, and take the redelivery for a new event.
    upstream = {"eventType": ETL_TYPE, "subject": ETL_SUBJECT, "timeout": "PT6H", "onFailure": "skip"}
    chains = [chain("nightly", ["up01"], upstream=upstream, monitorTransfer=False)]
    with running_stack(tmp_path, scenario([vm("up01")]), chains, start=utc(2020, 1, 6, 3)) as stack:
        for run_id in ("first", "second"):
            body = {"runId": run_id, "waitForUpstream": True}
            assert stack.api("POST", "chains/nightly/runs", body).status_code == 202
            stack.run_until(lambda r=run_id: _phase(stack, r) == "waitingForUpstream", step=5, limit=300)
            if run_id == "first":
                deliver_upstream(stack, ETL_TYPE, ETL_SUBJECT, {"status": "failed"}, event_id="etl-1")
                stack.run_until(lambda: _phase(stack, "first") == "completed", step=5, limit=300)
        deliver_upstream(stack, ETL_TYPE, ETL_SUBJECT, {"status": "failed"}, event_id="etl-1")  # redelivery
        stack.advance(60)
        stack.settle()
        assert _phase(stack, "second") == "waitingForUpstream"
        first = stack.api("GET", "chains/nightly/runs/first").json()
        assert first["outcome"] == "skipped"
