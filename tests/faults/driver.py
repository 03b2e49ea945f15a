"""Runs one seeded fault case on the local stack: start it with the manual clock at the case's
start, start a chain run that waits for its upstream event, deliver that event (at least once),
then move the clock step by step — SIGKILLing devhost at the case's kill points and restarting it
after the clock moved on without it — until the run published ChainCompleted (bounded by the
case's limit). In weekend-window mode it then goes on until the weekly GC window closed.

Nothing here looks inside the app: it talks to the app's HTTP API, the Event Grid emulator and the
Recovery Services emulator's admin API, and reads devhost's host status to time the kills."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from demo.stack import Stack
from tests.faults import invariants
from tests.faults.scenarios import (
    CHAIN,
    UPSTREAM_SUBJECT,
    UPSTREAM_TYPE,
    WEEKEND_WINDOW,
    WINDOW_HOURS,
    FaultCase,
    Kill,
)
from tests.support.chain_stack import PREFIX, chain_completed, deliver_upstream, run_events, start_stack

WINDOW_CLOSE_LIMIT_SECONDS = 2 * 3600.0  # virtual time the window gets to close after its closing time
WINDOW_STEP_SECONDS = 3600.0
# Stack.publish_upstream points REQUESTS_CA_BUNDLE (process-wide) at its stack's CA while it
# publishes: cases run side by side publish one at a time.
_PUBLISHING = threading.Lock()
IN_FLIGHT_WAIT = 5.0  # wall seconds to wait for devhost to report work in progress before a kill


@dataclass
class Driven:
    """What the driver did and saw (the invariant checker reads the rest from the stack)."""

    case: FaultCase
    base: Path
    run_started_at: datetime
    chain_completed: bool = False
    window_closed: bool | None = None
    steps: int = 0
    chain_seconds: float = 0.0  # virtual time from the run's start to ChainCompleted (or giving up)
    kills: list[dict[str, Any]] = field(default_factory=list)
    faults_injected: dict[str, int] = field(default_factory=dict)
    requests: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # problems of the run itself (reported as violations)
    skipped_kills: list[str] = field(default_factory=list)  # planned kills the run ended before
    mid_violations: list[invariants.Violation] = field(default_factory=list)


@contextmanager
def case_stack(case: FaultCase, base: Path) -> Iterator[Stack]:
    """The stack for ``case`` (manual clock at ``case.start``), stopped on exit."""
    stack = start_stack(base, case.scenario(), case.chains(), start=case.start, **case.config())
    try:
        yield stack
    finally:
        stack.stop()


def advance_emulators(stack: Stack, seconds: float) -> None:
    """Move the shared manual clock while devhost is down (through the emulators' clock routes)."""
    stack.admin("recoveryservices", "POST", "/admin/clock/advance", params={"seconds": str(seconds)})
    stack.admin("eventgrid", "POST", "/admin/clock/advance", params={"seconds": "0"})


def host_status(stack: Stack) -> dict[str, Any]:
    return dict(stack.admin("devhost", "GET", "/admin/host/status"))


def _kill(stack: Stack, kill: Kill, driven: Driven, published: int, step: float | None = None) -> None:
    """Carry out one kill (with the clock step it replaces: ``step`` seconds, the case's step by
    default) and restart devhost."""
    seen: dict[str, Any] = {}

    def busy_or_idle() -> bool:
        seen.update(host_status(stack))
        return bool(seen["inProgress"] > 0 or seen["idle"])

    if kill.mode == "atRest":
        stack.settle()
        seen.update(host_status(stack))
    else:
        stack.advance(step or driven.case.step_seconds)
        driven.steps += 1
        if kill.mode == "inFlight":
            with contextlib.suppress(AssertionError):  # bounded: kill anyway when it runs out
                stack.wait(busy_or_idle, IN_FLIGHT_WAIT, "devhost to pick up work")
    killed_at = stack.clock.now()
    stack.kill_devhost()
    if kill.down_seconds:
        advance_emulators(stack, kill.down_seconds)
    stack.start_devhost()
    stack.settle()
    driven.kills.append(
        {
            "afterEvents": published,
            "mode": kill.mode,
            "downSeconds": kill.down_seconds,
            "at": killed_at.isoformat(),
            "inProgressAtKill": seen.get("inProgress"),
        }
    )


def _gc_event_count(stack: Stack, kind: str) -> int:
    return sum(
        1 for e in stack.downstream() if e["type"] == PREFIX + kind and str(e.get("subject", "")).startswith("/gc/")
    )


def drive(stack: Stack, case: FaultCase) -> Driven:
    """Run ``case`` on ``stack`` to the end; never raises for a run that does not finish (the
    checker reports that), only for a stack that does not work at all."""
    began = time.monotonic()
    stack.settle()
    driven = Driven(case, stack.base, stack.clock.now())
    started = stack.api("POST", f"chains/{CHAIN}/runs", {"runId": case.run_id, "waitForUpstream": True})
    if started.status_code != 202:
        raise AssertionError(f"starting run {case.run_id}: {started.status_code} {started.text}")
    stack.settle()
    event_id = f"upstream-{case.seed}"
    deliveries = case.upstream_deliveries
    if case.upstream_while_down:
        # Event Grid cannot reach devhost: it retries on the shared clock (10 s, 30 s, ...), which
        # the steps below move; the run must start backing up once a retry gets through.
        stack.kill_devhost()
        with _PUBLISHING:
            stack.publish_upstream(UPSTREAM_TYPE, UPSTREAM_SUBJECT, {"status": "Succeeded"}, event_id)
        stack.start_devhost()
        stack.settle()
        driven.kills.append({"afterEvents": 1, "mode": "upstreamWhileDown", "at": stack.clock.now().isoformat()})
        deliveries -= 1
    for _ in range(deliveries):
        with _PUBLISHING:
            deliver_upstream(stack, UPSTREAM_TYPE, UPSTREAM_SUBJECT, {"status": "Succeeded"}, event_id=event_id)

    kills = list(case.kills)
    window_kills = list(case.window_kills)
    max_steps = int(case.limit_seconds / case.step_seconds)
    while True:
        events = run_events(stack, case.run_id)
        if any(e["type"] == PREFIX + "ChainCompleted" for e in events):
            break
        if driven.steps >= max_steps:
            driven.notes.append(f"no ChainCompleted within {case.limit_seconds:.0f} virtual seconds")
            break
        published = len({e["id"] for e in events})
        if kills and published >= kills[0].after_events:
            _kill(stack, kills.pop(0), driven, published)
            continue
        if "open" in window_kills and stack.clock.now() + timedelta(seconds=case.step_seconds) >= case.window_opens:
            window_kills.remove("open")
            _kill(stack, Kill(published, "inFlight", 0.0), driven, published)
            continue
        stack.advance(case.step_seconds)
        stack.settle()
        driven.steps += 1
    driven.chain_completed = chain_completed(stack, case.run_id)
    driven.chain_seconds = (stack.clock.now() - driven.run_started_at).total_seconds()
    if kills:
        driven.skipped_kills = [f"after {k.after_events} events {k.mode}" for k in kills]
    if "open" in window_kills:
        driven.skipped_kills.append("as the GC window opens")
    stack.settle()

    if case.gc_mode == WEEKEND_WINDOW:
        # Leases and protection agree with the window open, too (once it has finished opening:
        # with faults, resuming protection VM by VM can outlast the chain run).
        opened = _step_until(stack, case, lambda: _gc_event_count(stack, "GcWindowOpened") >= 1)
        if opened:
            mid = invariants.check_protection(invariants.observe(stack, case, driven.run_started_at), case)
            driven.mid_violations = [
                invariants.Violation(v.invariant, v.vm, "with the GC window open: " + v.detail) for v in mid
            ]
        else:
            driven.notes.append("the weekly GC window did not open")
        driven.window_closed = _run_window_to_close(stack, driven, "close" in window_kills)
        if not driven.window_closed:
            driven.notes.append("the weekly GC window did not close")
    state = stack.admin("recoveryservices", "GET", "/admin/state")
    driven.faults_injected = {str(k): int(v) for k, v in state["faultsInjected"].items()}
    driven.requests = dict(stack.admin("recoveryservices", "GET", "/admin/requests"))
    driven.wall_seconds = time.monotonic() - began
    return driven


def _step_until(stack: Stack, case: FaultCase, done: Callable[[], bool], limit: float = 7200.0) -> bool:
    """Move the clock in the case's steps until ``done()`` (at most ``limit`` virtual seconds)."""
    elapsed = 0.0
    while not done():
        if elapsed >= limit:
            return False
        stack.advance(case.step_seconds)
        stack.settle()
        elapsed += case.step_seconds
    return True


def _run_window_to_close(stack: Stack, driven: Driven, kill_at_close: bool) -> bool:
    """Weekend-window mode: move on an hour at a time up to the window's closing time, then in the
    case's small steps (its durable retries come every few seconds) until it closed — SIGKILLing
    devhost in the step it closes in, if asked — then one lease sweep interval more, so that the
    lease of a holder that died would have been reclaimed."""
    closes = driven.case.window_opens + timedelta(hours=WINDOW_HOURS)
    deadline = closes + timedelta(seconds=WINDOW_CLOSE_LIMIT_SECONDS)
    while _gc_event_count(stack, "GcWindowClosed") < 1:
        now = stack.clock.now()
        if now >= deadline:
            return False
        to_close = (closes - now).total_seconds()
        step = min(WINDOW_STEP_SECONDS, to_close) if to_close > 0 else driven.case.step_seconds
        if kill_at_close and to_close <= step:
            kill_at_close = False
            _kill(stack, Kill(0, "inFlight", 0.0), driven, -1, step)
        else:
            stack.advance(step)
            stack.settle()
    stack.advance(600)
    stack.settle()
    return True


def run_case(case: FaultCase, base: Path) -> tuple[Driven, invariants.Report]:
    """Start the stack, drive ``case`` and check every invariant; the stack is stopped after."""
    with case_stack(case, base) as stack:
        driven = drive(stack, case)
        report = invariants.check(invariants.observe(stack, case, driven.run_started_at), case)
    report.violations[:0] = driven.mid_violations
    for note in driven.notes:
        report.violations.insert(0, invariants.Violation("bounded-run", None, note))
    return driven, report
