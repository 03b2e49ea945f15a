"""Start an aiohttp application on a host/port (0 picks a free port) and report the bound port."""

from __future__ import annotations

import ssl

from aiohttp import web


async def serve(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None)
    assert sockets, "site did not bind a socket"
    return runner, int(sockets[0].getsockname()[1])
