"""``python -m emulators.recoveryservices --port 8443 --scenario FILE [--time-scale N | --manual-clock]
[--clock-start ISO] [--state-dir DIR] [--host 127.0.0.1]`` -> prints ``{"url": ..., "ca": ...}`` once
listening. ``--clock-start`` (or ``DEVHOST_CLOCK_START``) is where a new virtual clock starts
(default: now), so the scenario's schedules do not depend on the day it runs on."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from pathlib import Path

from emulators.common import announce, make_tls, serve
from emulators.recoveryservices.app import build_app
from emulators.recoveryservices.runtime import Runtime
from emulators.recoveryservices.scenario import ScenarioError
from localclock.clock import ClockError, clock_from_options, parse_clock_start


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulators.recoveryservices", description=__doc__)
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--scenario", type=Path, required=True)
    clock = parser.add_mutually_exclusive_group()
    clock.add_argument("--time-scale", type=float, default=None)
    clock.add_argument("--manual-clock", action="store_true")
    parser.add_argument("--clock-start", default=None, help="ISO instant the virtual clock starts at")
    parser.add_argument("--state-dir", type=Path, default=Path(".emulators/recoveryservices"))
    args = parser.parse_args(argv)
    try:
        args.clock_start = parse_clock_start(args.clock_start) if args.clock_start else None
    except ClockError as err:
        parser.error(str(err))
    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            parser.error("--host must be a loopback address")
    except ValueError:
        if args.host != "localhost":
            parser.error("--host must be a loopback address")
    return args


async def _main(args: argparse.Namespace) -> int:
    try:
        clock = clock_from_options(
            time_scale=args.time_scale, manual=args.manual_clock, state_dir=args.state_dir, start=args.clock_start
        )
    except ClockError as err:
        print(f"clock error: {err}", file=sys.stderr)
        return 2
    try:
        rt = Runtime(args.scenario, clock)
    except ScenarioError as err:
        print(f"scenario error: {err}", file=sys.stderr)
        return 2
    ssl_context, ca_path = make_tls(args.state_dir)
    runner, port = await serve(build_app(rt), args.host, args.port, ssl_context)
    host = f"[{args.host}]" if ":" in args.host else args.host
    announce(url=f"https://{host}:{port}", ca=str(ca_path.resolve()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_main(_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
