"""devhost killed with SIGKILL mid-orchestration resumes every instance from the task hub."""

from __future__ import annotations

import random

from tests.support.devhost_harness import DevHostProcess, wait_until


def test_sigkill_with_activity_in_flight_timer_pending_and_event_buffered(fresh_host: DevHostProcess) -> None:
    host = fresh_host
    host.start_orchestration("slow_then_add", "crash-activity", 3)  # a 3 s activity: killed mid-flight
    host.start_orchestration("sleeper", "crash-timer", 20)  # a 20 min durable timer
    host.start_orchestration("two_events", "crash-event")
    wait_until(lambda: host.read_marks("slow-start"), what="slow activity in flight")
    host.wait_timers("crash-timer", 1)
    host.wait_status("crash-event", ("Running",))
    host.client("raise", "crash-event", {"name": "second", "data": {"v": 2}})  # buffered: nobody waits yet
    wait_until(lambda: any(e["EventType"] == "EventRaised" for e in host.history("crash-event")), what="event recorded")

    host.restart(kill=True)

    # the activity re-runs (at-least-once) and the instance completes
    host.call("POST", "/admin/clock/advance", key="master", params={"seconds": "0"})
    status = host.wait_status("crash-activity", timeout=60)
    assert status["output"] == ["slept", 101]
    assert len(host.read_marks("slow-start")) == 2 and len(host.read_marks("slow-end")) == 1
    # the pending timer still fires, exactly once, when virtual time reaches it
    assert host.status("crash-timer")["runtimeStatus"] == "Running"
    host.advance(20 * 60 + 1)
    assert host.wait_status("crash-timer")["output"] == 21
    assert host.read_marks("add_one").count(20) == 1
    timers_fired = [e for e in host.history("crash-timer") if e["EventType"] == "TimerFired"]
    assert len(timers_fired) == 1
    # the buffered event survived the crash
    host.client("raise", "crash-event", {"name": "first", "data": {"v": 1}})
    assert host.wait_status("crash-event")["output"] == [{"v": 1}, {"v": 2}]


def test_repeated_sigkill_at_random_points_loses_and_duplicates_nothing(fresh_host: DevHostProcess) -> None:
    host = fresh_host
    rng = random.Random(7)
    for i in range(6):
        host.start_orchestration("fan_out", f"fan-crash-{i}", 15)
    for _ in range(4):
        # kill at a random moment while the fan-outs are being processed
        wait_until(lambda: len(host.read_marks("add_one")) >= rng.randint(1, 40), what="some progress")
        host.restart(kill=True)
    for i in range(6):
        status = host.wait_status(f"fan-crash-{i}", timeout=60)
        assert status["runtimeStatus"] == "Completed"
        assert status["output"] == sum(range(1, 16))
        completed = [e for e in host.history(f"fan-crash-{i}") if e["EventType"] == "TaskCompleted"]
        assert len(completed) == 15  # every activity result recorded exactly once
