"""The aiohttp application: admin routes first, every other path goes to the ARM dispatcher; a coarse
tick settles due events so state moves even when nobody asks (one task in total, not one per job)
and sends the post-scripts' snapshot beacons that came due."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from emulators.recoveryservices.admin_routes import add_admin_routes
from emulators.recoveryservices.arm_routes import make_arm_handler
from emulators.recoveryservices.beacons import send_due
from emulators.recoveryservices.runtime import Runtime

TICK_SECONDS = 1.0


def build_app(rt: Runtime) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    add_admin_routes(app, rt)
    app.router.add_route("*", "/{tail:.*}", make_arm_handler(rt))

    async def ticker(_: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(TICK_SECONDS)
                rt.settle()
                if rt.engine.beacons:
                    await send_due(rt.engine)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(ticker)
    return app
