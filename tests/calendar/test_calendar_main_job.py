"""The calendar matrix, main job: ``python -m demo --clock-start`` at instants that broke it (the
scenario's weekly policy time was fixed, so a run starting minutes before it met a second
scheduled job and the overlap refusal), passing its own self-check each time."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from localclock.clock import parse_clock_start
from tests.support.main_job import run_main_job

STARTS = {
    "sat-0145": "2027-01-09T01:45:00Z",  # 15 min before the old Saturday 02:00 policy
    "wed-0150": "2027-01-06T01:50:00Z",  # 10 min before the tests' Wednesday policy
    "dec-31-2350": "2027-12-31T23:50:00Z",  # the run crosses into a new year
}
STARTED = re.compile(r"started run demo-(\d{8}T\d{6}) ")


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("start", list(STARTS.values()), ids=list(STARTS))
def test_main_job_passes_its_self_check_starting_at(start: str) -> None:
    out = run_main_job("--clock-start", start)
    # The run is named after the virtual time it was started at, a few (x60) minutes after the
    # clock started while the processes came up: the clock did start where asked.
    named = STARTED.search(out)
    assert named, out[:2000]
    started = datetime.strptime(named.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    assert timedelta(0) <= started - parse_clock_start(start) < timedelta(minutes=30), named.group(0)
    assert "RESULT: PASS" in out and "5/6 VMs backed up" in out
