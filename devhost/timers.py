"""Timer triggers: NCRONTAB (six fields, seconds first) and TimeSpan schedules, ``run_on_startup``
and past-due detection, on the shared clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from croniter import croniter

from devhost.indexing import FunctionSpec
from devhost.settings import parse_timespan
from devhost.store import Store
from localclock.clock import Clock, iso

log = logging.getLogger("devhost")


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    text: str
    cron: str | None = None
    interval: timedelta | None = None

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        assert self.cron is not None
        nxt: datetime = croniter(self.cron, moment, second_at_beginning=True).get_next(datetime)
        return nxt.astimezone(timezone.utc) if nxt.tzinfo else nxt.replace(tzinfo=timezone.utc)


def parse_schedule(function_name: str, text: str) -> Schedule:
    """A timer trigger's schedule; ``%Setting%`` reads an app setting, as the host does."""
    match = re.fullmatch(r"%([^%]+)%", text.strip())
    if match:
        setting = os.environ.get(match.group(1))
        if setting is None:
            raise ScheduleError(
                f"Error indexing function '{function_name}': the schedule refers to app setting "
                f"'{match.group(1)}', which is not set"
            )
        text = setting
    text = text.strip()
    if ":" in text and len(text.split()) == 1:
        try:
            interval = parse_timespan(text)
        except ValueError as err:
            raise ScheduleError(f"Error indexing function '{function_name}': {err}") from None
        if interval <= timedelta(0):
            raise ScheduleError(f"Error indexing function '{function_name}': TimeSpan schedule must be positive")
        return Schedule(text, interval=interval)
    fields = text.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"Error indexing function '{function_name}': '{text}' is not a valid NCRONTAB expression "
            "(six fields: {second} {minute} {hour} {day} {month} {day-of-week})"
        )
    if not croniter.is_valid(text, second_at_beginning=True):
        raise ScheduleError(f"Error indexing function '{function_name}': '{text}' is not a valid NCRONTAB expression")
    return Schedule(text, cron=text)


Invoke = Callable[[FunctionSpec, str], Awaitable[None]]


class TimerTriggers:
    def __init__(self, specs: list[FunctionSpec], store: Store, clock: Clock, invoke: Invoke):
        self.store = store
        self.clock = clock
        self.invoke = invoke
        self.timers = [(spec, parse_schedule(spec.name, str(spec.trigger["schedule"]))) for spec in specs]
        self.wake = asyncio.Event()
        self._stopping = False

    @staticmethod
    def request_json(past_due: bool, last: datetime | None, nxt: datetime, now: datetime) -> str:
        return json.dumps(
            {
                "Schedule": {"AdjustForDST": True},
                "ScheduleStatus": {
                    "Last": iso(last) if last else None,
                    "Next": iso(nxt),
                    "LastUpdated": iso(now),
                },
                "IsPastDue": past_due,
            }
        )

    async def _fire(self, spec: FunctionSpec, schedule: Schedule, past_due: bool, due: datetime | None) -> None:
        now = self.clock.now()
        nxt = schedule.next_after(now)
        body = self.request_json(past_due, due, nxt, now)
        try:
            await self.invoke(spec, body)
        except Exception:
            log.exception("timer function %s failed", spec.name)
        # Recorded after the invocation: a crash mid-invocation re-fires it as past due.
        self.store.set_timer_schedule(spec.name, now.timestamp(), nxt.timestamp())

    async def run(self) -> None:
        now = self.clock.now()
        for spec, schedule in self.timers:
            last, due = self.store.timer_schedule(spec.name)
            if due is not None and due <= now.timestamp():
                await self._fire(spec, schedule, True, datetime.fromtimestamp(due, tz=timezone.utc))
            elif spec.trigger.get("runOnStartup"):
                await self._fire(spec, schedule, False, None)
            elif due is None:
                self.store.set_timer_schedule(spec.name, last, schedule.next_after(now).timestamp())
        while not self._stopping:
            self.wake.clear()
            now = self.clock.now()
            next_due: float | None = None
            for spec, schedule in self.timers:
                _, due = self.store.timer_schedule(spec.name)
                assert due is not None
                if due <= now.timestamp():
                    late = now.timestamp() - due > 60  # missed by more than a minute: past due
                    await self._fire(spec, schedule, late, datetime.fromtimestamp(due, tz=timezone.utc))
                    _, due = self.store.timer_schedule(spec.name)
                    assert due is not None
                next_due = due if next_due is None else min(next_due, due)
            delay = 1.0
            if next_due is not None:
                real = self.clock.real_delay(next_due - self.clock.timestamp())
                delay = 0.1 if real is None else max(0.005, min(1.0, real))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()
