"""The clock's admin routes, shared by devhost and the emulators (same paths everywhere)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from localclock.clock import Clock, ClockError, iso, parse_advance_seconds

ADVANCE_PATH = "/admin/clock/advance"
CLOCK_PATH = "/admin/clock"


def add_clock_routes(
    app: web.Application,
    clock: Clock,
    on_advance: Callable[[], Awaitable[None]] | None = None,
    *,
    check_auth: Callable[[web.Request], None] | None = None,
) -> None:
    """``GET /admin/clock`` shows the time and mode; ``POST /admin/clock/advance?seconds=N``
    moves a manual clock (400 on any other mode or a bad ``seconds``)."""

    async def show(request: web.Request) -> web.Response:
        if check_auth:
            check_auth(request)
        return web.json_response({"now": iso(clock.now()), "mode": clock.mode, "scale": clock.scale})

    async def advance(request: web.Request) -> web.Response:
        if check_auth:
            check_auth(request)
        try:
            seconds = parse_advance_seconds(request.query.get("seconds"))
            now = clock.advance(seconds)
        except ClockError as err:
            return web.json_response({"error": {"code": "BadRequest", "message": str(err)}}, status=400)
        if on_advance is not None:
            await on_advance()
        return web.json_response({"now": iso(now), "mode": clock.mode})

    app.router.add_get(CLOCK_PATH, show)
    app.router.add_post(ADVANCE_PATH, advance)
