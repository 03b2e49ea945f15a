"""Pure pieces of devhost: clock, TimeSpan parsing, routes, schedules, action flattening."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devhost import actions as act
from devhost import history as h
from devhost.http_triggers import RouteError, compile_route
from devhost.indexing import FunctionSpec
from devhost.orchestration import parse_sdk_result
from devhost.settings import parse_timespan
from devhost.timers import ScheduleError, parse_schedule
from localclock.clock import Clock, ClockError, clock_from_options, parse_advance_seconds, parse_clock_start

START = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def test_manual_clock_is_shared_through_its_file(tmp_path: Path) -> None:
    clock = Clock.manual(tmp_path / "clock", START)
    other = Clock.from_env(clock.to_env())
    assert other.now() == START
    clock.advance(90)
    assert other.now() == START + timedelta(seconds=90)
    assert clock.real_delay(10) is None
    with pytest.raises(ClockError):
        clock.advance(-1)


def test_scaled_clock_runs_faster_and_is_reproduced_from_env() -> None:
    clock = Clock.scaled(60.0, START)
    copy = Clock.from_env(clock.to_env())
    assert abs(copy.timestamp() - clock.timestamp()) < 1.0
    assert clock.now() >= START
    assert clock.real_delay(120) == pytest.approx(2.0)
    with pytest.raises(ClockError):
        Clock.scaled(0)
    with pytest.raises(ClockError, match="DEVHOST_CLOCK_ANCHOR_REAL"):
        Clock.from_env({"DEVHOST_CLOCK_MODE": "scaled", "DEVHOST_TIME_SCALE": "1"})
    with pytest.raises(ClockError, match="expected one of"):
        Clock.from_env({"DEVHOST_CLOCK_MODE": "warp"})


def test_clock_start_flag_and_env_choose_where_a_new_clock_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVHOST_CLOCK_MODE", "real")
    monkeypatch.delenv("DEVHOST_CLOCK_START", raising=False)
    flagged = clock_from_options(time_scale=None, manual=True, state_dir=tmp_path / "a", start=START)
    assert flagged.now() == START
    monkeypatch.setenv("DEVHOST_CLOCK_START", "2027-01-09T02:45:00+01:00")
    from_env = clock_from_options(time_scale=None, manual=True, state_dir=tmp_path / "b")
    assert from_env.now() == datetime(2027, 1, 9, 1, 45, tzinfo=timezone.utc)
    scaled = clock_from_options(time_scale=60.0, manual=False, state_dir=tmp_path / "c")
    assert timedelta(0) <= scaled.now() - datetime(2027, 1, 9, 1, 45, tzinfo=timezone.utc) < timedelta(minutes=1)
    # a process joining an existing clock keeps its time, whatever start it is given
    monkeypatch.setattr("os.environ", {**flagged.to_env()})
    joined = clock_from_options(
        time_scale=None, manual=True, state_dir=tmp_path / "d", start=datetime.now(timezone.utc)
    )
    assert joined.now() == START


def test_clock_start_needs_an_offset_and_a_virtual_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_clock_start("2027-01-09T01:45:00Z") == datetime(2027, 1, 9, 1, 45, tzinfo=timezone.utc)
    with pytest.raises(ClockError, match="no UTC offset"):
        parse_clock_start("2027-01-09T01:45:00")
    with pytest.raises(ClockError, match="not an ISO"):
        parse_clock_start("next tuesday")
    # out of range: each overflowed (OverflowError, a traceback instead of a usage error) or
    # left no room for the clock to run
    for text in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z", "1969-12-31T23:59Z"):
        with pytest.raises(ClockError, match="out of range"):
            parse_clock_start(text)
    monkeypatch.setenv("DEVHOST_CLOCK_MODE", "real")
    with pytest.raises(ClockError, match="needs --manual-clock or --time-scale"):
        clock_from_options(time_scale=None, manual=False, state_dir=tmp_path, start=START)
    # the same start from the environment was ignored without a word: the real clock ran from now
    monkeypatch.setenv("DEVHOST_CLOCK_START", "2027-01-09T01:45:00Z")
    with pytest.raises(ClockError, match="DEVHOST_CLOCK_START needs --manual-clock or --time-scale"):
        clock_from_options(time_scale=None, manual=False, state_dir=tmp_path)


@pytest.mark.parametrize("raw", [None, "x", "-1", "1e12", "nan"])
def test_advance_rejects_bad_seconds(raw: str | None) -> None:
    with pytest.raises(ClockError):
        parse_advance_seconds(raw)


@given(st.integers(0, 30), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
def test_timespan_round_trip(days: int, hours: int, minutes: int, seconds: int) -> None:
    text = f"{days}.{hours:02d}:{minutes:02d}:{seconds:02d}" if days else f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    assert parse_timespan(text) == timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@pytest.mark.parametrize("bad", ["", "5 minutes", "1:2", "00:60", "abc"])
def test_timespan_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_timespan(bad)


def _http_spec(route: str, methods: list[str] | None = None) -> FunctionSpec:
    trigger = {"type": "httpTrigger", "name": "req", "route": route, "methods": methods, "authLevel": "FUNCTION"}
    return FunctionSpec("f", trigger, [trigger], lambda req: None, False, ["req"])


def test_route_templates_match_like_the_host() -> None:
    route = compile_route(_http_spec("chains/{chain}/runs/{run_id?}"))
    assert route.match("chains/a/runs/r1") == {"chain": "a", "run_id": "r1"}
    assert route.match("chains/a/runs") == {"chain": "a"}
    assert route.match("chains/a/runs/r1/extra") is None
    typed = compile_route(_http_spec("items/{id:int}"))
    assert typed.match("items/12") == {"id": "12"} and typed.match("items/x") is None
    catch_all = compile_route(_http_spec("files/{*path}"))
    assert catch_all.match("files/a/b/c") == {"path": "a/b/c"}
    with pytest.raises(RouteError, match="constraint"):
        compile_route(_http_spec("items/{id:weird}"))


def test_schedules_ncrontab_timespan_and_app_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    hourly = parse_schedule("f", "0 0 * * * *")
    assert hourly.next_after(START + timedelta(minutes=1)) == START + timedelta(hours=1)
    every = parse_schedule("f", "00:05:00")
    assert every.next_after(START) == START + timedelta(minutes=5)
    monkeypatch.setenv("MY_SCHEDULE", "30 * * * * *")
    assert parse_schedule("f", "%MY_SCHEDULE%").next_after(START) == START + timedelta(seconds=30)
    with pytest.raises(ScheduleError, match="'f'"):
        parse_schedule("f", "%NOT_SET%")
    with pytest.raises(ScheduleError, match="six fields"):
        parse_schedule("f", "* * * * *")


def test_flatten_orders_compound_actions_and_skips_event_waits() -> None:
    v1 = [
        [{"actionType": act.CALL_ACTIVITY, "functionName": "a", "input": "1"}],
        [
            {"actionType": act.WAIT_FOR_EXTERNAL_EVENT, "externalEventName": "go"},
            {"actionType": act.CREATE_TIMER, "fireAt": "2026-01-01T00:00:00.000000Z", "isCanceled": False},
        ],
    ]
    assert [a.kind for a in act.flatten(v1)] == ["activity", "timer"]
    v3 = [
        [
            {
                "actionType": act.WHEN_ALL,
                "compoundActions": [
                    {"actionType": act.CALL_ACTIVITY, "functionName": "b"},
                    {
                        "actionType": act.WHEN_ANY,
                        "compoundActions": [
                            {"actionType": act.WAIT_FOR_EXTERNAL_EVENT, "externalEventName": "x"},
                            {"actionType": act.CALL_ENTITY, "instanceId": "@c@k", "operation": "get"},
                        ],
                    },
                ],
            }
        ]
    ]
    assert [a.name for a in act.flatten(v3)] == ["b", "@c@k#get"]
    with pytest.raises(act.UnsupportedAction):
        act.flatten([[{"actionType": act.CALL_HTTP}]])


def test_sdk_failure_payload_is_split_into_message_and_state() -> None:
    state = {"isDone": False, "actions": [[]], "customStatus": {"p": 1}}
    err = Exception("boom\n\n$OutOfProcData$:" + json.dumps(state))
    parsed, message = parse_sdk_result(err)
    assert message == "boom" and parsed["customStatus"] == {"p": 1}
    parsed, message = parse_sdk_result(KeyError("x"))
    assert message == "KeyError: 'x'" and parsed["actions"] == []


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (1_767_614_400.0, "2026-01-05T12:00:00Z"),
        (1_767_614_400.5, "2026-01-05T12:00:00.5Z"),
        (1_767_614_400.000125, "2026-01-05T12:00:00.000125Z"),
    ],
)
def test_history_timestamps_are_written_as_json_net_writes_them(epoch: float, text: str) -> None:
    """No trailing zeros in the fraction, no fraction on a whole second; the SDK reads the same
    instant back."""
    from azure.durable_functions.models.history import HistoryEvent

    assert h.ts(epoch) == text
    parsed = HistoryEvent(**h.event(h.ORCHESTRATOR_STARTED, epoch)).timestamp
    assert parsed == datetime.fromtimestamp(epoch, tz=timezone.utc)


def test_wake_reaches_the_dispatcher_from_its_loop_and_from_other_threads() -> None:
    """The dispatcher's own callbacks set its wake event directly; episode threads go through
    the loop. Either way the event is set once the loop has run."""
    import asyncio
    import threading

    from devhost.runtime import Runtime

    async def woken_by(wake_from_thread: bool) -> bool:
        runtime = Runtime.__new__(Runtime)
        runtime.loop = asyncio.get_running_loop()
        runtime._wake = asyncio.Event()
        if wake_from_thread:
            thread = threading.Thread(target=runtime.wake)
            thread.start()
            thread.join()
        else:
            runtime.wake()
        await asyncio.wait_for(runtime._wake.wait(), 30)
        return runtime._wake.is_set()

    assert asyncio.run(woken_by(False))
    assert asyncio.run(woken_by(True))
