"""``python -m emulators.eventgrid --port 8444 --config FILE [--state-dir DIR] [--host 127.0.0.1]
[--time-scale N | --manual-clock] [--clock-start ISO] [--webhook-ca PEM]``

``--clock-start`` (or ``DEVHOST_CLOCK_START``) is where a new virtual clock starts (default: now).

Prints one JSON line once listening:
``{"url": ..., "ca": <CA pem path>, "topics": {name: {"endpoint": ..., "key": ...}}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import ssl
import sys
from datetime import datetime
from pathlib import Path

from emulators.common import announce, make_tls, serve
from emulators.eventgrid.app import EventGridEmulator, build_app
from emulators.eventgrid.config import ConfigError, load_config
from emulators.eventgrid.delivery import Dispatcher
from localclock.clock import ClockError, clock_from_options, parse_clock_start

DEFAULT_STATE_DIR = Path(".emulators") / "eventgrid"


def _loopback(host: str) -> str:
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise argparse.ArgumentTypeError(f"{host!r} is not a loopback address")
    return host


def _clock_start(text: str) -> datetime:
    try:
        return parse_clock_start(text)
    except ClockError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulators.eventgrid", description=__doc__)
    parser.add_argument("--port", type=int, default=8444, help="0 picks a free port")
    parser.add_argument("--host", type=_loopback, default="127.0.0.1")
    parser.add_argument("--config", type=Path, required=True, help="JSON file with topics and subscriptions")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--webhook-ca", type=Path, help="extra CA PEM to trust for https webhooks")
    parser.add_argument("--concurrency", type=int, default=16, help="parallel webhook deliveries")
    clock = parser.add_mutually_exclusive_group()
    clock.add_argument("--time-scale", type=float)
    clock.add_argument("--manual-clock", action="store_true")
    parser.add_argument("--clock-start", type=_clock_start, default=None, help="ISO instant the clock starts at")
    return parser.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    state_dir = Path(args.state_dir)
    clock = clock_from_options(
        time_scale=args.time_scale, manual=args.manual_clock, state_dir=state_dir, start=args.clock_start
    )
    tls, ca_path = make_tls(state_dir)
    webhook_ssl = ssl.create_default_context(cafile=str(args.webhook_ca)) if args.webhook_ca else None
    dispatcher = Dispatcher(config, clock, state_dir, concurrency=args.concurrency, webhook_ssl=webhook_ssl)
    emulator = EventGridEmulator(config, clock, state_dir, dispatcher)
    runner, port = await serve(build_app(emulator), args.host, args.port, tls)
    host = f"[{args.host}]" if ":" in args.host else args.host
    base_url = f"https://{host}:{port}"
    dispatcher.base_url = base_url
    await dispatcher.start()
    announce(
        url=base_url,
        ca=str(ca_path.resolve()),
        clock=clock.mode,
        topics={
            t.name: {
                "endpoint": emulator.publish_url(base_url, t),
                "key": t.key,
                "inputSchema": t.input_schema,
            }
            for t in config.topics
        },
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await dispatcher.stop()
    await runner.cleanup()
    return 0


def run(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        return asyncio.run(main(args))
    except (ConfigError, ClockError) as err:
        sys.stderr.write(f"eventgrid emulator: {err}\n")
        return 2


if __name__ == "__main__":
    sys.exit(run())
