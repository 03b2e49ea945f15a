"""The main job (``./dev run``): the backup chain end to end on the embedded default.

Starts the Recovery Services and Event Grid emulators and devhost (running ``function_app.py``
unmodified) on one scaled clock with the sample scenario of ``demo/scenario.py``; starts a chain
run that waits for its upstream job; fires the upstream event through the Event Grid emulator with
the real ``EventGridPublisherClient``; shows each VM's phase live until the run ends; prints the
downstream events and one result line. Exit code 0 only if the run behaved as the scenario says
(``demo/checks.py``).

The clock starts at ``--clock-start ISO`` (default ``demo.scenario.CLOCK_START``, a fixed Monday
02:40 UTC; ``now`` for the wall clock's time), so the run does not depend on the day it runs on.

``--timeline FILE`` (``.svg`` or ``.html``, repeatable) also draws the run's per-VM timeline
(``demo/timeline.py``); a downstream listener then subscribes to the downstream topic, so the
picture marks when downstream heard of each snapshot.

``--serve`` is ``./dev serve`` on the same sample (``demo/serve.py``): the stack stays up for a
person to poke at with the HTTP API until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from demo import scenario as sc
from demo import timeline_collect
from demo.args import clock_start_argument, signals_held, stop_cleanly_on_signals
from demo.checks import check, kind
from demo.listener import DownstreamListener
from demo.stack import Stack
from demo.timeline_render import SUFFIXES
from demo.view import PlainLog, events_table, run_table, vm_name
from localclock.clock import iso

MAIN_SCALE = 60.0  # one virtual minute per second: the ~45 virtual minutes of the run take ~40 s
WALL_LIMIT = 240.0  # seconds; the run normally ends in under 40
UPSTREAM_AFTER = 2.0  # wall seconds the run visibly waits for upstream before the event is fired
POLL = 0.25
TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")


class DemoError(RuntimeError):
    """The stack or the run did not do what the main job needs."""


def make_console() -> Console:
    probe = Console()
    if probe.is_terminal or os.environ.get("COLUMNS"):
        return probe
    return Console(width=150)  # a pipe or CI log: wide enough that tables do not wrap


class Display:
    """A live rich table on a terminal; plain change lines otherwise."""

    def __init__(self, console: Console, stack: Stack, scale: float) -> None:
        self.console = console
        self.stack = stack
        self.scale = scale
        self.run: dict[str, Any] | None = None
        self.note = ""
        self.live: Live | None = None
        self.plain = None if console.is_terminal else PlainLog(console)

    @contextmanager
    def showing(self) -> Iterator[Display]:
        if self.plain is not None:
            yield self
            return
        with Live(self._render(), console=self.console, refresh_per_second=8, transient=False) as live:
            self.live = live
            try:
                yield self
            finally:
                live.update(self._render(), refresh=True)
                self.live = None

    def _render(self) -> Any:
        return run_table(self.run, self.stack.clock.now(), self.scale, self.note)

    def update(self, run: dict[str, Any], note: str | None = None) -> None:
        self.run = run
        if note is not None:
            self.note = note
        elif run.get("phase") not in ("started", "waitingForUpstream"):
            self.note = ""
        if self.live is not None:
            self.live.update(self._render())
        elif self.plain is not None:
            self.plain.update(run, self.stack.clock.now())

    def log(self, message: str) -> None:
        line = f"[{self.stack.clock.now():%H:%M:%S}] {message}"
        (self.live.console if self.live is not None else self.console).print(line, highlight=False)

    def final_table(self) -> None:
        if self.plain is not None:
            self.console.print(self._render())


def get_run(stack: Stack, run_id: str) -> dict[str, Any]:
    response = stack.api("GET", f"chains/{sc.CHAIN}/runs/{run_id}")
    if response.status_code != 200:
        raise DemoError(f"GET run answered {response.status_code}: {response.text[:300]}")
    return dict(response.json())


def run_main_job(
    stack: Stack, console: Console, scale: float, events_out: Path | None, timelines: list[Path] | None = None
) -> int:
    began = time.monotonic()
    virtual_start = stack.clock.now()
    run_id = f"demo-{virtual_start:%Y%m%dT%H%M%S}"
    started = stack.api("POST", f"chains/{sc.CHAIN}/runs", {"runId": run_id, "waitForUpstream": True})
    if started.status_code != 202:
        raise DemoError(f"starting the run answered {started.status_code}: {started.text[:300]}")
    console.print(
        f"started run {run_id} of chain {sc.CHAIN} ({len(sc.VMS)} VMs in 2 vaults); "
        f"it waits for upstream event {sc.UPSTREAM_TYPE} {sc.UPSTREAM_SUBJECT}",
        highlight=False,
    )
    display = Display(console, stack, scale)
    upstream_id = ""
    waiting_since: float | None = None
    with display.showing():
        while True:
            run = get_run(stack, run_id)
            display.update(run)
            if not upstream_id and run.get("phase") == "waitingForUpstream":
                waiting_since = waiting_since or time.monotonic()
                if time.monotonic() - waiting_since >= UPSTREAM_AFTER:
                    upstream_id = f"etl-{secrets.token_hex(6)}"
                    data = {"status": "Succeeded", "job": "nightly-etl", "rowsLoaded": 1284113}
                    stack.publish_upstream(sc.UPSTREAM_TYPE, sc.UPSTREAM_SUBJECT, data, event_id=upstream_id)
                    display.log(f"upstream published {sc.UPSTREAM_TYPE} (id {upstream_id}) to the Event Grid topic")
                    display.update(run, note="upstream event sent")
            if run.get("runtimeStatus") in TERMINAL:
                display.update(run, note="")
                break
            if time.monotonic() - began > WALL_LIMIT:
                raise DemoError(f"the run did not end within {WALL_LIMIT:.0f} s (phase {run.get('phase')})")
            time.sleep(POLL)
    display.final_table()
    wall = time.monotonic() - began
    virtual = (stack.clock.now() - virtual_start).total_seconds()

    events = stack.downstream()
    if events_out is not None:
        events_out.write_text(json.dumps(events, indent=2) + "\n")
    console.print(events_table(events, sc.PREFIX))
    if timelines:
        write_timelines(stack, run_id, timelines, console)
    jobs = {vm.name: stack.admin("recoveryservices", "GET", "/admin/jobs", params={"vm": vm.name}) for vm in sc.VMS}
    verdict = check(run, events, jobs, upstream_id)
    for note in verdict.notes:
        console.print(f"note: {note}", highlight=False)
    for problem in verdict.problems:
        console.print(f"problem: {problem}", style="red", highlight=False)

    backed_up = sum(1 for vm in run.get("vms") or [] if vm.get("phase") == "completed")
    failed = [e for e in events if kind(e) == "BackupFailed"]
    failed_text = ", ".join(
        f"{vm_name(e.get('subject'))} failed its {e['data'].get('phase')} ({e['data'].get('errorCode')})"
        for e in failed
    )
    lag = f"{sum(verdict.lags) / len(verdict.lags):.0f} s" if verdict.lags else "n/a"
    summary = (
        f"{backed_up}/{len(sc.VMS)} VMs backed up, {failed_text or 'no failures'}; "
        f"downstream heard of each snapshot {lag} (virtual, mean) after it completed; "
        f"{len(events)} events; {virtual / 60:.0f} virtual min in {wall:.0f} s"
    )
    if verdict.ok:
        console.print(
            f"RESULT: PASS - run behaved as the scenario expects: {summary}",
            style="bold green",
            highlight=False,
            soft_wrap=True,
        )
        return 0
    console.print(
        f"RESULT: FAIL - {len(verdict.problems)} expectation(s) not met: {summary}",
        style="bold red",
        highlight=False,
        soft_wrap=True,
    )
    return 1


def write_timelines(stack: Stack, run_id: str, paths: list[Path], console: Console) -> None:
    timeline_collect.settle_deliveries(stack, timeout=10.0)
    timeline = timeline_collect.collect(stack, sc.CHAIN, run_id)
    for path in paths:
        timeline_collect.write(timeline, path)
        console.print(f"timeline of run {run_id} ({len(timeline.vms)} VMs) written to {path}", highlight=False)


def timeline_argument(text: str) -> Path:
    """``--timeline``: a file ending in .svg or .html in an existing directory."""
    path = Path(text)
    if path.suffix.lower() not in SUFFIXES:
        raise argparse.ArgumentTypeError(f"{text}: the file name must end in .svg or .html")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: directory {path.parent} does not exist")
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help="same as ./dev serve (python -m demo.serve) on the sample")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help=f"virtual seconds per real second (default {MAIN_SCALE:g}; 1 = real time)",
    )
    parser.add_argument("--events-out", type=Path, default=None, help="also write the downstream events to this file")
    parser.add_argument(
        "--timeline",
        type=timeline_argument,
        action="append",
        metavar="FILE",
        help="also draw the run's per-VM timeline to FILE (.svg, or .html: the SVG plus a table); repeatable",
    )
    parser.add_argument(
        "--clock-start",
        type=clock_start_argument,
        default=sc.CLOCK_START,
        help=f"ISO instant (with offset) the virtual clock starts at, or 'now' (default {iso(sc.CLOCK_START)})",
    )
    args = parser.parse_args(argv)
    if args.time_scale is not None and not args.time_scale > 0:
        parser.error("--time-scale must be > 0")
    if args.serve and args.timeline:
        parser.error("--timeline draws the main job's run; with --serve use ./dev serve --timeline DIR")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        from demo import serve

        forwarded = ["--clock-start", iso(args.clock_start)]
        if args.time_scale is not None:
            forwarded += ["--time-scale", str(args.time_scale)]
        return serve.main(forwarded)
    scale = float(args.time_scale or MAIN_SCALE)
    console = make_console()
    stop_cleanly_on_signals()
    stack: Stack | None = None
    listener = DownstreamListener().start() if args.timeline else None
    failed = True
    with tempfile.TemporaryDirectory(prefix="backup-chain-demo-") as tmp:
        try:
            console.print(
                f"starting Recovery Services + Event Grid emulators and devhost "
                f"(clock x{scale:g} from {iso(args.clock_start)}) ...",
                highlight=False,
            )
            stack = Stack.start(
                Path(tmp),
                sc.scenario(args.clock_start),
                sc.chains(),
                time_scale=scale,
                clock_start=args.clock_start,
                downstream_webhook=listener.url if listener is not None else None,
            )
            code = run_main_job(stack, console, scale, args.events_out, args.timeline)
            failed = code != 0
            return code
        except KeyboardInterrupt:
            failed = False
            console.print("interrupted: stopping the stack", highlight=False)
            return 130
        except Exception as err:
            console.print(f"error: {type(err).__name__}: {err}", style="red", highlight=False, markup=False)
            return 1
        finally:
            with signals_held():  # a second Ctrl-C or SIGTERM must not skip the clean-up
                if stack is not None:
                    if failed:
                        for name, service in stack.services.items():
                            tail = service.log_tail(15)
                            if tail:
                                console.print(f"--- {name} log (last lines)\n{tail}", highlight=False, markup=False)
                    stack.stop()
                if listener is not None:
                    listener.stop()


if __name__ == "__main__":
    sys.exit(main())
