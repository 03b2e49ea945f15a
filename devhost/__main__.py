"""``python -m devhost start|status`` — run a Python v2-model Durable Functions app locally.

``start --manual-clock`` or ``--time-scale N`` give a virtual clock; ``--clock-start ISO`` (or
``DEVHOST_CLOCK_START`` in the environment) says where it starts, so a run does not depend on the
day it runs on (default: the wall clock's now)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path

from devhost.indexing import IndexingError
from devhost.settings import HostConfigError
from devhost.timers import ScheduleError
from localclock.clock import ClockError, clock_from_options, parse_clock_start


def _clock_start(text: str) -> datetime:
    try:
        return parse_clock_start(text)
    except ClockError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="host the app")
    start.add_argument("--app", default="function_app", help="module holding the FunctionApp/DFApp")
    start.add_argument("--app-dir", default=".", help="directory of the app (host.json lives here)")
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--port", type=int, default=7071, help="0 picks a free port")
    start.add_argument("--state", default=".devhost/state.db", help="SQLite task hub file")
    start.add_argument("--settings", default=None, help="local.settings.json (default: beside the app)")
    start.add_argument("--time-scale", type=float, default=None, help="virtual seconds per real second")
    start.add_argument("--manual-clock", action="store_true", help="time moves only via /admin/clock/advance")
    start.add_argument("--clock-start", type=_clock_start, default=None, help="ISO instant the virtual clock starts at")
    start.add_argument("--no-auth", action="store_true", help="accept requests without keys")
    start.add_argument("--replay-schema", type=int, choices=(0, 1, 2), default=2, help="SDK replay schema")
    start.add_argument("--log-level", default="INFO")
    status = sub.add_parser("status", help="list instances and their custom status")
    status.add_argument("--state", default=".devhost/state.db")
    status.add_argument("--json", action="store_true")
    status.add_argument("--prefix", default=None)
    return parser


async def _serve(args: argparse.Namespace) -> int:
    from devhost.server import DevHost, Options

    app_dir = Path(args.app_dir)
    state = Path(args.state)
    settings = Path(args.settings) if args.settings else app_dir / "local.settings.json"
    clock = clock_from_options(
        time_scale=args.time_scale, manual=args.manual_clock, state_dir=state.parent, start=args.clock_start
    )
    options = Options(
        app_module=args.app,
        app_dir=app_dir,
        host=args.host,
        port=args.port,
        state=state,
        settings=settings,
        no_auth=args.no_auth,
        replay_schema=args.replay_schema,
    )
    host = DevHost(options, clock)
    info = await host.start()
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    log = logging.getLogger("devhost")
    log.info("devhost listening on %s (clock: %s, hub: %s)", info["url"], clock.mode, info["hub"])
    for name, kind in info["functions"].items():
        log.info("  %s: %s", name, kind)
    log.info("function key: %s", info["keys"]["function"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await host.stop()
    return 0


def _status(args: argparse.Namespace) -> int:
    from devhost.store import Store

    path = Path(args.state)
    if not path.exists():
        print(f"no task hub at {path}", file=sys.stderr)
        return 1
    store = Store(path)
    rows = store.query_instances(prefix=args.prefix)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "instanceId": r.instance_id,
                        "name": r.name,
                        "runtimeStatus": r.status,
                        "customStatus": json.loads(r.custom_status) if r.custom_status else None,
                    }
                    for r in rows
                ]
            )
        )
        return 0
    for row in rows:
        print(f"{row.instance_id:<48} {row.name:<28} {row.status:<10} {row.custom_status or ''}")
    print(f"{len(rows)} instance(s)")
    return 0


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _skip_unused_log_record_fields() -> None:
    """devhost logs a line per function invocation; the format shows none of the caller's frame,
    thread or process, so the records need not collect them (the Python logging HOWTO's
    "Optimization" section names these switches)."""
    logging._srcfile = None  # no frame walk per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "status":
        return _status(args)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    _skip_unused_log_record_fields()
    try:
        return asyncio.run(_serve(args))
    except (IndexingError, HostConfigError, ScheduleError, ClockError) as err:
        print(f"devhost: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
